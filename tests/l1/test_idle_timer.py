"""The durable inactivity timer, on the time-skipping test server: 24 h without a step abandons a walk."""

from __future__ import annotations

import uuid
from contextlib import suppress
from datetime import timedelta

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.persistence import PersistenceActivities
from core.config import Settings
from db.models import InternalTicket, L1WalkSession
from db.repositories.l1_sessions import WalkSessionRepository
from db.repositories.l1_tickets import InternalTicketRepository
from services.walks import WalkCommands
from tests.helpers import make_user
from workflows.contracts.search_attributes import CUSTOM_SEARCH_ATTRIBUTES
from workflows.contracts.walk import QUERY_STATE, NotesInput, WalkNote, WalkState, walk_workflow_id
from workflows.walk_session import WalkSessionWorkflow


async def _register_search_attributes(client: Client) -> None:
    # The time-skipping server starts without our custom attributes (the dev server gets them at start).
    request = AddSearchAttributesRequest(
        namespace=client.namespace,
        search_attributes={k.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for k in CUSTOM_SEARCH_ATTRIBUTES},
    )
    with suppress(RPCError):  # already registered by an earlier test
        await client.operator_service.add_search_attributes(request)


async def test_idle_walk_is_abandoned_by_its_own_timer(
    time_skipping_env: WorkflowEnvironment, settings: Settings, client: AsyncClient, db: AsyncSession,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    env = time_skipping_env
    await _register_search_attributes(env.client)
    info = await make_user(client, db, role="l1_tech")
    account_id, user_id = uuid.UUID(info["account_id"]), uuid.UUID(info["user"]["id"])
    ticket = await InternalTicketRepository(db).create(account_id=account_id, created_by_user_id=user_id,
                                                       problem_statement="Teams will not start")
    row = await WalkSessionRepository(db).create(account_id=account_id, created_by_user_id=user_id,
                                                 session_kind="adhoc", ticket_id=str(ticket.id),
                                                 problem_text="Teams will not start")
    await db.commit()
    queue = f"idle-{uuid.uuid4().hex[:8]}"
    walks = WalkCommands(env.client, settings.model_copy(update={"temporal_task_queue": queue,
                                                                 "l1_idle_timeout_s": 24 * 3600}))
    persistence = PersistenceActivities(session_factory)
    async with Worker(env.client, task_queue=queue, workflows=[WalkSessionWorkflow],
                      activities=[persistence.load_walk, persistence.save_walk]):
        await walks.open(row)
        handle = env.client.get_workflow_handle(walk_workflow_id(str(row.id)))

        async def status() -> str:
            return (await handle.query(QUERY_STATE, result_type=WalkState)).status

        await env.sleep(timedelta(hours=23))
        assert await status() == "active"
        note = WalkNote(text="still on the phone", ts=await env.get_current_time())
        await walks.add_notes(row, NotesInput(notes=[note]), None)  # activity resets the clock
        await env.sleep(timedelta(hours=23))
        assert await status() == "active"  # 46 h since the start, but only 23 h idle
        await env.sleep(timedelta(hours=2))
        assert await handle.result() == "abandoned"

    async with session_factory() as check:
        saved = await check.get(L1WalkSession, row.id)
        assert saved is not None and saved.status == "abandoned" and saved.abandoned_at is not None
        assert saved.abandoned_at - saved.last_step_at >= timedelta(hours=24)
        assert [n["text"] for n in saved.walk_notes] == ["still on the phone"]
        saved_ticket = await check.get(InternalTicket, ticket.id)
        assert saved_ticket is not None and saved_ticket.status == "abandoned"
