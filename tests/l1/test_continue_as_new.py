"""Long walks continue as new without losing state (on a dev server that suggests it early)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.registry import ActivityDeps
from core.binaries import temporal_cli_path
from core.config import Settings
from db.repositories.l1_catalog import FlowRepository
from db.repositories.l1_sessions import WalkSessionRepository
from db.repositories.l1_tickets import InternalTicketRepository
from services.walks import WalkCommands
from services.workflow_client import WorkflowClient
from tests.helpers import make_user
from tests.l1.support import insert_walk, walk_ref
from worker import build_worker
from workflows.contracts.search_attributes import CUSTOM_SEARCH_ATTRIBUTES
from workflows.contracts.walk import QUERY_STATE, StepInput, WalkControl, walk_workflow_id
from workflows.walk_session import WalkSessionWorkflow

STEPS = 12
LOOP_TREE = {"root": "n0", "nodes": {
    f"n{i}": {"question": f"Check {i}?", "options": [
        {"label": "ok", "next": f"n{i + 1}"} if i + 1 < STEPS else {"label": "ok", "resolution": "All checked."}]}
    for i in range(STEPS)
}}


@pytest.fixture(scope="module")
async def eager_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server that suggests continue-as-new after a few dozen history events."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli_path(), data_converter=pydantic_data_converter,
        search_attributes=CUSTOM_SEARCH_ATTRIBUTES, dev_server_log_level="error",
        dev_server_extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=25"],
    )
    yield env
    await env.shutdown()


async def test_walk_continues_as_new_and_keeps_its_state(
    eager_env: WorkflowEnvironment, settings: Settings, session_factory: async_sessionmaker[AsyncSession],
    client: AsyncClient, db: AsyncSession,
) -> None:
    info = await make_user(client, db, role="l1_tech")
    account_id, user_id = uuid.UUID(info["account_id"]), uuid.UUID(info["user"]["id"])
    flow = await FlowRepository(db).create(account_id=account_id, title="long", category="software",
                                           keywords=[], tree=LOOP_TREE)
    ticket = await InternalTicketRepository(db).create(account_id=account_id, created_by_user_id=user_id,
                                                       problem_statement="long walk")
    await db.commit()
    row = walk_ref(await insert_walk(db, account_id=account_id, user_id=user_id, session_kind="flow",
                                     flow_id=flow.id, ticket_id=ticket.id))
    custom = settings.model_copy(update={"temporal_task_queue": f"can-{uuid.uuid4().hex[:8]}"})
    walks = WalkCommands(WorkflowClient(eager_env.client, task_queue=custom.temporal_task_queue,
                                        accept_timeout_s=10), custom)
    deps = ActivityDeps(settings=custom, session_factory=session_factory)
    async with build_worker(eager_env.client, deps, task_queue=custom.temporal_task_queue):
        node = (await walks.open(row)).pending_node
        handle = eager_env.client.get_workflow_handle(walk_workflow_id(str(row.id)))
        first_run = (await handle.describe()).run_id
        for i in range(STEPS):
            assert node is not None and node.id == f"n{i}"
            result = await walks.step(row, StepInput(node_id=node.id, answer="ok"), f"k{i}")
            node = result.next_node or result.resolution
        assert node is not None and node.resolution == "All checked."
        latest = await handle.describe()
        assert latest.run_id != first_run  # it continued as new at least once
        live = await handle.query(QUERY_STATE, result_type=WalkControl)
        assert live.depth == STEPS and live.pending_node == node
        history = await eager_env.client.get_workflow_handle(
            walk_workflow_id(str(row.id)), run_id=first_run).fetch_history()
    # The first run's history replays deterministically against today's code.
    await Replayer(workflows=[WalkSessionWorkflow], data_converter=pydantic_data_converter).replay_workflow(history)
    got = await WalkSessionRepository(db).get(row.id)
    assert got is not None
    await db.refresh(got)
    assert got.depth == STEPS and [s["node_id"] for s in got.walked_path] == [f"n{i}" for i in range(STEPS)]

