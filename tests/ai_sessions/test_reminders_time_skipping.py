"""Pending-verification reminders on the time-skipping server: hours and days pass, nobody waits.

Real Postgres and the real persistence and notify activities; only the clock is skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.notify import NotifyActivities
from activities.persistence import FixPersistence
from core.config import Settings
from db.models import AiSession, Notification, SuggestedFix
from services.ai_sessions import FixCommands, FixRef
from services.workflow_client import WorkflowClient
from tests.ai_sessions.support import session_with_fix
from tests.helpers import add_member, make_user
from tests.stack import SmtpSink
from workflows.contracts.fix import QUERY_FIX_STATE, FixControl, OutcomeInput, fix_workflow_id
from workflows.fix_verification import FixVerificationWorkflow


@dataclass
class Parked:
    """A fix ready to be parked on the time-skipping server, and how to look at it."""

    env: WorkflowEnvironment
    fixes: FixCommands
    ref: FixRef
    parker: uuid.UUID
    recipient: uuid.UUID
    sink: SmtpSink
    session_factory: async_sessionmaker[AsyncSession]

    def handle(self) -> WorkflowHandle[Any, Any]:
        """The fix's workflow."""
        return self.env.client.get_workflow_handle(fix_workflow_id(self.ref.id))

    async def control(self) -> FixControl:
        """The live workflow state."""
        return await self.handle().query(QUERY_FIX_STATE, result_type=FixControl)

    async def notifications(self, kind: str) -> list[Notification]:
        """This fix's notifications of `kind`, oldest first."""
        async with self.session_factory() as session:
            rows = await session.scalars(select(Notification).where(
                Notification.fix_id == self.ref.id, Notification.kind == kind).order_by(Notification.created_at))
            return list(rows.all())

    async def outcome(self, outcome: str, notes: str | None = None) -> None:
        """Record an outcome through the fix's workflow, as the parker."""
        done = await self.fixes.record_outcome(self.ref, OutcomeInput(
            outcome=outcome, notes=notes, by_user_id=self.parker), None)
        self.ref = FixRef(id=self.ref.id, session_id=self.ref.session_id, account_id=self.ref.account_id,
                          status=done.status, title=self.ref.title)


@pytest.fixture
async def parked(
    time_skipping_env: WorkflowEnvironment, settings: Settings, client: AsyncClient, db: AsyncSession,
    session_factory: async_sessionmaker[AsyncSession], smtp_sink: tuple[SmtpSink, int],
) -> AsyncIterator[Parked]:
    """An engineer's fix on a session, an escalation recipient, and a worker on the time-skipping server."""
    owner = await make_user(client, db, role="owner")
    lead = await add_member(client, owner["headers"], role="admin")
    put = await client.put("/api/v1/account/settings", headers=owner["headers"],
                           json={"default_escalation_recipient_ids": [lead["user"]["id"]]})
    assert put.status_code == 200, put.text  # reminders and overdue keep their defaults: PT2H, PT8H, PT24H; P3D
    session_id, fix_id = await session_with_fix(client, owner["headers"])
    sink, port = smtp_sink
    queue = f"fix-ts-{uuid.uuid4().hex[:8]}"
    custom = settings.model_copy(update={"temporal_task_queue": queue, "smtp_host": "127.0.0.1", "smtp_port": port})
    env = time_skipping_env
    fixes = FixCommands(WorkflowClient(env.client, task_queue=queue, accept_timeout_s=10), custom)
    ref = FixRef(id=uuid.UUID(fix_id), session_id=uuid.UUID(session_id), account_id=uuid.UUID(owner["account_id"]),
                 status="proposed", title="Reset credential cache")
    notify = NotifyActivities(custom, session_factory)
    async with Worker(env.client, task_queue=queue, workflows=[FixVerificationWorkflow],
                      activities=[*FixPersistence(session_factory).all(), notify.email_notification]):
        yield Parked(env=env, fixes=fixes, ref=ref, parker=uuid.UUID(owner["user"]["id"]),
                     recipient=uuid.UUID(lead["user"]["id"]), sink=sink, session_factory=session_factory)


async def _after(p: Parked, wait: timedelta, check: Callable[[], Awaitable[bool]]) -> None:
    await p.env.sleep(wait)
    assert await check()


