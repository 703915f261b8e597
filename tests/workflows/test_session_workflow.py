"""TroubleshootingSessionWorkflow alone, against in-memory activities registered by name (no database)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.persistence.ai_sessions import turn_fix_id
from tests.workflows.fakes_ai import FakeAiStore, chat_reply, llm_failure
from workflows.contracts.ai_session import (
    ADD_FIX,
    CLOSE_SESSION,
    CREATE_SESSION,
    LOAD_SESSION,
    MAX_MESSAGES_PER_SESSION,
    RECORD_TURN,
    SESSION_REPLY,
    CloseInput,
    FixDraft,
    MessageInput,
    SessionControl,
    SessionCreate,
    SessionInput,
    session_workflow_id,
)
from workflows.contracts.common import REJECT_CONFLICT, REJECT_NOT_FOUND, REJECT_RULE, REJECT_UPSTREAM
from workflows.contracts.llm import OutcomeProposal, ProposedFix
from workflows.fix_verification import FixVerificationWorkflow
from workflows.troubleshooting_session import TroubleshootingSessionWorkflow

Env = tuple[Client, str, FakeAiStore]
NOTE = CloseInput(kind="resolution_note", markdown="Restarted the spooler.", by_user_id=uuid.uuid4())


@pytest.fixture
async def env(temporal_env: WorkflowEnvironment) -> AsyncIterator[Env]:
    """A worker with both real workflows and the fake activities on a queue of its own."""
    store = FakeAiStore()
    queue = f"ai-{uuid.uuid4().hex[:8]}"
    async with Worker(temporal_env.client, task_queue=queue,
                      workflows=[TroubleshootingSessionWorkflow, FixVerificationWorkflow],
                      activities=store.activities()):
        yield temporal_env.client, queue, store


def _create(psa_ticket_id: str | None = None) -> SessionCreate:
    return SessionCreate(session_id=uuid.uuid4(), account_id=uuid.uuid4(), user_id=uuid.uuid4(), session_type="chat",
                         intake_type="free_text", intake_text="The printer is offline", problem_summary="printer",
                         psa_ticket_id=psa_ticket_id)


async def _send(env: Env, sid: uuid.UUID, account_id: uuid.UUID, update: Any, arg: Any, *, creating: bool = False,
                idle_timeout_s: int = 3600) -> tuple[Any, WorkflowHandle[Any, Any]]:
    """Update-with-start on `session-{id}`, as services/ai_sessions.py sends every command."""
    client, queue, _ = env
    start = WithStartWorkflowOperation(
        TroubleshootingSessionWorkflow.run,
        SessionInput(session_id=sid, account_id=account_id, created_by_update=creating, idle_timeout_s=idle_timeout_s),
        id=session_workflow_id(sid), task_queue=queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    try:
        result = await client.execute_update_with_start_workflow(update, arg, start_workflow_operation=start)
    finally:
        handle = await start.workflow_handle()
    return result, handle


async def _open(env: Env, create: SessionCreate | None = None, **knobs: Any) -> tuple[SessionControl, Any]:
    create = create or _create()
    return await _send(env, create.session_id, create.account_id, TroubleshootingSessionWorkflow.create, create,
                       creating=True, **knobs)


def _rejection(exc: pytest.ExceptionInfo[WorkflowUpdateFailedError]) -> ApplicationError:
    cause = exc.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


async def _accepted_updates(handle: WorkflowHandle[Any, Any]) -> int:
    history = await handle.fetch_history()
    return sum(e.HasField("workflow_execution_update_accepted_event_attributes") for e in history.events)


async def test_create_then_messages_reply_with_count_and_tier(env: Env) -> None:
    _, _, store = env
    create = _create()
    opened, handle = await _open(env, create)
    assert opened.status == "active" and opened.message_count == 1
    assert store.names() == [CREATE_SESSION.name]  # created by the update: nothing loaded
    store.replies = [chat_reply("Is the spooler running?", 0.3), chat_reply("Restart it.", 0.85)]
    one = await handle.execute_update(TroubleshootingSessionWorkflow.message, MessageInput(content="It is offline"))
    assert (one.reply, one.confidence_tier, one.state_version) == ("Is the spooler running?", "discovery", 1)
    two = await handle.execute_update(TroubleshootingSessionWorkflow.message, MessageInput(content="It is stopped"))
    assert (two.confidence_tier, two.state_version, two.suggested_fix_id) == ("guided", 2, None)
    state = await handle.query(TroubleshootingSessionWorkflow.state)
    assert state is not None
    assert (state.message_count, state.confidence, state.confidence_tier) == (5, 0.85, "guided")
    asked = store.inputs(SESSION_REPLY.name)
    assert [a.user_content for a in asked] == ["It is offline", "It is stopped"]
    assert [a.current_confidence for a in asked] == [0.0, 0.3]  # the model sees the confidence so far
    assert store.sessions[create.session_id]["transcript"][-1] == ("assistant", "Restart it.")


async def test_a_proposed_fix_and_an_outcome_proposal_come_back_by_id(env: Env) -> None:
    _, _, store = env
    create = _create()
    _, handle = await _open(env, create)
    fix = ProposedFix(title="Restart the spooler", description="services.msc", confidence_pct=70)
    store.replies = [chat_reply(fix=fix), chat_reply(outcome=OutcomeProposal(outcome="applied_success",
                                                                             reason="it prints"))]
    one = await handle.execute_update(TroubleshootingSessionWorkflow.message, MessageInput(content="what now?"),
                                      id="turn-1")
    assert one.suggested_fix_id == turn_fix_id(create.session_id, "turn-1")  # the update id names the turn
    assert store.fixes[one.suggested_fix_id]["status"] == "proposed"
    two = await handle.execute_update(TroubleshootingSessionWorkflow.message, MessageInput(content="it prints"))
    assert two.outcome_fix_id == one.suggested_fix_id and two.suggested_fix_id is None
    assert two.outcome_proposal is not None and two.outcome_proposal.outcome == "applied_success"


async def test_the_model_failing_fails_the_update_and_records_nothing(env: Env) -> None:
    _, _, store = env
    _, handle = await _open(env)
    store.replies = [llm_failure()]
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update(TroubleshootingSessionWorkflow.message, MessageInput(content="hello?"))
    assert _rejection(failed).type == REJECT_UPSTREAM and "send the message again" in str(_rejection(failed))
    assert RECORD_TURN.name not in store.names()
    state = await handle.query(TroubleshootingSessionWorkflow.state)
    assert state is not None and state.message_count == 1  # the failed turn changed nothing
    again = await handle.execute_update(TroubleshootingSessionWorkflow.message, MessageInput(content="hello?"))
    assert again.state_version == 1


async def test_add_fix_then_close_ends_the_run_and_a_second_close_conflicts(env: Env) -> None:
    _, _, store = env
    create = _create()
    _, handle = await _open(env, create)
    draft = FixDraft(fix_id=uuid.uuid4(), title="Clear the queue", confidence_pct=60, by_user_id=uuid.uuid4())
    added = await handle.execute_update(TroubleshootingSessionWorkflow.add_fix, draft)
    assert (added.fix_id, added.state_version) == (draft.fix_id, 1)
    assert [a.draft for a in store.inputs(ADD_FIX.name)] == [draft]
    closed = await handle.execute_update(TroubleshootingSessionWorkflow.close_local, NOTE)
    assert (closed.outcome, closed.session_status, closed.state_version) == ("resolved_local", "resolved", 2)
    assert await handle.result() == "resolved"
    # The run is over: the next command starts a run that loads the closed row and refuses.
    with pytest.raises(WorkflowUpdateFailedError) as again:
        await _send(env, create.session_id, create.account_id, TroubleshootingSessionWorkflow.close_local, NOTE)
    assert _rejection(again).type == REJECT_CONFLICT and "already resolved" in str(_rejection(again))
    with pytest.raises(WorkflowUpdateFailedError) as late:
        await _send(env, create.session_id, create.account_id, TroubleshootingSessionWorkflow.message,
                    MessageInput(content="one more thing"))
    assert _rejection(late).type == REJECT_CONFLICT
    assert store.names().count(CLOSE_SESSION.name) == 1 and SESSION_REPLY.name not in store.names()
    assert store.names().count(LOAD_SESSION.name) == 2


async def test_an_escalated_session_keeps_its_run_and_may_still_be_resolved(env: Env) -> None:
    _, _, store = env
    create = _create()
    _, handle = await _open(env, create)
    package = CloseInput(kind="escalation_package", markdown="Needs L2.", by_user_id=uuid.uuid4())
    escalated = await handle.execute_update(TroubleshootingSessionWorkflow.close_local, package)
    assert escalated.outcome == "escalated_local"
    # The run waits for a claim (or the idle period) rather than end: the next command reaches it, no reload.
    resolved, second = await _send(env, create.session_id, create.account_id,
                                   TroubleshootingSessionWorkflow.close_local, NOTE)
    assert second.result_run_id == handle.result_run_id
    assert resolved.session_status == "resolved" and await second.result() == "resolved"
    assert LOAD_SESSION.name not in store.names()


async def test_an_unclaimed_escalation_ends_its_run_after_the_idle_period(env: Env) -> None:
    create = _create()
    _, handle = await _open(env, create, idle_timeout_s=2)
    package = CloseInput(kind="escalation_package", markdown="Needs L2.", by_user_id=uuid.uuid4())
    await handle.execute_update(TroubleshootingSessionWorkflow.close_local, package)
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    assert await asyncio.wait_for(handle.result(), timeout=15) == "escalated"


async def _load_seeded(env: Env, seeded: SessionControl) -> WorkflowHandle[Any, Any]:
    """Start a run the way a command on an existing session does (it loads the row) and wait until loaded."""
    client, queue, _ = env
    handle = await client.start_workflow(
        TroubleshootingSessionWorkflow.run, SessionInput(session_id=seeded.id, account_id=seeded.account_id),
        id=session_workflow_id(seeded.id), task_queue=queue)
    for _ in range(100):
        if await handle.query(TroubleshootingSessionWorkflow.state) is not None:
            return handle
        await asyncio.sleep(0.05)
    raise AssertionError("the run never loaded its session")


async def test_validators_refuse_paused_full_and_ticketed_sessions_without_history(env: Env) -> None:
    _, _, store = env
    paused = await _load_seeded(env, store.seed_session(status="paused"))
    with pytest.raises(WorkflowUpdateFailedError) as on_paused:
        await paused.execute_update(TroubleshootingSessionWorkflow.message, MessageInput(content="hi"))
    assert _rejection(on_paused).type == REJECT_CONFLICT and "paused" in str(_rejection(on_paused))
    assert await _accepted_updates(paused) == 0  # the validator refused it: no history
    await paused.terminate()

    seeded = store.seed_session()
    store.sessions[seeded.id]["message_count"] = MAX_MESSAGES_PER_SESSION - 1  # no room for one more turn
    full = await _load_seeded(env, seeded)
    with pytest.raises(WorkflowUpdateFailedError) as on_full:
        await full.execute_update(TroubleshootingSessionWorkflow.message, MessageInput(content="hi"))
    assert _rejection(on_full).type == REJECT_RULE and "limit" in str(_rejection(on_full))
    assert await _accepted_updates(full) == 0
    await full.terminate()

    _, ticketed = await _open(env, _create(psa_ticket_id="T-1042"))
    with pytest.raises(WorkflowUpdateFailedError) as on_ticket:
        await ticketed.execute_update(TroubleshootingSessionWorkflow.close_local, NOTE)
    assert _rejection(on_ticket).type == REJECT_RULE and "PSA ticket" in str(_rejection(on_ticket))
    assert await _accepted_updates(ticketed) == 1  # only the create
    assert CLOSE_SESSION.name not in store.names() and SESSION_REPLY.name not in store.names()
    await ticketed.terminate()


async def test_a_command_for_an_unknown_session_is_not_found(env: Env) -> None:
    _, _, store = env
    sid = uuid.uuid4()
    with pytest.raises(WorkflowUpdateFailedError) as missing:
        await _send(env, sid, uuid.uuid4(), TroubleshootingSessionWorkflow.message, MessageInput(content="hi"))
    assert _rejection(missing).type == REJECT_NOT_FOUND
    handle = env[0].get_workflow_handle(session_workflow_id(sid))
    assert await handle.result() == "missing" and SESSION_REPLY.name not in store.names()


async def test_a_create_naming_another_session_is_refused(env: Env) -> None:
    _, _, store = env
    create, other = _create(), uuid.uuid4()
    with pytest.raises(WorkflowUpdateFailedError) as wrong:
        await _send(env, other, create.account_id, TroubleshootingSessionWorkflow.create, create, creating=True)
    assert _rejection(wrong).type == REJECT_RULE and CREATE_SESSION.name not in store.names()
    await env[0].get_workflow_handle(session_workflow_id(other)).terminate()


async def test_a_run_whose_create_never_lands_still_ends_when_idle(env: Env) -> None:
    create, other = _create(), uuid.uuid4()
    with pytest.raises(WorkflowUpdateFailedError):
        await _send(env, other, create.account_id, TroubleshootingSessionWorkflow.create, create, creating=True,
                    idle_timeout_s=1)
    handle = env[0].get_workflow_handle(session_workflow_id(other))
    try:
        await asyncio.wait_for(handle.result(), timeout=4)
    finally:
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            await handle.terminate()


async def test_an_idle_run_ends_and_the_next_command_loads_a_new_run(env: Env) -> None:
    _, _, store = env
    create = _create()
    _, first = await _open(env, create, idle_timeout_s=2)
    await first.execute_update(TroubleshootingSessionWorkflow.message, MessageInput(content="still there?"))
    assert await asyncio.wait_for(first.result(), timeout=15) == "active"  # unloaded, not closed
    assert store.sessions[create.session_id]["status"] == "active"
    assert LOAD_SESSION.name not in store.names()
    reply, second = await _send(env, create.session_id, create.account_id, TroubleshootingSessionWorkflow.message,
                                MessageInput(content="back again"))
    assert second.result_run_id != first.result_run_id
    assert store.names().count(LOAD_SESSION.name) == 1 and reply.state_version == 2
    state = await second.query(TroubleshootingSessionWorkflow.state)
    assert state is not None and state.message_count == 5  # the count came from the row
    await second.terminate()


def _largest_event(events: Any) -> int:
    return max(e.ByteSize() for e in events)


async def test_200_messages_continue_as_new_and_keep_every_payload_small(env: Env) -> None:
    client, _, store = env
    create = _create()
    _, started = await _open(env, create)
    handle = client.get_workflow_handle(session_workflow_id(create.session_id))  # follows continue-as-new
    for i in range(200):
        result = await handle.execute_update(TroubleshootingSessionWorkflow.message, MessageInput(content=f"m{i}"))
        assert result.state_version == i + 1
    state = await handle.query(TroubleshootingSessionWorkflow.state)
    assert state is not None and state.message_count == 401 and state.status == "active"
    assert LOAD_SESSION.name not in store.names()  # continue-as-new carried the state, nothing reloaded
    run_id: str | None = started.result_run_id
    runs, sizes = 0, []
    while run_id:
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        runs += 1
        sizes.append(_largest_event(history.events))
        last = history.events[-1]
        run_id = (last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                  if last.HasField("workflow_execution_continued_as_new_event_attributes") else None)
    assert runs >= 2, "200 messages should pass HISTORY_EVENTS_LIMIT and continue as new"
    assert max(sizes) < 2_048, f"largest event per run: {sizes}"
    await handle.terminate()
