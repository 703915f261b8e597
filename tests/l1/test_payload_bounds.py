"""Walks stay small in Temporal: notes are rows, trees are read by activities, and every bound is a clear 4xx.

A walk driven to each bound still steps, resolves and escalates.
"""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from tests.l1.support import adhoc_session, create_flow, intake, team
from workflows.contracts.flow import MAX_FLOW_BYTES, MAX_FLOW_NODES, FlowNode, FlowOption, FlowTree
from workflows.contracts.walk import MAX_NOTES_PER_REQUEST, MAX_NOTES_PER_WALK, NOTE_TEXT_MAX, walk_workflow_id

API = "/api/v1/l1"


def chain(length: int, *, question: str = "Check {i}?", resolution: str = "Done.") -> dict[str, Any]:
    """A flow of `length` questions in a row, each answered "ok"."""
    return {"root": "n0", "nodes": {
        f"n{i}": {"question": question.format(i=i), "options": [
            {"label": "ok", "next": f"n{i + 1}"} if i + 1 < length else {"label": "ok", "resolution": resolution}]}
        for i in range(length)
    }}


def notes(count: int, size: int = NOTE_TEXT_MAX) -> dict[str, Any]:
    """A notes body of `count` notes of `size` characters."""
    return {"notes": [{"text": f"{i:05d}" + "x" * (size - 5), "ts": "2026-05-28T10:00:00Z"} for i in range(count)]}


async def fill_notes(client: AsyncClient, headers: dict[str, str], sid: str) -> None:
    """Post full-size notes until the walk holds the most it may."""
    for _ in range(MAX_NOTES_PER_WALK // MAX_NOTES_PER_REQUEST):
        resp = await client.post(f"{API}/sessions/{sid}/notes", headers=headers, json=notes(MAX_NOTES_PER_REQUEST))
        assert resp.status_code == 200, resp.text[:300]
    assert len(resp.json()["walk_notes"]) == MAX_NOTES_PER_WALK
    over = await client.post(f"{API}/sessions/{sid}/notes", headers=headers, json=notes(1, 10))
    assert over.status_code == 400 and f"at most {MAX_NOTES_PER_WALK} notes" in over.json()["detail"]


async def test_notes_per_request_are_bounded(client: AsyncClient, db: AsyncSession) -> None:
    tech = (await team(client, db))["tech"]["headers"]
    sid = await adhoc_session(client, tech)
    resp = await client.post(f"{API}/sessions/{sid}/notes", headers=tech, json=notes(MAX_NOTES_PER_REQUEST + 1, 10))
    assert resp.status_code == 422 and f"at most {MAX_NOTES_PER_REQUEST} items" in resp.text
    long = await client.post(f"{API}/sessions/{sid}/notes", headers=tech, json=notes(1, NOTE_TEXT_MAX + 1))
    assert long.status_code == 422 and f"at most {NOTE_TEXT_MAX} characters" in long.text


async def test_a_walk_full_of_notes_still_steps_and_resolves_with_small_payloads(
    client: AsyncClient, db: AsyncSession, temporal_client: Client
) -> None:
    t = await team(client, db)
    flow = await create_flow(client, t["owner"]["headers"])
    tech = t["tech"]["headers"]
    sid = (await intake(client, tech, problem_statement="no print", flow_id=flow["id"]))["session_id"]
    await fill_notes(client, tech, sid)  # 5 MB of notes: more than Temporal takes in one payload
    step = await client.post(f"{API}/sessions/{sid}/step", headers=tech, json={"node_id": "power", "answer": "No"})
    assert step.status_code == 200, step.text
    assert step.json()["session"]["note_count"] == MAX_NOTES_PER_WALK
    got = (await client.get(f"{API}/sessions/{sid}", headers=tech)).json()
    assert len(got["walk_notes"]) == MAX_NOTES_PER_WALK and got["walk_notes"][0]["text"].startswith("00000")
    done = await client.post(f"{API}/sessions/{sid}/resolve", headers=tech, json={"helpful": True})
    assert done.status_code == 200, done.text
    # The notes crossed Temporal once each (as update inputs); no state or result carries them.
    history = await temporal_client.get_workflow_handle(walk_workflow_id(sid)).fetch_history()
    largest_result = max(len(e.workflow_execution_update_completed_event_attributes.outcome.SerializeToString())
                         for e in history.events if e.HasField("workflow_execution_update_completed_event_attributes"))
    assert largest_result < 4096


async def test_a_walk_full_of_notes_still_escalates_with_a_bounded_email(client: AsyncClient, db: AsyncSession) -> None:
    tech = (await team(client, db))["tech"]["headers"]
    sid = await adhoc_session(client, tech)
    await fill_notes(client, tech, sid)
    resp = await client.post(f"{API}/sessions/{sid}/escalate", headers=tech, json={"reason_category": "needs_l2"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["session"]["status"] == "escalated"


async def test_flows_at_their_bounds_walk_and_past_them_are_refused(client: AsyncClient, db: AsyncSession) -> None:
    t = await team(client, db)
    owner, tech = t["owner"]["headers"], t["tech"]["headers"]
    biggest = chain(MAX_FLOW_NODES)
    flow = await create_flow(client, owner, tree=biggest)
    sid = (await intake(client, tech, problem_statement="long", flow_id=flow["id"]))["session_id"]
    for i in range(3):
        resp = await client.post(f"{API}/sessions/{sid}/step", headers=tech, json={"node_id": f"n{i}", "answer": "ok"})
        assert resp.status_code == 200 and resp.json()["next_node"]["id"] == f"n{i + 1}"

    too_many = await client.post(f"{API}/flows", headers=owner,
                                 json={"title": "t", "category": "printing", "tree": chain(954)})
    assert too_many.status_code == 422 and f"at most {MAX_FLOW_NODES}" in too_many.text

    # Few nodes, each as large as allowed: over the byte bound.
    heavy = chain(200, question="q" * 1000, resolution="r" * 4000)
    for node in heavy["nodes"].values():
        node["options"] += [{"label": f"alt {j}", "resolution": "r" * 4000} for j in range(3)]
    too_big = await client.post(f"{API}/flows", headers=owner, json={"title": "t", "category": "printing",
                                                                   "tree": heavy})
    assert too_big.status_code == 422 and f"at most {MAX_FLOW_BYTES:,} bytes" in too_big.text


def test_cycle_check_does_not_recurse_on_long_chains() -> None:
    length = 20_000  # far past Python's recursion limit
    nodes = {f"n{i}": FlowNode(question="?", options=[FlowOption(label="ok", next=f"n{(i + 1) % length}")])
             for i in range(length)}
    looped = FlowTree.model_construct(root="n0", nodes=nodes)
    assert looped.problems() == ["the tree has a cycle: a walk could loop forever"]
    nodes[f"n{length - 1}"] = FlowNode(question="?", options=[FlowOption(label="ok", resolution="done")])
    assert FlowTree.model_construct(root="n0", nodes=nodes).problems() == []
