"""The drift watch on the time-skipping server: ten minutes after a verified status change the session's
workflow re-reads the ticket, records what it found and tells the engineer when the status moved.

Real Postgres, the real ConnectWise client against the simulator over HTTP, a real SMTP sink; only the
clock is skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.notify import NotifyActivities
from activities.persistence import SessionPersistence, WritebackPersistence
from activities.psa import PsaActivities
from core.config import Settings
from core.credentials import CredentialCipher
from db.models import Notification, PsaWriteback
from integrations.psa.egress import EgressPolicy
from services.ai_sessions import AiSessionRef, SessionCommands
from services.workflow_client import WorkflowClient
from tests.psa.cw_simulator import SimulatorHandle
from tests.psa.support import IN_PROGRESS, RESOLUTION, RESOLVED, TICKET, Desk, make_desk, set_preferences
from tests.stack import SmtpSink
from workflows.contracts.ai_session import CloseInput, SessionCreate, session_workflow_id
from workflows.troubleshooting_session import TroubleshootingSessionWorkflow


@dataclass
class Watch:
    """A session on the simulator's ticket, served by a worker on the time-skipping server."""

    env: WorkflowEnvironment
    commands: SessionCommands
    desk: Desk
    sink: SmtpSink
    session_factory: async_sessionmaker[AsyncSession]

    async def resolve(self) -> uuid.UUID:
        """Open a session on the ticket and post its resolution note (the status is set and verified)."""
        sid, account, user = uuid.uuid4(), uuid.UUID(self.desk.account_id), uuid.UUID(self.desk.engineer_id)
        ref = AiSessionRef(id=sid, account_id=account, status="active", session_type="chat", state_version=0,
                           psa_ticket_id=str(TICKET))
        await self.commands.create(SessionCreate(
            session_id=sid, account_id=account, user_id=user, session_type="chat", intake_type="psa_ticket",
            intake_text="", problem_summary="", psa_connection_id=uuid.UUID(self.desk.connection_id),
            psa_ticket_id=str(TICKET)), None)
        posted = await self.commands.post_to_psa(ref, CloseInput(kind="resolution_note", by_user_id=user,
                                                                 markdown=RESOLUTION["markdown"]), None)
        assert posted.verified_status_id == RESOLVED
        return sid

    async def log(self, sid: uuid.UUID) -> PsaWriteback:
        async with self.session_factory() as session:
            row = await session.scalar(select(PsaWriteback).where(PsaWriteback.session_id == sid))
            assert row is not None
            return row

    async def drift_notifications(self, sid: uuid.UUID) -> list[Notification]:
        async with self.session_factory() as session:
            rows = await session.scalars(select(Notification).where(Notification.session_id == sid,
                                                                    Notification.kind == "psa_status_drift"))
            return list(rows.all())


@pytest.fixture
async def watch(time_skipping_env: WorkflowEnvironment, settings: Settings, client: AsyncClient, db: AsyncSession,
                session_factory: async_sessionmaker[AsyncSession], cw_sim: SimulatorHandle,
                smtp_sink: tuple[SmtpSink, int]) -> AsyncIterator[Watch]:
    desk = await make_desk(client, db, cw_sim)
    await set_preferences(client, desk, cw_resolved_status_id=RESOLVED)  # the re-read keeps its default: PT10M
    sink, port = smtp_sink
    queue = f"drift-ts-{uuid.uuid4().hex[:8]}"
    custom = settings.model_copy(update={"temporal_task_queue": queue, "smtp_host": "127.0.0.1", "smtp_port": port})
    env = time_skipping_env
    commands = SessionCommands(WorkflowClient(env.client, task_queue=queue, accept_timeout_s=10), custom)
    psa = PsaActivities(session_factory, CredentialCipher(settings.credentials_key),
                        egress=EgressPolicy(allow_private=True))
    async with Worker(env.client, task_queue=queue, workflows=[TroubleshootingSessionWorkflow],
                      activities=[*SessionPersistence(session_factory).all(),
                                  *WritebackPersistence(session_factory).all(), *psa.all(),
                                  NotifyActivities(custom, session_factory).email_notification]):
        yield Watch(env=env, commands=commands, desk=desk, sink=sink, session_factory=session_factory)


async def test_a_status_flipped_after_verification_is_detected_and_the_engineer_told(watch: Watch) -> None:
    sid = await watch.resolve()
    row = await watch.log(sid)
    assert row.verified_at is not None and row.recheck_at is not None
    assert row.recheck_at - row.verified_at == pytest.approx(timedelta(minutes=10), abs=timedelta(seconds=5))
    # A workflow rule reopens the ticket a few minutes later.
    watch.desk.sim.state.set_status(TICKET, IN_PROGRESS)
    await watch.env.sleep(timedelta(minutes=9))
    assert (await watch.log(sid)).rechecked_at is None
    await watch.env.sleep(timedelta(minutes=2))
    handle = watch.env.client.get_workflow_handle(session_workflow_id(sid))
    assert await handle.result() == "resolved"  # the run ends once the watch is done
    row = await watch.log(sid)
    assert row.rechecked_at is not None and row.drift_detected_at is not None
    assert (row.recheck_status_id, row.recheck_status_name) == (IN_PROGRESS, "In Progress")
    [note] = await watch.drift_notifications(sid)
    assert str(note.user_id) == watch.desk.engineer_id
    assert "Resolved" in note.title and "In Progress" in note.title
    await watch.sink.wait_for(1)
    assert len(await watch.drift_notifications(sid)) == 1


async def test_a_status_that_stayed_is_recorded_without_a_notification(watch: Watch) -> None:
    sid = await watch.resolve()
    await watch.env.sleep(timedelta(minutes=11))
    handle = watch.env.client.get_workflow_handle(session_workflow_id(sid))
    assert await handle.result() == "resolved"
    row = await watch.log(sid)
    assert row.rechecked_at is not None and row.drift_detected_at is None
    assert row.recheck_status_id == RESOLVED
    assert await watch.drift_notifications(sid) == []