async def test_reminders_fire_at_the_configured_hours_then_overdue_after_days(parked: Parked) -> None:
    p = parked
    await p.outcome("applied_pending", "waiting on AD replication")
    state = await p.control()
    assert [n.kind for n in state.schedule] == ["reminder", "reminder", "reminder", "overdue"]
    parked_at = state.schedule[0].due_at - timedelta(hours=2)
    assert [n.due_at - parked_at for n in state.schedule] == [
        timedelta(hours=2), timedelta(hours=8), timedelta(hours=24), timedelta(days=3)]

    async def fired(count: int) -> bool:
        return (await p.control()).fired == count

    await _after(p, timedelta(hours=1, minutes=58), lambda: fired(0))
    assert await p.notifications("fix_verification_reminder") == []
    await _after(p, timedelta(minutes=4), lambda: fired(1))        # 2 h
    await _after(p, timedelta(hours=5, minutes=56), lambda: fired(1))
    await _after(p, timedelta(minutes=4), lambda: fired(2))        # 8 h
    await _after(p, timedelta(hours=16), lambda: fired(3))         # 24 h
    await _after(p, timedelta(days=1), lambda: fired(3))
    await _after(p, timedelta(days=1), lambda: fired(4))           # 3 days: overdue

    reminders = await p.notifications("fix_verification_reminder")
    assert [n.user_id for n in reminders] == [p.parker] * 3
    assert all("waiting on AD replication" in n.title for n in reminders)
    overdue = await p.notifications("fix_verification_overdue")
    assert [n.user_id for n in overdue] == [p.recipient]
    async with p.session_factory() as session:
        fix = await session.get(SuggestedFix, p.ref.id)
        assert fix is not None and fix.status == "applied_pending"
        assert fix.verification_overdue_at is not None and fix.next_reminder_at is None
        assert fix.verification_overdue_at - parked_at == timedelta(days=3)
    # Each notice also went out as an email, and its delivery is recorded on the notification.
    await p.sink.wait_for(4)
    assert all(n.email_status == "sent" for n in await p.notifications("fix_verification_reminder"))
    # Nothing is left to remind of: no further notice, however long it waits.
    await p.env.sleep(timedelta(days=5))
    assert len(await p.notifications("fix_verification_reminder")) == 3


async def test_reparking_restarts_the_schedule_and_an_outcome_cancels_it(parked: Parked) -> None:
    p = parked
    await p.outcome("applied_pending", "waiting on the client to power-cycle")
    await p.env.sleep(timedelta(hours=3))
    assert (await p.control()).fired == 1
    await p.outcome("applied_pending", "now waiting on the licence sync")  # restarts from now: next at +2 h
    state = await p.control()
    assert state.fired == 0 and state.pending_reason == "now waiting on the licence sync"
    await p.env.sleep(timedelta(hours=1, minutes=50))
    assert (await p.control()).fired == 0
    await p.env.sleep(timedelta(minutes=20))
    assert (await p.control()).fired == 1
    titles = [n.title for n in await p.notifications("fix_verification_reminder")]
    assert len(titles) == 2 and "licence sync" in titles[1] and "power-cycle" in titles[0]

    await p.outcome("applied_success")
    assert await p.handle().result() == "applied_success"  # final: the workflow ends, nothing more is due
    await p.env.sleep(timedelta(days=4))
    assert len(await p.notifications("fix_verification_reminder")) == 2
    assert await p.notifications("fix_verification_overdue") == []
    async with p.session_factory() as session:
        fix = await session.get(SuggestedFix, p.ref.id)
        assert fix is not None and fix.next_reminder_at is None
        assert fix.pending_reason == "now waiting on the licence sync"
        count = await session.scalar(select(func.count()).select_from(Notification)
                                     .where(Notification.fix_id == p.ref.id))
        assert count == 2


async def test_a_parked_fix_stops_reminding_once_its_session_is_resolved(parked: Parked) -> None:
    p = parked
    await p.outcome("applied_pending", "waiting on AD replication")
    await p.env.sleep(timedelta(hours=3))
    assert (await p.control()).fired == 1
    async with p.session_factory() as session:  # the engineer resolves the case (through its own workflow)
        await session.execute(update(AiSession).where(AiSession.id == p.ref.session_id).values(status="resolved"))
        await session.commit()
    await p.env.sleep(timedelta(days=4))  # past the 8 h and 24 h reminders and the 3-day overdue notice
    assert len(await p.notifications("fix_verification_reminder")) == 1
    assert await p.notifications("fix_verification_overdue") == []
    state = await p.control()
    assert state.schedule == [] and state.next_reminder_at is None
    async with p.session_factory() as session:
        fix = await session.get(SuggestedFix, p.ref.id)
        assert fix is not None and fix.status == "applied_pending" and fix.next_reminder_at is None
