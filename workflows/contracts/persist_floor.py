"""Contracts of the persist floor: the least a command costs in this design (bench/floor.py measures it)."""

from __future__ import annotations

import uuid

from pydantic import BaseModel

from workflows.contracts.common import persistence


class PersistFloorInput(BaseModel):
    """Which row the workflow bumps."""

    row_id: uuid.UUID


class BumpInput(BaseModel):
    """The update's input: nothing but a label, as small as a command gets."""

    label: str = ""


class BumpRow(BaseModel):
    """The local activity's input: the row and the version the workflow holds."""

    row_id: uuid.UUID
    version: int


class BumpResult(BaseModel):
    """The row's version after the write (what the bare route answers)."""

    version: int


def persist_floor_workflow_id(row_id: uuid.UUID) -> str:
    """The workflow id of a floor row."""
    return f"persist-floor-{row_id}"


BUMP_ROW = persistence("persistence.persist_floor_bump", BumpRow, BumpResult)
