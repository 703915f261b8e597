"""Exactly once for walks, AI sessions and handoffs when workflow tasks holding committed writes are dropped.

A dropped task (its completion lost, e.g. timed out under load) runs again from history: its updates are
delivered again and their persistence activities re-run although their writes committed. Every write must
recognise its own command then. The worker here drops tasks on purpose (tests/workflows/task_drops.py);
fixes have their own test in tests/ai_sessions/test_outcome_bursts_http.py.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from functools import partial
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from db.models import AiSession, AiSessionMessage, EscalationEvent, L1WalkNote, Notification, SessionHandoff
from tests.handoffs.support import escalated, make_handoff_desk
from tests.helpers import add_member, make_user, sent_until_served
from tests.l1.support import adhoc_session, l1_tech
from tests.stack import StackFactory
from tests.workflows.task_drops import TaskDropper
from worker import build_worker
from workflows.contracts.handoff import QUERY_HANDOFF_STATE, HandoffControl


async def _count(db: AsyncSession, query: Any) -> int:
    value = await db.scalar(query)
    await db.commit()
    return int(value or 0)


@pytest.fixture
async def dropping(make_stack: StackFactory, temporal_client: Client) -> AsyncIterator[tuple[AsyncClient, TaskDropper]]:
    """An API whose only worker drops a workflow task after every 2 committed updates, once armed."""
    dropper = TaskDropper(every=2, budget=0)  # the test arms it after its setup
    async with make_stack(with_worker=False, workflow_call_timeout_s=30) as stack, build_worker(
            temporal_client, stack.deps, task_queue=stack.settings.temporal_task_queue, interceptors=[dropper]):
        yield stack.client, dropper


async def test_walk_notes_are_stored_once_each_when_tasks_are_dropped(
    dropping: tuple[AsyncClient, TaskDropper], db: AsyncSession
) -> None:
    client, dropper = dropping
    tech = await l1_tech(client, db)
    sid = await adhoc_session(client, tech["headers"], problem="printer offline")
    url = f"/api/v1/l1/sessions/{sid}/notes"
    dropper.budget = 3
    answers = await asyncio.gather(*(
        sent_until_served(partial(client.post, url, headers={**tech["headers"], "Idempotency-Key": f"note-{i}"},
                                  json={"notes": [{"text": f"checked cable {i}", "ts": "2026-12-04T10:00:00Z"}]}))
        for i in range(16)))
    assert [a.status_code for a in answers] == [200] * 16, [a.text for a in answers if a.status_code != 200]
    assert dropper.dropped >= 1
    stored = (await db.scalars(select(L1WalkNote.text).where(L1WalkNote.session_id == uuid.UUID(sid)))).all()
    await db.commit()
    assert sorted(stored) == sorted(f"checked cable {i}" for i in range(16))
    done = await sent_until_served(partial(client.post, f"/api/v1/l1/sessions/{sid}/resolve", headers=tech["headers"],
                                           json={"helpful": True, "resolution_notes": "reseated the cable"}))
    assert done.status_code == 200, done.text


async def test_session_messages_are_stored_once_each_when_tasks_are_dropped(
    dropping: tuple[AsyncClient, TaskDropper], db: AsyncSession
) -> None:
    client, dropper = dropping
    user = await make_user(client, db, role="engineer")
    opened = await sent_until_served(lambda: client.post("/api/v1/ai-sessions", headers=user["headers"], json={
        "session_type": "chat", "intake_type": "free_text", "intake_content": {"text": "Outlook prompts"}}))
    assert opened.status_code == 201, opened.text
    sid = opened.json()["id"]
    contents = [f"observation-{i}" for i in range(8)]
    dropper.budget = 3
    answers = await asyncio.gather(*(
        sent_until_served(partial(client.post, f"/api/v1/ai-sessions/{sid}/messages",
                                  headers={**user["headers"], "Idempotency-Key": f"m-{c}"}, json={"content": c}))
        for c in contents))
    assert all(a.status_code in (200, 201) for a in answers), [a.text for a in answers]
    assert dropper.dropped >= 1
    for content in contents:
        assert await _count(db, select(func.count()).select_from(AiSessionMessage).where(
            AiSessionMessage.session_id == uuid.UUID(sid), AiSessionMessage.content == content)) == 1, content


async def test_one_claim_wins_once_when_tasks_are_dropped(
    dropping: tuple[AsyncClient, TaskDropper], db: AsyncSession
) -> None:
    client, dropper = dropping
    dropper.every = 1  # losers are refused by the validator: only the winner's update completes
    desk = await make_handoff_desk(client, db)
    session_id, handoff = await escalated(client, desk.engineer.headers)
    url = f"/api/v1/ai-sessions/{session_id}/handoffs/{handoff['id']}/claim"
    dropper.budget = 3
    seniors = [desk.owner, desk.senior, desk.admin] * 3
    answers = await asyncio.gather(*(
        sent_until_served(partial(client.post, url, headers={**m.headers, "Idempotency-Key": f"claim-{i}"}))
        for i, m in enumerate(seniors)))
    assert dropper.dropped >= 1
    winners = {a.json()["claimed_by"] for a in answers if a.status_code == 200}
    assert len(winners) == 1, [a.text for a in answers]
    winner = winners.pop()
    for answer in answers:
        assert answer.status_code in (200, 409), answer.text
        if answer.status_code == 409:
            assert answer.json()["detail"]["claimed_by_id"] == winner
    row = await db.get(SessionHandoff, uuid.UUID(handoff["id"]), populate_existing=True)
    assert row is not None and str(row.claimed_by_user_id) == winner
    await db.commit()
    assert await _count(db, select(func.count()).select_from(EscalationEvent).where(
        EscalationEvent.kind == "handoff_claimed")) == 1


async def test_twenty_one_claimers_one_winner_whom_every_answer_names_when_tasks_are_dropped(
    dropping: tuple[AsyncClient, TaskDropper], db: AsyncSession, temporal_client: Client
) -> None:
    """The session's workflow decides the claim with one local activity: a dropped task runs the claims again in
    another order after the winner's write committed, and every answer still names the claimer the row names."""
    client, dropper = dropping
    dropper.every = 1  # a refused claim never completes: each drop follows a claim answered 200 (first or again)
    desk = await make_handoff_desk(client, db)
    session_id, handoff = await escalated(client, desk.engineer.headers)
    extra = [await add_member(client, desk.owner.headers, role="engineer") for _ in range(18)]
    claimers = [desk.owner.headers, desk.senior.headers, desk.admin.headers, *(m["headers"] for m in extra)]
    url = f"/api/v1/ai-sessions/{session_id}/handoffs/{handoff['id']}/claim"
    dropper.budget = 3
    answers = await asyncio.gather(*(
        sent_until_served(partial(client.post, url, headers={**h, "Idempotency-Key": f"claim-{i}"}))
        for i, h in enumerate(claimers)))
    assert dropper.dropped >= 1
    assert sorted(a.status_code for a in answers) == [200] + [409] * 20, [a.text for a in answers]
    row = await db.get(SessionHandoff, uuid.UUID(handoff["id"]), populate_existing=True)
    session_row = await db.get(AiSession, uuid.UUID(session_id), populate_existing=True)
    await db.commit()
    assert row is not None and row.claimed_at is not None and session_row is not None
    won = next(a.json() for a in answers if a.status_code == 200)
    assert won["claimed_by"] == str(row.claimed_by_user_id) and won["claimed_by_name"] == row.claimed_by_name
    assert datetime.fromisoformat(won["claimed_at"]) == row.claimed_at
    for answer in answers:
        if answer.status_code == 409:
            detail = answer.json()["detail"]
            assert (detail["claimed_by_id"], detail["claimed_by_name"]) == (str(row.claimed_by_user_id),
                                                                            row.claimed_by_name), detail
            assert datetime.fromisoformat(detail["claimed_at"]) == row.claimed_at
    assert session_row.status == "active"
    assert await _count(db, select(func.count()).select_from(EscalationEvent).where(
        EscalationEvent.handoff_id == row.id, EscalationEvent.kind == "handoff_claimed")) == 1
    assert await _count(db, select(func.count()).select_from(Notification).where(
        Notification.handoff_id == row.id, Notification.kind == "handoff_claimed")) == 1
    # The handoff's own workflow heard of the claim (from the session's workflow, in the background).
    handle = temporal_client.get_workflow_handle(f"handoff-{handoff['id']}")
    async with asyncio.timeout(10):
        while (await handle.query(QUERY_HANDOFF_STATE, result_type=HandoffControl)).claimed_at is None:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    state = await handle.query(QUERY_HANDOFF_STATE, result_type=HandoffControl)
    assert (state.claimed_by_id, state.next_renotify_at) == (row.claimed_by_user_id, None)
