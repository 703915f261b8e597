"""A command is a plain update on its running workflow; update-with-start only creates or restarts one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from tests.l1.support import create_flow, intake, team
from workflows.contracts.walk import walk_workflow_id

API = "/api/v1/l1"
POWER = {"node_id": "power", "question": "Is the printer's power light on?", "answer": "Yes"}
PAPER = {"node_id": "paper", "question": "Is there paper in the tray?", "answer": "No"}


@dataclass
class Sent:
    """The updates the API sent, by update name: plain ones and update-with-start ones."""

    plain: list[str] = field(default_factory=list)
    with_start: list[str] = field(default_factory=list)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    """Watch (and pass through) the two Temporal client calls a command may make."""
    seen = Sent()
    plain, with_start = WorkflowHandle.start_update, Client.start_update_with_start_workflow

    async def start_update(self: WorkflowHandle[Any, Any], update: Any, *args: Any, **kwargs: Any) -> Any:
        seen.plain.append(update.__name__)
        return await plain(self, update, *args, **kwargs)

    async def start_update_with_start_workflow(self: Client, update: Any, *args: Any, **kwargs: Any) -> Any:
        seen.with_start.append(update.__name__)
        return await with_start(self, update, *args, **kwargs)

    monkeypatch.setattr(WorkflowHandle, "start_update", start_update)
    monkeypatch.setattr(Client, "start_update_with_start_workflow", start_update_with_start_workflow)
    return seen


async def _walk(client: AsyncClient, db: AsyncSession) -> tuple[str, dict[str, str]]:
    t = await team(client, db)
    flow = await create_flow(client, t["owner"]["headers"])
    tech: dict[str, str] = t["tech"]["headers"]
    body = await intake(client, tech, problem_statement="It will not print", flow_id=flow["id"])
    assert body["pending_node"]["id"] == "power"
    return str(body["session_id"]), tech


async def test_intake_creates_the_walk_workflow_with_update_with_start(
    client: AsyncClient, db: AsyncSession, temporal_client: Client, sent: Sent
) -> None:
    sid, _ = await _walk(client, db)

    assert (sent.plain, sent.with_start) == ([], ["create"])  # no plain attempt first: nothing runs yet
    described = await temporal_client.get_workflow_handle(walk_workflow_id(sid)).describe()
    assert described.status == WorkflowExecutionStatus.RUNNING


async def test_a_step_on_a_running_walk_is_a_plain_update(
    client: AsyncClient, db: AsyncSession, temporal_client: Client, sent: Sent
) -> None:
    sid, tech = await _walk(client, db)
    handle = temporal_client.get_workflow_handle(walk_workflow_id(sid))
    run_id = (await handle.describe()).run_id
    sent.plain.clear()
    sent.with_start.clear()

    step = await client.post(f"{API}/sessions/{sid}/step", headers=tech, json=POWER)

    assert step.status_code == 200 and step.json()["next_node"]["id"] == "paper", step.text
    assert (sent.plain, sent.with_start) == (["step"], [])
    described = await handle.describe()
    assert described.status == WorkflowExecutionStatus.RUNNING and described.run_id == run_id


async def test_a_step_after_the_run_ended_restarts_it_from_postgres(
    client: AsyncClient, db: AsyncSession, temporal_client: Client, sent: Sent
) -> None:
    sid, tech = await _walk(client, db)
    one = await client.post(f"{API}/sessions/{sid}/step", headers=tech, json=POWER)
    assert one.status_code == 200, one.text
    handle = temporal_client.get_workflow_handle(walk_workflow_id(sid))
    ended = (await handle.describe()).run_id
    await handle.terminate(reason="test: the run is gone")
    assert (await handle.describe()).status == WorkflowExecutionStatus.TERMINATED
    sent.plain.clear()
    sent.with_start.clear()

    two = await client.post(f"{API}/sessions/{sid}/step", headers=tech, json=PAPER)

    assert two.status_code == 200, two.text
    assert two.json()["resolution"]["resolution"] == "Load paper."  # the new run knew 'paper' was pending
    assert (sent.plain, sent.with_start) == (["step"], ["step"])  # the plain update found no run: fallback
    described = await handle.describe()
    assert described.status == WorkflowExecutionStatus.RUNNING and described.run_id != ended
    got = (await client.get(f"{API}/sessions/{sid}", headers=tech)).json()
    assert [s["node_id"] for s in got["walked_path"]] == ["power", "paper"]
