"""Killing the worker mid-walk loses nothing; no worker means a bounded 503; Temporal search attributes."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.worker import Worker

from tests.helpers import add_member, make_user
from tests.l1.broken_workflow import BrokenWalkWorkflow
from tests.l1.support import PRINTER_TREE, insert_walk
from tests.stack import StackFactory
from worker import build_worker
from workflows.contracts.search_attributes import SA_ACCOUNT_ID, SA_CATEGORY, SA_SESSION_KIND, SA_STATUS
from workflows.contracts.walk import QUERY_STATE, WalkControl, walk_workflow_id

API = "/api/v1/l1"
TREE = {"root": "a", "nodes": {
    "a": {"question": "Q1?", "options": [{"label": "go", "next": "b"}]},
    "b": {"question": "Q2?", "options": [{"label": "go", "next": "c"}]},
    "c": {"question": "Q3?", "options": [{"label": "go", "resolution": "Fixed by step three."}]},
}}


async def test_killing_the_worker_mid_walk_loses_nothing(
    make_stack: StackFactory, temporal_client: Client, db: AsyncSession
) -> None:
    async with make_stack(with_worker=False, workflow_call_timeout_s=3) as stack:
        client, queue = stack.client, stack.settings.temporal_task_queue
        owner = await make_user(client, db, role="owner")
        tech = (await add_member(client, owner["headers"], role="l1_tech"))["headers"]
        flow = (await client.post(f"{API}/flows", headers=owner["headers"],
                                  json={"title": "three steps", "category": "software", "tree": TREE})).json()

        async with build_worker(temporal_client, stack.deps, task_queue=queue):
            body = (await client.post(f"{API}/intake", headers=tech,
                                      json={"problem_statement": "p", "flow_id": flow["id"]})).json()
            sid = body["session_id"]
            one = await client.post(f"{API}/sessions/{sid}/step", headers=tech, json={"node_id": "a", "answer": "go"})
            assert one.status_code == 200, one.text
        # The worker is gone (its cached workflow state with it). A step now waits, then is refused: the task queue
        # still lists the worker's last poll, so for its first 90 s a stopped worker reads as a busy one (a 429 to
        # retry, not a 503; test_no_worker_answers_503_within_the_configured_wait covers a queue nobody polls).
        key = {**tech, "Idempotency-Key": f"two-{uuid.uuid4()}"}
        down = await client.post(f"{API}/sessions/{sid}/step", headers=key, json={"node_id": "b", "answer": "go"})
        assert down.status_code == 429, down.text
        assert down.headers["Retry-After"] == "1" and "worker" in down.json()["detail"]

        async with build_worker(temporal_client, stack.deps, task_queue=queue):
            # The replacement rebuilds the walk from history; the retried step applies exactly once.
            two = await client.post(f"{API}/sessions/{sid}/step", headers=key, json={"node_id": "b", "answer": "go"})
            assert two.status_code == 200, two.text
            assert two.json()["next_node"]["id"] == "c"
            three = await client.post(f"{API}/sessions/{sid}/step", headers=tech,
                                      json={"node_id": "c", "answer": "go"})
            assert three.json()["resolution"]["resolution"] == "Fixed by step three."
            handle = temporal_client.get_workflow_handle(walk_workflow_id(sid))
            live = await handle.query(QUERY_STATE, result_type=WalkControl)
            assert live.depth == 3 and live.pending_node is not None and live.pending_node.kind == "resolution"
            done = await client.post(f"{API}/sessions/{sid}/resolve", headers=tech, json={"helpful": True})
            assert done.status_code == 200, done.text
            assert await handle.result() == "resolved"
        got = (await client.get(f"{API}/sessions/{sid}", headers=tech)).json()
        assert [s["node_id"] for s in got["walked_path"]] == ["a", "b", "c"]
        assert got["status"] == "resolved" and got["depth"] == 3


async def test_no_worker_answers_503_within_the_configured_wait(make_stack: StackFactory, db: AsyncSession) -> None:
    async with make_stack(with_worker=False, workflow_call_timeout_s=1) as stack:
        info = await make_user(stack.client, db, role="l1_tech")
        resp = await stack.client.post(f"{API}/intake", headers=info["headers"],
                                       json={"problem_statement": "printer jammed"})
        assert resp.status_code == 503, resp.text
        assert "1s" in resp.json()["detail"]


async def test_walks_carry_search_attributes_for_the_temporal_ui(
    make_stack: StackFactory, temporal_client: Client, db: AsyncSession
) -> None:
    async with make_stack() as stack:
        owner = await make_user(stack.client, db, role="owner")
        flow = (await stack.client.post(f"{API}/flows", headers=owner["headers"],
                                        json={"title": "t", "category": "printing", "tree": PRINTER_TREE})).json()
        body = (await stack.client.post(f"{API}/intake", headers=owner["headers"],
                                        json={"problem_statement": "p", "flow_id": flow["id"]})).json()
        handle = temporal_client.get_workflow_handle(walk_workflow_id(body["session_id"]))
        attrs = (await handle.describe()).typed_search_attributes
        assert attrs.get(SA_ACCOUNT_ID) == owner["account_id"]
        assert (attrs.get(SA_STATUS), attrs.get(SA_SESSION_KIND), attrs.get(SA_CATEGORY)) == (
            "active", "flow", "printing")
        resp = await stack.client.post(f"{API}/sessions/{body['session_id']}/escalate", headers=owner["headers"],
                                       json={"reason_category": "needs_l2"})
        assert resp.status_code == 200, resp.text
        assert (await handle.describe()).typed_search_attributes.get(SA_STATUS) == "escalated"


async def test_a_walk_whose_workflow_task_keeps_failing_is_a_503_being_repaired(
    make_stack: StackFactory, temporal_client: Client, db: AsyncSession, caplog: pytest.LogCaptureFixture
) -> None:
    async with make_stack(with_worker=False, workflow_call_timeout_s=2) as stack:
        info = await make_user(stack.client, db, role="l1_tech")
        row = await insert_walk(db, account_id=uuid.UUID(info["account_id"]), user_id=uuid.UUID(info["user"]["id"]))
        body = {"notes": [{"text": "x", "ts": "2026-05-28T10:00:00Z"}]}
        async with Worker(temporal_client, task_queue=stack.settings.temporal_task_queue,
                          workflows=[BrokenWalkWorkflow]):
            answers = []
            for _ in range(3):
                resp = await stack.client.post(f"{API}/sessions/{row.id}/notes", headers=info["headers"], json=body)
                answers.append((resp.status_code, resp.json()["detail"]))
        assert all(code == 503 for code, _ in answers), answers
        assert any("being repaired" in detail for _, detail in answers), answers
        assert any("failing workflow task" in r.message for r in caplog.records if r.levelname == "ERROR")
