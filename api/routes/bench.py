"""The persist floor's bare routes: what the command benches measure a command against (bench/floor.py).

Mounted in dev mode or with BENCH_ROUTES=1 only. No auth and no reads on purpose: a bump is an HTTP request
that sends one update, whose handler runs one local activity with one guarded `UPDATE … RETURNING`, through
the same workflow client, converter and worker as every command.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from api.deps import ReadSessionDep, WorkflowClientDep
from db.repositories.persist_floor import PersistFloorRepository
from services.workflow_client import StartSpec
from workflows.contracts.persist_floor import BumpInput, BumpResult, PersistFloorInput, persist_floor_workflow_id
from workflows.persist_floor import PersistFloorWorkflow

router = APIRouter(prefix="/bench", tags=["bench"], include_in_schema=False)
RESULT_TIMEOUT_S = 30.0


@router.post("/persist-floor", status_code=201)
async def create_row(session: ReadSessionDep) -> dict[str, uuid.UUID]:
    """A new floor row (one autocommitted insert); its workflow starts with the first bump."""
    return {"row_id": await PersistFloorRepository(session).create()}


@router.post("/persist-floor/{row_id}/bump")
async def bump(row_id: uuid.UUID, workflows: WorkflowClientDep) -> BumpResult:
    """One command at the floor: one update, one local activity, one write."""
    start = StartSpec(run=PersistFloorWorkflow.run, arg=PersistFloorInput(row_id=row_id),
                      id=persist_floor_workflow_id(row_id), account_id="bench")
    return await workflows.update(start, PersistFloorWorkflow.bump, BumpInput(), what="persist floor",
                                  result_timeout_s=RESULT_TIMEOUT_S)
