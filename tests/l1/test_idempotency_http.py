"""Idempotency-Key on walk commands: replay after the walk ended, 422 for another body, 409 while in flight,
intake and escalate-without-walk that a retry cannot duplicate."""

from __future__ import annotations

import asyncio
import uuid

from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import InternalTicket, L1WalkSession
from tests.l1.support import adhoc_session, create_flow, intake, l1_tech, team
from tests.stack import SmtpSink, StackFactory

API = "/api/v1/l1"


def keyed(headers: dict[str, str], key: str | None = None) -> dict[str, str]:
    """`headers` plus a fresh (or the given) Idempotency-Key."""
    return {**headers, "Idempotency-Key": key or f"k-{uuid.uuid4()}"}


async def test_a_retried_resolve_replays_its_answer_after_the_walk_ended(client: AsyncClient, db: AsyncSession) -> None:
    tech = (await l1_tech(client, db))["headers"]
    sid = await adhoc_session(client, tech)
    h = keyed(tech)
    first = await client.post(f"{API}/sessions/{sid}/resolve", headers=h, json={"helpful": True})
    assert first.status_code == 200, first.text
    again = await client.post(f"{API}/sessions/{sid}/resolve", headers=h, json={"helpful": True})
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    # Without the key the walk's state speaks: it is resolved.
    plain = await client.post(f"{API}/sessions/{sid}/resolve", headers=tech, json={"helpful": True})
    assert plain.status_code == 409


async def test_a_key_reused_for_another_request_is_422_not_a_stale_answer(
    client: AsyncClient, db: AsyncSession
) -> None:
    t = await team(client, db)
    flow = await create_flow(client, t["owner"]["headers"])
    tech = t["tech"]["headers"]
    sid = (await intake(client, tech, problem_statement="no print", flow_id=flow["id"]))["session_id"]
    h = keyed(tech)
    one = await client.post(f"{API}/sessions/{sid}/step", headers=h, json={"node_id": "power", "answer": "Yes"})
    assert one.status_code == 200 and one.json()["next_node"]["id"] == "paper"
    reused = await client.post(f"{API}/sessions/{sid}/step", headers=h, json={"node_id": "paper", "answer": "No"})
    assert reused.status_code == 422 and "Idempotency-Key" in reused.json()["detail"]
    other_route = await client.post(f"{API}/sessions/{sid}/notes", headers=h,
                                    json={"notes": [{"text": "x", "ts": "2026-05-28T10:00:00Z"}]})
    assert other_route.status_code == 422
    # The key is per account: another account may use the same string freely.
    stranger = (await l1_tech(client, db))["headers"]
    theirs = await adhoc_session(client, stranger)
    ok = await client.post(f"{API}/sessions/{theirs}/resolve", headers=keyed(stranger, h["Idempotency-Key"]),
                           json={"helpful": False})
    assert ok.status_code == 200, ok.text


async def test_concurrent_requests_with_one_key_apply_once(client: AsyncClient, db: AsyncSession) -> None:
    tech = (await l1_tech(client, db))["headers"]
    sid = await adhoc_session(client, tech)
    h = keyed(tech)
    body = {"notes": [{"text": "called the customer", "ts": "2026-05-28T10:00:00Z"}]}
    answers = await asyncio.gather(*(client.post(f"{API}/sessions/{sid}/notes", headers=h, json=body)
                                     for _ in range(8)))
    codes = sorted(a.status_code for a in answers)
    assert set(codes) <= {200, 409} and 200 in codes, codes
    assert all("still being processed" in a.json()["detail"] for a in answers if a.status_code == 409)
    got = (await client.get(f"{API}/sessions/{sid}", headers=tech)).json()
    assert [n["text"] for n in got["walk_notes"]] == ["called the customer"]


async def test_a_retried_intake_reaches_the_same_session(client: AsyncClient, db: AsyncSession) -> None:
    t = await team(client, db)
    flow = await create_flow(client, t["owner"]["headers"])
    h = keyed(t["tech"]["headers"])
    payload = {"problem_statement": "It will not print", "flow_id": flow["id"]}
    first = await client.post(f"{API}/intake", headers=h, json=payload)
    second = await client.post(f"{API}/intake", headers=h, json=payload)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    count = await db.scalar(select(func.count()).select_from(L1WalkSession)
                            .where(L1WalkSession.account_id == uuid.UUID(t["account_id"])))
    assert count == 1


async def test_escalate_without_walk_with_a_key_escalates_and_emails_once(
    make_stack: StackFactory, smtp_sink: tuple[SmtpSink, int], db: AsyncSession
) -> None:
    sink, port = smtp_sink
    async with make_stack(smtp_host="127.0.0.1", smtp_port=port) as stack:
        t = await team(stack.client, db)
        engineer = t["engineer"]["user"]
        resp = await stack.client.put("/api/v1/account/settings", headers=t["owner"]["headers"],
                                      json={"default_escalation_recipient_ids": [engineer["id"]]})
        assert resp.status_code == 200, resp.text
        h = keyed(t["tech"]["headers"])
        payload = {"problem_statement": "No KB available", "reason_category": "no_kb"}
        answers = [await stack.client.post(f"{API}/escalate-without-walk", headers=h, json=payload)
                   for _ in range(2)]
        assert [a.status_code for a in answers] == [200, 200]
        assert answers[0].json() == answers[1].json()
        assert answers[0].json()["notified"] == [engineer["email"]]
        await sink.wait_for(1)
        await asyncio.sleep(0.5)  # a duplicate escalation would email again within this time
        assert len(sink.to(engineer["email"])) == 1
        sessions = await db.scalar(select(func.count()).select_from(L1WalkSession)
                                   .where(L1WalkSession.account_id == uuid.UUID(t["account_id"])))
        tickets = await db.scalar(select(func.count()).select_from(InternalTicket)
                                  .where(InternalTicket.account_id == uuid.UUID(t["account_id"])))
        assert (sessions, tickets) == (1, 1)


async def test_intake_with_the_engine_down_leaves_no_session_and_a_retry_completes(
    make_stack: StackFactory, db: AsyncSession
) -> None:
    # No worker on this stack's queue: intake cannot create the walk, so nothing is committed.
    async with make_stack(with_worker=False, workflow_call_timeout_s=1) as down:
        tech = (await l1_tech(down.client, db))["headers"]
        h = keyed(tech)
        payload = {"problem_statement": "Outlook keeps asking for a password", "adhoc": True}
        refused = await down.client.post(f"{API}/intake", headers=h, json=payload)
        assert refused.status_code == 503, refused.text
        assert await db.scalar(select(func.count()).select_from(L1WalkSession)) == 0
        queue = down.settings.temporal_task_queue
    # The retry (same key) meets a worker on the same queue: one session, walkable.
    async with make_stack(temporal_task_queue=queue) as up:
        retried = await up.client.post(f"{API}/intake", headers=h, json=payload)
        assert retried.status_code == 200, retried.text
        sid = retried.json()["session_id"]
        notes = await up.client.post(f"{API}/sessions/{sid}/notes", headers=tech,
                                     json={"notes": [{"text": "retry worked", "ts": "2026-05-28T10:00:00Z"}]})
        assert notes.status_code == 200, notes.text
        assert await db.scalar(select(func.count()).select_from(L1WalkSession)) == 1
