"""Record histories for the replay test: `.venv/bin/python -m tests.workflows.record_histories [GROUP]...`.

Run it when a workflow change is meant to be compatible with runs in flight: the replay test then
proves the new code replays what the old code wrote. Never re-record to make a failing replay pass.
Name the groups to record (walk, session, fix, escalation, handoff; default: all), so recording a new workflow keeps the
older histories as they are.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from core.binaries import temporal_cli_path
from tests.workflows.fakes import FakeWalkStore
from tests.workflows.fakes_ai import FakeAiStore, chat_reply
from tests.workflows.fakes_handoff import FakeHandoffStore, handoff_control
from workflows.contracts.ai_session import (
    CloseInput,
    FixDraft,
    MessageInput,
    SessionCreate,
    SessionInput,
    session_workflow_id,
)
from workflows.contracts.fix import ApplyInput, FixInput, OutcomeInput, fix_workflow_id
from workflows.contracts.handoff import ClaimInput, HandoffInput, handoff_workflow_id
from workflows.contracts.llm import ProposedFix
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
from workflows.fix_verification import FixVerificationWorkflow
from workflows.handoff import HandoffWorkflow
from workflows.troubleshooting_session import TroubleshootingSessionWorkflow
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


async def _save(client: Client, prefix: str, runs: dict[str, str]) -> None:
    for name, workflow_id in runs.items():
        handle = client.get_workflow_handle(workflow_id)
        await handle.result()
        history = await handle.fetch_history()
        (HISTORIES / f"{prefix}_{name}.json").write_text(history.to_json())
        print(f"recorded {prefix}_{name}: {len(history.events)} events")


async def _walks(client: Client, queue: str) -> None:
    note = WalkNote(text="called the customer", ts="2026-05-28T10:00:00Z")
    flow_id, _ = await _walk(client, queue, "flow")
    flow = client.get_workflow_handle(flow_id)
    await flow.execute_update(WalkSessionWorkflow.step, StepInput(node_id="a", answer="go"))
    await flow.execute_update(WalkSessionWorkflow.add_notes, NotesInput(notes=[note]))
    await flow.execute_update(WalkSessionWorkflow.step, StepInput(node_id="b", answer="go"))
    await flow.execute_update(WalkSessionWorkflow.resolve, ResolveInput(helpful=True))
    ai_id, opened = await _walk(client, queue, "ai_build")
    ai = client.get_workflow_handle(ai_id)
    await ai.execute_update(WalkSessionWorkflow.step,
                            StepInput(node_id=opened.pending_node.id, answer="yes"))  # type: ignore[attr-defined]
    await ai.execute_update(WalkSessionWorkflow.escalate, EscalateInput(reason_category="needs_l2"))
    adhoc_id, _ = await _walk(client, queue, "adhoc", EscalateInput(reason_category="no_kb"))
    await _save(client, "walk", {"flow_resolved": flow_id, "ai_escalated": ai_id, "adhoc_escalated_at_once": adhoc_id})


async def _session(client: Client, queue: str, store: FakeAiStore) -> uuid.UUID:
    """Create, two messages (the first proposes a fix), an engineer's fix, then the local resolution note."""
    user = uuid.uuid4()
    create = SessionCreate(session_id=uuid.uuid4(), account_id=uuid.uuid4(), user_id=user, session_type="chat",
                           intake_type="free_text", intake_text="The printer is offline", problem_summary="printer")
    sid = create.session_id
    start = WithStartWorkflowOperation(
        TroubleshootingSessionWorkflow.run, SessionInput(session_id=sid, account_id=create.account_id,
                                                         created_by_update=True),
        id=session_workflow_id(sid), task_queue=queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
    await client.execute_update_with_start_workflow(TroubleshootingSessionWorkflow.create, create,
                                                    start_workflow_operation=start)
    handle = await start.workflow_handle()
    store.replies = [chat_reply("Restart the spooler.", 0.6, fix=ProposedFix(
        title="Restart the spooler", description="services.msc", confidence_pct=70)), chat_reply("Good.", 0.9)]
    await handle.execute_update(TroubleshootingSessionWorkflow.message, MessageInput(content="It is offline"))
    await handle.execute_update(TroubleshootingSessionWorkflow.message, MessageInput(content="Spooler stopped"))
    draft = FixDraft(fix_id=uuid.uuid4(), title="Clear the queue", confidence_pct=60, by_user_id=user)
    await handle.execute_update(TroubleshootingSessionWorkflow.add_fix, draft)
    await handle.execute_update(TroubleshootingSessionWorkflow.close_local, CloseInput(
        kind="resolution_note", markdown="Cleared the queue.", by_user_id=user))
    await _save(client, "session", {"resolved": session_workflow_id(sid)})
    return draft.fix_id


async def _session_escalated(client: Client, queue: str) -> None:
    """Create, then the escalation package; nobody claims it, so the run ends after its (2 s) idle period."""
    create = SessionCreate(session_id=uuid.uuid4(), account_id=uuid.uuid4(), user_id=uuid.uuid4(), session_type="chat",
                           intake_type="free_text", intake_text="The VPN drops", problem_summary="vpn")
    sid = create.session_id
    start = WithStartWorkflowOperation(
        TroubleshootingSessionWorkflow.run, SessionInput(session_id=sid, account_id=create.account_id,
                                                         created_by_update=True, idle_timeout_s=2),
        id=session_workflow_id(sid), task_queue=queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
    await client.execute_update_with_start_workflow(TroubleshootingSessionWorkflow.create, create,
                                                    start_workflow_operation=start)
    handle = await start.workflow_handle()
    await handle.execute_update(TroubleshootingSessionWorkflow.close_local, CloseInput(
        kind="escalation_package", markdown="Needs L2.", by_user_id=create.user_id))
    await _save(client, "session", {"escalated": session_workflow_id(sid)})


async def _fix(client: Client, queue: str, store: FakeAiStore, fix_id: uuid.UUID) -> None:
    """Apply, park with a one-second reminder (it fires and emails), then record success."""
    store.reminders_s, store.overdue_s = (1.0,), 60.0
    account_id = store.fixes[fix_id]["account_id"]
    start = WithStartWorkflowOperation(
        FixVerificationWorkflow.run, FixInput(fix_id=fix_id, account_id=account_id), id=fix_workflow_id(fix_id),
        task_queue=queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
    await client.execute_update_with_start_workflow(FixVerificationWorkflow.apply, ApplyInput(),
                                                    start_workflow_operation=start)
    handle = await start.workflow_handle()
    user = uuid.uuid4()
    await handle.execute_update(FixVerificationWorkflow.record_outcome,
                                OutcomeInput(outcome="applied_pending", notes="waiting on the user", by_user_id=user))
    for _ in range(200):
        if store.emailed:
            break
        await asyncio.sleep(0.05)
    assert store.emailed, "the reminder never went out"
    await handle.execute_update(FixVerificationWorkflow.record_outcome,
                                OutcomeInput(outcome="applied_success", by_user_id=user))
    await _save(client, "fix", {"pending_then_success": fix_workflow_id(fix_id)})


async def _handoff(client: Client, queue: str, store: FakeHandoffStore) -> None:
    """An escalation: the team told, the assessment lands, a senior claims it, the run unloads when idle."""
    state = handoff_control()
    start = WithStartWorkflowOperation(
        HandoffWorkflow.run, HandoffInput(handoff_id=state.id, account_id=state.account_id, idle_timeout_s=2,
                                          state=state),
        id=handoff_workflow_id(state.id), task_queue=queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
    store.assess.set()
    await client.execute_update_with_start_workflow(HandoffWorkflow.claim, ClaimInput(
        user_id=uuid.uuid4(), user_name="Senior"), start_workflow_operation=start)
    await _save(client, "handoff", {"escalated_claimed": handoff_workflow_id(state.id)})


async def record(groups: set[str]) -> None:
    """Run the named groups' scenarios to their end and save their histories as JSON."""
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=temporal_cli_path(),
                                                data_converter=pydantic_data_converter,
                                                search_attributes=CUSTOM_SEARCH_ATTRIBUTES)
    walks, ai, handoffs, queue = FakeWalkStore(), FakeAiStore(), FakeHandoffStore(), "record"
    try:
        async with Worker(env.client, task_queue=queue,
                          workflows=[WalkSessionWorkflow, TroubleshootingSessionWorkflow, FixVerificationWorkflow,
                                     HandoffWorkflow],
                          activities=walks.activities() + ai.activities() + handoffs.activities()):
            if "walk" in groups:
                await _walks(env.client, queue)
            if groups & {"session", "fix"}:
                fix_id = await _session(env.client, queue, ai)
                if "fix" in groups:
                    await _fix(env.client, queue, ai, fix_id)
            if "escalation" in groups:
                await _session_escalated(env.client, queue)
            if "handoff" in groups:
                await _handoff(env.client, queue, handoffs)
    finally:
        await env.shutdown()


if __name__ == "__main__":
    asyncio.run(record(set(sys.argv[1:]) or {"walk", "session", "fix", "escalation", "handoff"}))
