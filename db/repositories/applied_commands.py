"""The applied-commands log: what a workflow command answered, by (entity, command id)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AppliedCommand


class AppliedCommandRepository:
    """Rows of `applied_commands`; written in the same transaction as the change they record."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def result_of(self, entity_id: uuid.UUID, command_id: str) -> Any | None:
        """The stored answer of a command that already committed, or None when it never did."""
        found: Any | None = await self.session.scalar(
            select(AppliedCommand.result).where(AppliedCommand.entity_id == entity_id,
                                                AppliedCommand.command_id == command_id))
        return found

    async def record(self, entity_id: uuid.UUID, command_id: str, result: Any) -> None:
        """Remember the command's answer; a concurrent twin of the same command fails on the key and retries."""
        await self.session.execute(insert(AppliedCommand).values(entity_id=entity_id, command_id=command_id,
                                                                 result=result))

    async def record_first(self, entity_id: uuid.UUID, command_id: str, result: Any) -> bool:
        """Remember the command's answer; False when it was already remembered (the caller must roll back: its
        change is a second application of a command that committed before)."""
        inserted = await self.session.scalar(
            insert(AppliedCommand).values(entity_id=entity_id, command_id=command_id, result=result)
            .on_conflict_do_nothing(index_elements=[AppliedCommand.entity_id, AppliedCommand.command_id])
            .returning(AppliedCommand.command_id))
        return inserted is not None
