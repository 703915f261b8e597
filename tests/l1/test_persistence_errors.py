"""Values Postgres refuses fail that one change with a 400-class error; the walk is not wedged."""

from __future__ import annotations

import uuid

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from core.config import Settings
from core.errors import RuleViolation
from db.repositories.l1_sessions import WalkSessionRepository
from services.walks import WalkCommands
from services.workflow_client import WorkflowClient
from tests.l1.support import adhoc_session, l1_tech, walk_ref
from workflows.contracts.walk import EscalateInput


async def test_unstorable_values_fail_fast_and_leave_the_walk_usable(
    client: AsyncClient, db: AsyncSession, temporal_client: Client, settings: Settings
) -> None:
    tech = await l1_tech(client, db)
    sid = await adhoc_session(client, tech["headers"], problem="VPN drops")
    row = await WalkSessionRepository(db).get(uuid.UUID(sid))
    assert row is not None
    await db.commit()
    # The API refuses NUL characters; a caller that skips it (here: the service directly) must not make
    # the persistence activity retry forever on a value Postgres cannot store.
    walks = WalkCommands(WorkflowClient(temporal_client, task_queue=settings.temporal_task_queue,
                                        accept_timeout_s=5), settings)
    with pytest.raises(RuleViolation, match="could not be stored"):
        await walks.escalate(walk_ref(row), EscalateInput(reason_category="needs_l2", reason="nul \x00 here"), None)

    still = await client.get(f"/api/v1/l1/sessions/{sid}", headers=tech["headers"])
    assert still.json()["status"] == "active"
    ok = await client.post(f"/api/v1/l1/sessions/{sid}/escalate", headers=tech["headers"],
                           json={"reason_category": "needs_l2", "reason": "VPN concentrator"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "escalated"
