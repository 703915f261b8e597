"""Admission under a burst: one account's rush is refused at once with a 429 (never queued into a 503), another
account's command is still let in, and every refused command retried with its Idempotency-Key applies once."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from httpx import AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from core.errors import Overloaded
from services.admission import Admission
from tests.helpers import add_member, make_user, sent_until_served
from tests.stack import StackFactory
from worker import build_worker

API = "/api/v1/l1"
TREE = {"root": "a", "nodes": {
    "a": {"question": "Q1?", "options": [{"label": "go", "next": "b"}]},
    "b": {"question": "Q2?", "options": [{"label": "go", "resolution": "Fixed."}]},
}}
BURST = 20


async def test_admission_refuses_past_an_accounts_share_and_past_the_total_and_frees_slots() -> None:
    admission = Admission(4, account_share=0.5, retry_after_s=2)
    async with admission.admit("a", "walk"), admission.admit("a", "walk"):
        with pytest.raises(Overloaded) as mine:
            async with admission.admit("a", "walk"):
                pass
        assert mine.value.retry_after_s == 2 and "Your account has 2 walk commands" in str(mine.value.detail)
        async with admission.admit("b", "walk"), admission.admit("c", "walk"):
            with pytest.raises(Overloaded) as full:
                async with admission.admit("d", "walk"):
                    pass
            assert "The server has 4 commands in progress" in str(full.value.detail)
        assert admission.in_flight == 2 and admission.held_by("b") == 0
    with pytest.raises(RuntimeError):
        async with admission.admit("a", "walk"):
            raise RuntimeError("the command failed")
    assert admission.in_flight == 0 and admission.held_by("a") == 0 and admission.refused == 2
    assert Admission(3, account_share=0.1, retry_after_s=1).account_cap == 1  # never locked out


async def _walks(client: AsyncClient, db: AsyncSession, count: int) -> tuple[dict[str, str], list[str]]:
    owner = await make_user(client, db, role="owner")
    tech = (await add_member(client, owner["headers"], role="l1_tech"))["headers"]
    flow = (await client.post(f"{API}/flows", headers=owner["headers"],
                              json={"title": "two steps", "category": "software", "tree": TREE})).json()
    ids = []
    for _ in range(count):
        body = (await client.post(f"{API}/intake", headers=tech,
                                  json={"problem_statement": "p", "flow_id": flow["id"]})).json()
        ids.append(body["session_id"])
    return tech, ids


def _step(client: AsyncClient, headers: dict[str, str], sid: str, key: str) -> Any:
    return client.post(f"{API}/sessions/{sid}/step", headers={**headers, "Idempotency-Key": key},
                       json={"node_id": "a", "answer": "go"})


async def _until(predicate: Any, what: str) -> None:
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_burst_past_an_accounts_share_is_refused_at_once_and_another_account_is_still_served(
    make_stack: StackFactory, temporal_client: Client, db: AsyncSession
) -> None:
    # No worker while the burst arrives: what is let in stays in flight, so the bound is met for certain.
    async with make_stack(with_worker=False, workflow_call_timeout_s=60, admission_max_in_flight=6,
                          admission_account_share=0.5) as stack:
        client, queue, admission = stack.client, stack.settings.temporal_task_queue, stack.app.state.admission
        async with build_worker(temporal_client, stack.deps, task_queue=queue):
            tech_a, walks_a = await _walks(client, db, BURST)
            tech_b, [walk_b] = await _walks(client, db, 1)

        keys = {sid: f"burst-{uuid.uuid4()}" for sid in walks_a}
        sent = {sid: asyncio.ensure_future(_step(client, tech_a, sid, keys[sid])) for sid in walks_a}
        await _until(lambda: sum(t.done() for t in sent.values()) == BURST - 3, "the refusals")
        refused: dict[str, Response] = {sid: t.result() for sid, t in sent.items() if t.done()}
        for answer in refused.values():
            assert answer.status_code == 429, answer.text
            assert answer.headers["Retry-After"] == "1"
            assert "Your account has 3 walk session commands in progress" in answer.json()["detail"]
        assert admission.in_flight == 3

        # Account A holds its share; B's command is let in (it waits for the worker like A's three).
        b_step = asyncio.ensure_future(_step(client, tech_b, walk_b, f"b-{uuid.uuid4()}"))
        await _until(lambda: admission.in_flight == 4, "B's command to be let in")
        assert not b_step.done()

        async with build_worker(temporal_client, stack.deps, task_queue=queue):
            assert (await b_step).status_code == 200
            served = await asyncio.gather(*(t for sid, t in sent.items() if sid not in refused))
            assert [r.status_code for r in served] == [200, 200, 200]
            retried: list[int] = []
            again = await asyncio.gather(*(sent_until_served(lambda sid=sid: _step(client, tech_a, sid, keys[sid]),
                                                             retried) for sid in refused))
            assert {r.status_code for r in again} == {200}, [r.text for r in again]
            assert 503 not in retried
            for sid in walks_a:  # every walk took its step exactly once
                got = (await client.get(f"{API}/sessions/{sid}", headers=tech_a)).json()
                assert [s["node_id"] for s in got["walked_path"]] == ["a"], got
        assert admission.in_flight == 0
