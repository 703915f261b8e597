"""Record walk histories for the replay test: `.venv/bin/python -m tests.workflows.record_histories`.

Run it when a workflow change is meant to be compatible with runs in flight: the replay test then
proves the new code replays what the old code wrote. Never re-record to make a failing replay pass.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from core.binaries import temporal_cli_path
from tests.workflows.fakes import FakeWalkStore
from workflows.contracts.search_attributes import CUSTOM_SEARCH_ATTRIBUTES
from workflows.contracts.walk import (
    CreateInput,
    EscalateInput,
    NotesInput,
    ResolveInput,
    StepInput,
    WalkCreate,
    WalkInput,
    WalkNote,
    walk_workflow_id,
)
from workflows.walk_session import WalkSessionWorkflow

HISTORIES = Path(__file__).parent / "histories"


async def _walk(client: Client, queue: str, kind: str, escalate: EscalateInput | None = None) -> tuple[str, object]:
    create = CreateInput(walk=WalkCreate(session_id=uuid.uuid4(), ticket_id=uuid.uuid4(), account_id=uuid.uuid4(),
                                         created_by_user_id=None, session_kind=kind, problem_text="printer",
                                         category="printing"), escalate=escalate)
    sid = create.walk.session_id
    start = WithStartWorkflowOperation(
        WalkSessionWorkflow.run, WalkInput(session_id=sid, account_id=create.walk.account_id, created_by_update=True),
        id=walk_workflow_id(sid), task_queue=queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
    opened = await client.execute_update_with_start_workflow(WalkSessionWorkflow.create, create,
                                                             start_workflow_operation=start)
    return walk_workflow_id(sid), opened


async def record() -> None:
    """Run one walk of each kind to its end and save their histories as JSON."""
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=temporal_cli_path(),
                                                data_converter=pydantic_data_converter,
                                                search_attributes=CUSTOM_SEARCH_ATTRIBUTES)
    store, queue = FakeWalkStore(), "record"
    note = WalkNote(text="called the customer", ts="2026-05-28T10:00:00Z")
    try:
        async with Worker(env.client, task_queue=queue, workflows=[WalkSessionWorkflow],
                          activities=store.activities()):
            flow_id, _ = await _walk(env.client, queue, "flow")
            flow = env.client.get_workflow_handle(flow_id)
            await flow.execute_update(WalkSessionWorkflow.step, StepInput(node_id="a", answer="go"))
            await flow.execute_update(WalkSessionWorkflow.add_notes, NotesInput(notes=[note]))
            await flow.execute_update(WalkSessionWorkflow.step, StepInput(node_id="b", answer="go"))
            await flow.execute_update(WalkSessionWorkflow.resolve, ResolveInput(helpful=True))
            ai_id, opened = await _walk(env.client, queue, "ai_build")
            ai = env.client.get_workflow_handle(ai_id)
            await ai.execute_update(WalkSessionWorkflow.step,
                                    StepInput(node_id=opened.pending_node.id, answer="yes"))  # type: ignore[attr-defined]
            await ai.execute_update(WalkSessionWorkflow.escalate, EscalateInput(reason_category="needs_l2"))
            adhoc_id, _ = await _walk(env.client, queue, "adhoc", EscalateInput(reason_category="no_kb"))
            for name, workflow_id in (("flow_resolved", flow_id), ("ai_escalated", ai_id),
                                      ("adhoc_escalated_at_once", adhoc_id)):
                handle = env.client.get_workflow_handle(workflow_id)
                await handle.result()
                history = await handle.fetch_history()
                (HISTORIES / f"walk_{name}.json").write_text(history.to_json())
                print(f"recorded {name}: {len(history.events)} events")
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(record())
