"""The durable inactivity timer, on the time-skipping test server: 24 h without a step abandons a walk."""

from __future__ import annotations

import uuid
from datetime import timedelta

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.persistence import WalkPersistence
from core.config import Settings
from db.models import InternalTicket, L1WalkSession
from db.repositories.l1_sessions import WalkSessionRepository
from db.repositories.l1_tickets import InternalTicketRepository
from services.walks import WalkCommands
from services.workflow_client import WorkflowClient
from tests.helpers import make_user
from tests.l1.support import insert_walk, walk_ref
from workflows.contracts.walk import QUERY_STATE, NotesInput, WalkControl, WalkNote, walk_workflow_id
from workflows.walk_session import WalkSessionWorkflow


async def test_idle_walk_is_abandoned_by_its_own_timer(
    time_skipping_env: WorkflowEnvironment, settings: Settings, client: AsyncClient, db: AsyncSession,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    env = time_skipping_env
    info = await make_user(client, db, role="l1_tech")
    account_id, user_id = uuid.UUID(info["account_id"]), uuid.UUID(info["user"]["id"])
    ticket = await InternalTicketRepository(db).create(account_id=account_id, created_by_user_id=user_id,
                                                       problem_statement="Teams will not start")
    await db.commit()
    # The session-wide test server's clock may be ahead of ours (earlier tests skipped time): start on its clock.
    started = await env.get_current_time()
    row = await insert_walk(db, account_id=account_id, user_id=user_id, ticket_id=ticket.id,
                            problem_text="Teams will not start", started_at=started, last_step_at=started)
    queue = f"idle-{uuid.uuid4().hex[:8]}"
    walks = WalkCommands(WorkflowClient(env.client, task_queue=queue, accept_timeout_s=10),
                         settings.model_copy(update={"temporal_task_queue": queue, "l1_idle_timeout_s": 24 * 3600}))
    ref = walk_ref(row)
    async with Worker(env.client, task_queue=queue, workflows=[WalkSessionWorkflow],
                      activities=WalkPersistence(session_factory).all()):
        await walks.open(ref)
        handle = env.client.get_workflow_handle(walk_workflow_id(str(row.id)))

        async def status() -> str:
            return (await handle.query(QUERY_STATE, result_type=WalkControl)).status

        await env.sleep(timedelta(hours=23))
        assert await status() == "active"
        note = WalkNote(text="still on the phone", ts=await env.get_current_time())
        await walks.add_notes(ref, NotesInput(notes=[note]), None)  # activity resets the clock
        await env.sleep(timedelta(hours=23))
        assert await status() == "active"  # 46 h since the start, but only 23 h idle
        await env.sleep(timedelta(hours=2))
        assert await handle.result() == "abandoned"

    async with session_factory() as check:
        saved = await check.get(L1WalkSession, row.id)
        assert saved is not None and saved.status == "abandoned" and saved.abandoned_at is not None
        assert saved.abandoned_at - saved.last_step_at >= timedelta(hours=24)
        notes = await WalkSessionRepository(check).notes(row.id)
        assert [n.text for n in notes] == ["still on the phone"] and saved.note_count == 1
        saved_ticket = await check.get(InternalTicket, ticket.id)
        assert saved_ticket is not None and saved_ticket.status == "abandoned"
