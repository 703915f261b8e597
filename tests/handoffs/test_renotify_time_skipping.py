"""An unclaimed escalation re-announced on a durable timer, its priority raised each time (time-skipping server).

Real Postgres, the real persistence, LLM (offline), notify and cross-workflow activities; only the clock skips.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.llm import LlmActivities
from activities.notify import NotifyActivities
from activities.persistence import HandoffPersistence, SessionPersistence
from activities.workflow_commands import WorkflowCommandActivities
from core.config import Settings
from db.models import EscalationEvent, Notification, SessionHandoff
from integrations.llm.offline_provider import OfflineProvider
from services.ai_sessions import AiSessionRef, SessionCommands
from services.handoffs import HandoffCommands, HandoffRef
from services.workflow_client import WorkflowClient
from tests.handoffs.support import make_handoff_desk, open_session
from tests.stack import SmtpSink
from workflows.contracts.handoff import QUERY_HANDOFF_STATE, HandoffControl, HandoffRequest, handoff_workflow_id
from workflows.handoff import HandoffWorkflow
from workflows.troubleshooting_session import TroubleshootingSessionWorkflow


@dataclass
class Escalation:
    """A handoff escalated on the time-skipping server, and how to look at it."""

    env: WorkflowEnvironment
    handoff_id: uuid.UUID
    ref: HandoffRef
    handoffs: HandoffCommands
    senior_id: uuid.UUID
    sink: SmtpSink
    session_factory: async_sessionmaker[AsyncSession]

    async def control(self) -> HandoffControl:
        """The live workflow state."""
        handle = self.env.client.get_workflow_handle(handoff_workflow_id(self.handoff_id))
        return await handle.query(QUERY_HANDOFF_STATE, result_type=HandoffControl)

    async def rows(self, model: Any, kind: str) -> list[Any]:
        """This handoff's notifications or events of `kind`, oldest first."""
        async with self.session_factory() as session:
            found = await session.scalars(select(model).where(model.handoff_id == self.handoff_id,
                                                              model.kind == kind).order_by(model.created_at))
            return list(found.all())


@pytest.fixture
async def escalation(
    time_skipping_env: WorkflowEnvironment, settings: Settings, client: AsyncClient, db: AsyncSession,
    session_factory: async_sessionmaker[AsyncSession], smtp_sink: tuple[SmtpSink, int],
) -> AsyncIterator[Escalation]:
    """A session escalated by an engineer (renotify after the default 30 minutes), on a time-skipping worker."""
    desk = await make_handoff_desk(client, db)
    session = await open_session(client, desk.engineer.headers)
    sink, port = smtp_sink
    queue = f"handoff-ts-{uuid.uuid4().hex[:8]}"
    custom = settings.model_copy(update={"temporal_task_queue": queue, "smtp_host": "127.0.0.1", "smtp_port": port})
    env = time_skipping_env
    workflows = WorkflowClient(env.client, task_queue=queue, accept_timeout_s=10)
    notify = NotifyActivities(custom, session_factory)
    activities = [*SessionPersistence(session_factory).all(), *HandoffPersistence(session_factory).all(),
                  *LlmActivities(OfflineProvider(), session_factory).all(), notify.email_notifications,
                  *WorkflowCommandActivities(env.client, custom, session_factory, task_queue=queue).all()]
    async with Worker(env.client, task_queue=queue, workflows=[TroubleshootingSessionWorkflow, HandoffWorkflow],
                      activities=activities):
        ref = AiSessionRef(id=uuid.UUID(session["id"]), account_id=uuid.UUID(desk.account_id), status="active",
                           session_type="chat", state_version=0, psa_ticket_id=None)
        created = await SessionCommands(workflows, custom).hand_off(ref, HandoffRequest(
            handoff_id=uuid.uuid4(), intent="escalate", engineer_notes="Stuck", by_user_id=uuid.UUID(desk.engineer.id),
        ), None)
        handoff = created.handoff
        yield Escalation(
            env=env, handoff_id=handoff.id, handoffs=HandoffCommands(workflows, custom),
            ref=HandoffRef(id=handoff.id, session_id=handoff.session_id, account_id=handoff.account_id,
                           intent="escalate", created_by_user_id=handoff.created_by_user_id, claimed_by_user_id=None,
                           claimed_by_name=None, claimed_at=None, session_status="escalated", session_type="chat"),
            senior_id=uuid.UUID(desk.senior.id), sink=sink, session_factory=session_factory,
        )
        # A timer left behind on a queue nobody polls any more stalls the shared server's clock for later tests.
        for workflow_id in (handoff_workflow_id(handoff.id), f"session-{session['id']}"):
            with contextlib.suppress(RPCError):
                await env.client.get_workflow_handle(workflow_id).terminate("test over")


async def test_unclaimed_escalation_is_announced_again_with_a_higher_priority(escalation: Escalation) -> None:
    e = escalation
    assert (await e.control()).priority == "normal"
    await e.sink.wait_for(3)  # the first announcement: owner, senior and admin
    assert len(await e.rows(Notification, "handoff_escalated")) == 3

    await e.env.sleep(timedelta(minutes=29))
    assert await e.rows(Notification, "handoff_unclaimed") == []
    await e.env.sleep(timedelta(minutes=2))
    state = await e.control()
    assert (state.priority, state.renotify_count) == ("high", 1)
    unclaimed = await e.rows(Notification, "handoff_unclaimed")
    assert len(unclaimed) == 3 and all("now high" in n.title for n in unclaimed)
    await e.sink.wait_for(6)
    assert [ev.data["priority"] for ev in await e.rows(EscalationEvent, "handoff_priority_raised")] == ["high"]

    await e.env.sleep(timedelta(minutes=30))
    state = await e.control()
    assert (state.priority, state.renotify_count, state.next_renotify_at) == ("urgent", 2, None)
    # Urgent is the top: no more announcements (the next would be due in 30 minutes). Sleeps stay within the run's
    # idle hour: the time-skipping server times out a sleep across the end of a child whose parent has closed.
    await e.env.sleep(timedelta(minutes=50))
    assert len(await e.rows(Notification, "handoff_unclaimed")) == 6
    async with e.session_factory() as session:
        row = await session.get(SessionHandoff, e.handoff_id)
        assert row is not None and (row.priority, row.renotify_count) == ("urgent", 2)


async def test_a_claimed_escalation_is_not_announced_again(escalation: Escalation) -> None:
    e = escalation
    claimed = await e.handoffs.claim(e.ref, e.senior_id, "Senior", None)
    assert claimed.claimed_by_id == e.senior_id and claimed.session_status == "active"

    await e.env.sleep(timedelta(minutes=50))  # past the first re-announcement's moment (30 min)
    assert await e.rows(Notification, "handoff_unclaimed") == []
    assert (await e.control()).next_renotify_at is None
