"""One command, one round trip: a command on a running workflow is one update RPC that comes back with its
result (as the floor's `execute_update`), not a send that waits for acceptance and then a poll for the result."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import service

from tests.ai_sessions.support import outcome_url, session_with_fix
from tests.helpers import make_user
from tests.l1.support import create_flow, intake, team

UPDATE_RPCS = ("update_workflow_execution", "poll_workflow_execution_update", "execute_multi_operation")


@pytest.fixture
def rpcs(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """The update RPCs any client of this process sends (the worker's polls are other RPCs)."""
    seen: Counter[str] = Counter()
    original = service._BridgeServiceClient._rpc_call

    async def counted(self: Any, rpc: str, *args: Any, **kwargs: Any) -> Any:
        if rpc in UPDATE_RPCS:
            seen[rpc] += 1
        return await original(self, rpc, *args, **kwargs)

    monkeypatch.setattr(service._BridgeServiceClient, "_rpc_call", counted)
    return seen


async def test_a_walk_step_is_one_update_rpc(client: AsyncClient, db: AsyncSession, rpcs: Counter[str]) -> None:
    t = await team(client, db)
    flow = await create_flow(client, t["owner"]["headers"])
    tech = t["tech"]["headers"]
    sid = (await intake(client, tech, problem_statement="It will not print", flow_id=flow["id"]))["session_id"]
    rpcs.clear()
    step = await client.post(f"/api/v1/l1/sessions/{sid}/step", headers=tech,
                             json={"node_id": "power", "question": "Is the printer's power light on?", "answer": "Yes"})
    assert step.status_code == 200, step.text
    assert rpcs == Counter({"update_workflow_execution": 1}), rpcs


async def test_a_fix_outcome_and_a_refused_one_are_one_update_rpc_each(
    client: AsyncClient, db: AsyncSession, rpcs: Counter[str]
) -> None:
    h = (await make_user(client, db, role="engineer"))["headers"]
    sid, fid = await session_with_fix(client, h)
    assert (await client.post(f"/api/v1/ai-sessions/{sid}/suggested-fixes/{fid}/apply", headers=h)).status_code == 200
    rpcs.clear()
    done = await client.patch(outcome_url(sid, fid), headers=h, json={"outcome": "applied_pending"})
    assert done.status_code == 400, done.text  # parking needs notes: the validator refuses it
    parked = await client.patch(outcome_url(sid, fid), headers=h,
                                json={"outcome": "applied_pending", "notes": "waiting on AD replication"})
    assert parked.status_code == 200, parked.text
    assert rpcs == Counter({"update_workflow_execution": 2}), rpcs


async def test_a_fix_commands_answer_is_the_fix_as_stored(client: AsyncClient, db: AsyncSession) -> None:
    """The answer is what the access read found plus what the command changed, read nothing after it: every
    field must agree with the fix read back afterwards (a column the access read missed would show here)."""
    h = (await make_user(client, db, role="engineer"))["headers"]
    sid, fid = await session_with_fix(client, h)
    applied = await client.post(f"/api/v1/ai-sessions/{sid}/suggested-fixes/{fid}/apply", headers=h)
    assert applied.status_code == 200, applied.text
    parked = await client.patch(outcome_url(sid, fid), headers=h,
                                json={"outcome": "applied_pending", "notes": "waiting on AD replication"})
    assert parked.status_code == 200, parked.text
    stored = await client.get(f"/api/v1/ai-sessions/{sid}/suggested-fixes/{fid}", headers=h)
    assert stored.status_code == 200, stored.text
    assert parked.json() == stored.json()
    assert parked.json()["description"] and parked.json()["confidence_pct"] > 0  # not a default standing in
