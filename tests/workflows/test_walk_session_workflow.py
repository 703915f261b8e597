"""WalkSessionWorkflow alone, against in-memory activities registered by name (no database)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.workflows.fakes import FakeWalkStore
from workflows.contracts.common import REJECT_CONFLICT, REJECT_RULE
from workflows.contracts.walk import (
    MAX_NOTES_PER_WALK,
    CreateInput,
    EscalateInput,
    NotesInput,
    ResolveInput,
    StepInput,
    WalkControl,
    WalkCreate,
    WalkInput,
    WalkNote,
    walk_workflow_id,
)
from workflows.walk_session import WalkSessionWorkflow


@pytest.fixture
async def walk_worker(temporal_env: WorkflowEnvironment) -> AsyncIterator[tuple[Client, str, FakeWalkStore]]:
    """A worker with the real workflow and the fake activities on a queue of its own."""
    store = FakeWalkStore()
    queue = f"wf-{uuid.uuid4().hex[:8]}"
    async with Worker(temporal_env.client, task_queue=queue, workflows=[WalkSessionWorkflow],
                      activities=store.activities()):
        yield temporal_env.client, queue, store


def _create(kind: str = "flow", **extra: Any) -> CreateInput:
    return CreateInput(walk=WalkCreate(
        session_id=uuid.uuid4(), ticket_id=uuid.uuid4(), account_id=uuid.uuid4(), created_by_user_id=None,
        session_kind=kind, problem_text="printer", category="printing"), **extra)


async def _start(client: Client, queue: str, create: CreateInput, **knobs: Any) -> Any:
    sid = create.walk.session_id
    start = WithStartWorkflowOperation(
        WalkSessionWorkflow.run, WalkInput(session_id=sid, account_id=create.walk.account_id, created_by_update=True,
                                           **knobs),
        id=walk_workflow_id(sid), task_queue=queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    opened = await client.execute_update_with_start_workflow(WalkSessionWorkflow.create, create,
                                                             start_workflow_operation=start)
    return opened, await start.workflow_handle()


def _rejection(exc: pytest.ExceptionInfo[WorkflowUpdateFailedError]) -> ApplicationError:
    cause = exc.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


async def test_a_flow_walk_steps_and_resolves(walk_worker: tuple[Client, str, FakeWalkStore]) -> None:
    client, queue, store = walk_worker
    opened, handle = await _start(client, queue, _create())
    assert opened.pending_node.id == "a"
    one = await handle.execute_update(WalkSessionWorkflow.step, StepInput(node_id="a", answer="GO"))
    assert one.next_node is not None and one.next_node.id == "b"
    two = await handle.execute_update(WalkSessionWorkflow.step, StepInput(node_id="b", answer="go"))
    assert two.resolution is not None and two.resolution.resolution == "Fixed."
    await handle.execute_update(WalkSessionWorkflow.resolve, ResolveInput(helpful=True))
    assert await handle.result() == "resolved"
    names = [name for name, _ in store.calls]
    assert names == ["persistence.create_walk", "persistence.record_walk_step", "persistence.record_walk_step",
                     "persistence.resolve_walk"]


async def test_validators_reject_without_touching_persistence(walk_worker: tuple[Client, str, FakeWalkStore]) -> None:
    client, queue, store = walk_worker
    _, handle = await _start(client, queue, _create())
    with pytest.raises(WorkflowUpdateFailedError) as wrong_node:
        await handle.execute_update(WalkSessionWorkflow.step, StepInput(node_id="b", answer="go"))
    assert _rejection(wrong_node).type == REJECT_CONFLICT
    with pytest.raises(WorkflowUpdateFailedError) as bad_answer:
        await handle.execute_update(WalkSessionWorkflow.step, StepInput(node_id="a", answer="maybe"))
    assert _rejection(bad_answer).type == REJECT_RULE and "go, stop" in str(_rejection(bad_answer))
    assert [name for name, _ in store.calls] == ["persistence.create_walk"]
    # Rejected updates never reach history: only the create's update events are there.
    history = await handle.fetch_history()
    accepted = [e for e in history.events if e.HasField("workflow_execution_update_accepted_event_attributes")]
    assert len(accepted) == 1


async def test_notes_past_the_walk_bound_are_refused(walk_worker: tuple[Client, str, FakeWalkStore]) -> None:
    client, queue, store = walk_worker
    create = _create("adhoc")
    _, handle = await _start(client, queue, create)
    note = WalkNote(text="n", ts="2026-05-28T10:00:00Z")
    # The workflow takes its count from what persistence reports: one short of the bound after the first add.
    store.rows[create.walk.session_id]["note_count"] = MAX_NOTES_PER_WALK - 1
    await handle.execute_update(WalkSessionWorkflow.add_notes, NotesInput(notes=[note]))
    with pytest.raises(WorkflowUpdateFailedError) as over:
        await handle.execute_update(WalkSessionWorkflow.add_notes, NotesInput(notes=[note]))
    assert _rejection(over).type == REJECT_RULE and f"at most {MAX_NOTES_PER_WALK} notes" in str(_rejection(over))


async def test_escalation_emails_go_out_after_the_update_returns(
    walk_worker: tuple[Client, str, FakeWalkStore],
) -> None:
    client, queue, store = walk_worker
    opened, handle = await _start(client, queue, _create("adhoc", escalate=EscalateInput(reason_category="no_kb")))
    assert opened.escalation.notified == ["eng@example.com"]
    assert await handle.result() == "escalated"
    assert [m.to for m in store.emails] == [["eng@example.com"]]


async def test_an_ai_walk_asks_the_model_with_the_path_read_by_id(
    walk_worker: tuple[Client, str, FakeWalkStore],
) -> None:
    client, queue, store = walk_worker
    opened, handle = await _start(client, queue, _create("ai_build"), max_depth=2)
    first = opened.pending_node
    one = await handle.execute_update(WalkSessionWorkflow.step, StepInput(node_id=first.id, answer="yes"))
    two = await handle.execute_update(WalkSessionWorkflow.step, StepInput(node_id=one.next_node.id, answer="no"))
    assert two.resolution is not None and two.resolution.escalate
    asked = [inp for name, inp in store.calls if name == "llm.next_walk_node"]
    assert [len(a.walked_path) for a in asked] == [0, 1, 2] and asked[-1].force_conclusion


async def test_idle_walks_are_abandoned_by_one_moving_deadline(
    walk_worker: tuple[Client, str, FakeWalkStore],
) -> None:
    # Real seconds on the dev server: the time-skipping server loses track of updates while it skips.
    client, queue, store = walk_worker
    _, handle = await _start(client, queue, _create("adhoc"), idle_timeout_s=2)
    await asyncio.sleep(1)
    note = WalkNote(text="still here", ts="2026-05-28T10:00:00Z")
    await handle.execute_update(WalkSessionWorkflow.add_notes, NotesInput(notes=[note]))
    assert await handle.result() == "abandoned"
    abandoned = [inp for name, inp in store.calls if name == "persistence.abandon_walk"]
    assert len(abandoned) == 1
    notes_at = store.rows[abandoned[0].session_id]["last_step_at"]
    assert abandoned[0].at - notes_at >= timedelta(seconds=2)  # idle counted from the note, not the start
    timers = [e for e in (await handle.fetch_history()).events if e.HasField("timer_started_event_attributes")]
    assert len(timers) == 2  # the first period's timer, then one for the rest after the note moved it
    assert all(t.user_metadata.summary.data for t in timers)  # readable in the Web UI


def test_the_control_state_is_small() -> None:
    state = WalkControl(id=uuid.uuid4(), account_id=uuid.uuid4(), session_kind="flow",
                        last_step_at="2026-05-28T10:00:00Z")
    assert len(state.model_dump_json()) < 400
