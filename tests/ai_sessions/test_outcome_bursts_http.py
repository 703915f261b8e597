"""Bursts of outcomes on one fix: exactly once when workflow tasks holding committed writes are dropped, and a
burst past the engine's limit of 10 unfinished updates per workflow is served (the SDK retries admission), not
refused with a 503.

The outside tester's failure: 15-20 concurrent outcomes on one fix, each with its own Idempotency-Key; a dropped
workflow task replayed its committed local activities with stale versions, so callers got 409s for changes that
were stored, and the fix answered 409 to every later outcome. Here the worker drops tasks on purpose.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from typing import Any

from httpx import AsyncClient, Response
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from db.models import AppliedCommand, SuggestedFix
from tests.ai_sessions.support import API, session_with_fix, state_version
from tests.helpers import make_user, sent_until_served
from tests.stack import StackFactory
from tests.workflows.task_drops import TaskDropper
from worker import build_worker


async def _fix(db: AsyncSession, fid: str) -> SuggestedFix:
    row = await db.scalar(select(SuggestedFix).where(SuggestedFix.id == uuid.UUID(fid))
                          .execution_options(populate_existing=True))
    assert row is not None
    await db.commit()
    return row


async def _engineer_with_fix(client: AsyncClient, db: AsyncSession) -> tuple[dict[str, str], str, str]:
    """An engineer's auth headers, and the outcome URL and id of a proposed fix on their new session."""
    user = await make_user(client, db, role="engineer")
    headers: dict[str, str] = user["headers"]
    sid, fid = await session_with_fix(client, headers)
    return headers, f"{API}/{sid}/suggested-fixes/{fid}/outcome", fid


def _patch(client: AsyncClient, url: str, headers: dict[str, str], body: dict[str, Any],
           retried: list[int] | None = None) -> Awaitable[Response]:
    """PATCH, sent again with the same Idempotency-Key while the API answers 429 or 503."""
    return sent_until_served(lambda: client.patch(url, headers=headers, json=body), retried)


async def test_concurrent_outcomes_stay_exactly_once_when_workflow_tasks_are_dropped(
    make_stack: StackFactory, temporal_client: Client, db: AsyncSession
) -> None:
    dropper = TaskDropper(every=3, budget=4)
    async with make_stack(with_worker=False, workflow_call_timeout_s=30) as stack:
        client = stack.client
        user = await make_user(client, db, role="engineer")
        headers: dict[str, str] = user["headers"]
        async with build_worker(temporal_client, stack.deps,
                                task_queue=stack.settings.temporal_task_queue, interceptors=[dropper]):
            sid, fid = await session_with_fix(client, headers)
            url = f"{API}/{sid}/suggested-fixes/{fid}/outcome"
            version_before, session_before = (await _fix(db, fid)).version, await state_version(db, sid)
            keys = [f"burst-{i}-{uuid.uuid4().hex[:8]}" for i in range(20)]
            bodies = [{"outcome": "applied_partial" if i % 2 else "applied_pending", "notes": f"note {i}"}
                      for i in range(20)]
            answers = await asyncio.gather(*(_patch(client, url, {**headers, "Idempotency-Key": k}, b)
                                             for k, b in zip(keys, bodies, strict=True)))

            assert dropper.dropped >= 1, "the test must drop tasks holding committed writes"
            codes = [a.status_code for a in answers]
            assert set(codes) <= {200, 409}, [a.text for a in answers]
            accepted = {k for k, a in zip(keys, answers, strict=True) if a.status_code == 200}
            refused = {k for k, a in zip(keys, answers, strict=True) if a.status_code == 409}
            # Non-final outcomes on a non-final fix: nothing should be refused at all.
            assert not refused, [a.text for a in answers if a.status_code != 200]

            # Every 200 is stored once and nothing else is: the log names exactly the accepted commands,
            # and the fix's and the session's versions count each of them once.
            logged = set((await db.scalars(select(AppliedCommand.command_id)
                                           .where(AppliedCommand.entity_id == uuid.UUID(fid)))).all())
            await db.commit()
            # Update ids read "record_outcome:<Idempotency-Key>@<user>".
            assert {c.split(":", 1)[1].split("@")[0] for c in logged if c.startswith("record_outcome:")} == accepted
            fix = await _fix(db, fid)
            assert fix.version == version_before + len(accepted)
            assert await state_version(db, sid) == session_before + len(accepted)
            # What is stored was sent by a caller that got a 200.
            sent = {(b["outcome"], b["notes"]) for k, b in zip(keys, bodies, strict=True) if k in accepted}
            stored_notes = fix.partial_notes if fix.status == "applied_partial" else fix.pending_reason
            assert (fix.status, stored_notes) in sent

            # The fix is not wedged: a final outcome is taken, and the one after it is refused.
            done = await _patch(client, url, {**headers, "Idempotency-Key": "final"}, {"outcome": "applied_success"})
            assert done.status_code == 200, done.text
            assert done.json()["status"] == "applied_success"
            late = await _patch(client, url, {**headers, "Idempotency-Key": "late"},
                                {"outcome": "applied_partial", "notes": "too late"})
            assert late.status_code == 409, late.text
            assert (await _fix(db, fid)).version == version_before + len(accepted) + 1


async def test_a_burst_past_the_in_flight_limit_is_served_not_refused(client: AsyncClient, db: AsyncSession) -> None:
    headers, url, fid = await _engineer_with_fix(client, db)
    version_before = (await _fix(db, fid)).version
    retried: list[int] = []
    # Temporal admits at most 10 unfinished updates per workflow; 24 at once go past it (the client retries
    # admission within the API's accept bound).
    answers = await asyncio.gather(*(
        _patch(client, url, {**headers, "Idempotency-Key": f"b-{i}"}, {"outcome": "applied_pending",
                                                                       "notes": f"wait {i}"}, retried)
        for i in range(24)))
    assert [a.status_code for a in answers] == [200] * 24, [a.text for a in answers if a.status_code != 200]
    assert 503 not in retried, "a burst on one fix is not an outage"
    assert (await _fix(db, fid)).version == version_before + 24


async def test_a_fix_whose_row_moved_on_behind_its_workflow_reloads_instead_of_wedging(
    client: AsyncClient, db: AsyncSession
) -> None:
    headers, url, fid = await _engineer_with_fix(client, db)
    first = await client.patch(url, headers=headers, json={"outcome": "applied_partial", "notes": "half of it"})
    assert first.status_code == 200, first.text  # the fix's workflow now runs with the row's version cached
    # The row moves on without the workflow (what a dropped task's replay used to leave behind).
    await db.execute(update(SuggestedFix).where(SuggestedFix.id == uuid.UUID(fid))
                     .values(version=SuggestedFix.version + 5))
    await db.commit()
    moved = (await _fix(db, fid)).version
    answer = await client.patch(url, headers=headers, json={"outcome": "applied_pending", "notes": "replication"})
    assert answer.status_code == 200, answer.text
    fix = await _fix(db, fid)
    assert (fix.status, fix.pending_reason, fix.version) == ("applied_pending", "replication", moved + 1)
    done = await client.patch(url, headers=headers, json={"outcome": "applied_success"})
    assert done.status_code == 200, done.text
