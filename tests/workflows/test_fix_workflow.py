"""FixVerificationWorkflow alone, against in-memory activities (no database).

Reminder schedules run in real seconds on the dev server (the time-skipping server loses track of
updates while it skips), so the account's offsets are set to 1-3 seconds.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
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

from tests.workflows.fakes_ai import FakeAiStore
from workflows.contracts.common import REJECT_CONFLICT, REJECT_RULE
from workflows.contracts.fix import (
    APPLY_FIX,
    LOAD_FIX,
    RECORD_OUTCOME,
    SEND_FIX_NOTICE,
    ApplyInput,
    ClearProposalInput,
    FixControl,
    FixInput,
    FixNoticeInput,
    OutcomeInput,
    fix_workflow_id,
)
from workflows.contracts.notify import EMAIL_NOTIFICATION
from workflows.fix_verification import FixVerificationWorkflow

Env = tuple[Client, str, FakeAiStore]
USER = uuid.uuid4()


@pytest.fixture
async def env(temporal_env: WorkflowEnvironment) -> AsyncIterator[Env]:
    """A worker with the real workflow and the fake activities on a queue of its own."""
    store = FakeAiStore()
    queue = f"fix-{uuid.uuid4().hex[:8]}"
    async with Worker(temporal_env.client, task_queue=queue, workflows=[FixVerificationWorkflow],
                      activities=store.activities()):
        yield temporal_env.client, queue, store


async def _send(env: Env, fix: FixControl, update: Any, arg: Any,
                idle_timeout_s: int = 3600) -> tuple[Any, WorkflowHandle[Any, Any]]:
    """Update-with-start on `fix-{id}` (the run loads the fix), as services/ai_sessions.py sends every command."""
    client, queue, _ = env
    start = WithStartWorkflowOperation(
        FixVerificationWorkflow.run, FixInput(fix_id=fix.id, account_id=fix.account_id, idle_timeout_s=idle_timeout_s),
        id=fix_workflow_id(fix.id), task_queue=queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    try:
        result = await client.execute_update_with_start_workflow(update, arg, start_workflow_operation=start)
    finally:
        handle = await start.workflow_handle()
    return result, handle


def _outcome(outcome: str, notes: str | None = None) -> OutcomeInput:
    return OutcomeInput(outcome=outcome, notes=notes, by_user_id=USER)


def _rejection(exc: pytest.ExceptionInfo[WorkflowUpdateFailedError]) -> ApplicationError:
    cause = exc.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


async def _accepted_updates(handle: WorkflowHandle[Any, Any]) -> int:
    history = await handle.fetch_history()
    return sum(e.HasField("workflow_execution_update_accepted_event_attributes") for e in history.events)


async def _until(check: Callable[[], bool], what: str, seconds: float = 15) -> None:
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def _state(handle: WorkflowHandle[Any, Any]) -> FixControl:
    state = await handle.query(FixVerificationWorkflow.state)
    assert state is not None
    return state


def _notices(store: FakeAiStore) -> list[FixNoticeInput]:
    return store.inputs(SEND_FIX_NOTICE.name)


async def test_apply_is_idempotent_and_partial_needs_notes(env: Env) -> None:
    _, _, store = env
    fix = store.seed_fix()
    first, handle = await _send(env, fix, FixVerificationWorkflow.apply, ApplyInput())
    assert (first.status, first.changed) == ("proposed", True)
    second = await handle.execute_update(FixVerificationWorkflow.apply, ApplyInput())
    assert (second.status, second.changed) == ("proposed", False)
    assert store.names().count(APPLY_FIX.name) == 1 and store.fix(fix.id).version == 1
    assert store.fix(fix.id).applied_at is not None
    accepted = await _accepted_updates(handle)
    for outcome, notes in (("applied_partial", None), ("applied_pending", "   ")):
        with pytest.raises(WorkflowUpdateFailedError) as no_notes:
            await handle.execute_update(FixVerificationWorkflow.record_outcome, _outcome(outcome, notes))
        assert _rejection(no_notes).type == REJECT_RULE and "notes are required" in str(_rejection(no_notes))
    partial = await handle.execute_update(FixVerificationWorkflow.record_outcome,
                                          _outcome("applied_partial", "prints, but slowly"))
    assert (partial.status, partial.next_reminder_at) == ("applied_partial", None)
    with pytest.raises(WorkflowUpdateFailedError) as apply_late:
        await handle.execute_update(FixVerificationWorkflow.apply, ApplyInput())
    assert _rejection(apply_late).type == REJECT_CONFLICT and "applied_partial" in str(_rejection(apply_late))
    assert await _accepted_updates(handle) == accepted + 1  # validators refused the rest: no history
    assert store.names().count(RECORD_OUTCOME.name) == 1
    assert store.fixes[fix.id]["partial_notes"] == "prints, but slowly"
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING  # partial is not final
    await handle.terminate()


@pytest.mark.parametrize("final", ["applied_success", "applied_failed", "dismissed"])
async def test_a_final_outcome_ends_the_run_and_refuses_every_later_change(env: Env, final: str) -> None:
    _, _, store = env
    fix = store.seed_fix()
    done, handle = await _send(env, fix, FixVerificationWorkflow.record_outcome, _outcome(final, "it went so"))
    assert done.status == final and await asyncio.wait_for(handle.result(), timeout=10) == final
    for update, arg in ((FixVerificationWorkflow.record_outcome, _outcome("applied_pending", "wait")),
                        (FixVerificationWorkflow.record_outcome, _outcome("applied_success")),
                        (FixVerificationWorkflow.apply, ApplyInput())):
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await _send(env, fix, update, arg)
        assert _rejection(refused).type == REJECT_CONFLICT
        assert "final" in str(_rejection(refused)) or "Only a proposed fix" in str(_rejection(refused))
    assert store.names().count(RECORD_OUTCOME.name) == 1 and APPLY_FIX.name not in store.names()
    assert store.fix(fix.id).version == 1 and store.names().count(LOAD_FIX.name) == 4  # one run per command


async def test_pending_sends_each_notice_at_its_offset_then_its_email(env: Env) -> None:
    _, _, store = env
    store.reminders_s, store.overdue_s = (1.0, 2.0), 3.0
    fix = store.seed_fix()
    parked, handle = await _send(env, fix, FixVerificationWorkflow.record_outcome,
                                 _outcome("applied_pending", "waiting on the user to print"))
    at = store.inputs(RECORD_OUTCOME.name)[0].at
    assert parked.next_reminder_at == at + timedelta(seconds=1)
    state = await _state(handle)
    assert [n.due_at - at for n in state.schedule] == [timedelta(seconds=s) for s in (1, 2, 3)]
    assert state.next_reminder_at == parked.next_reminder_at
    await _until(lambda: len(_notices(store)) >= 1, "the first reminder")
    for _ in range(100):  # the workflow commits the count after the activity returns
        if (state := await _state(handle)).fired >= 1:
            break
        await asyncio.sleep(0.05)
    assert 1 <= state.fired < 3 and state.next_reminder_at == state.schedule[state.fired].due_at  # follows it
    await _until(lambda: len(store.emailed) == 3, "three emails")
    notices = _notices(store)
    assert [(n.notice.index, n.notice.kind, n.version) for n in notices] == [
        (0, "reminder", 1), (1, "reminder", 1), (2, "overdue", 1)]
    assert [n.next_reminder_at for n in notices] == [state.schedule[1].due_at, state.schedule[2].due_at, None]
    sends = [c for c in store.calls if c.name == SEND_FIX_NOTICE.name]
    for call in sends:  # each at its moment, not before and not a period late
        assert timedelta(milliseconds=-50) <= call.at - call.inp.notice.due_at < timedelta(seconds=3)
    after_parking = store.names()[store.names().index(RECORD_OUTCOME.name) + 1:]
    assert after_parking == [SEND_FIX_NOTICE.name, EMAIL_NOTIFICATION.name] * 3
    assert [e.notification_id for e in store.emailed] == [n["id"] for n in store.notifications.values()]
    final = await _state(handle)
    assert (final.fired, final.next_reminder_at) == (3, None)
    assert final.verification_overdue_at == state.schedule[2].due_at
    done = await handle.execute_update(FixVerificationWorkflow.record_outcome, _outcome("applied_success"))
    assert done.status == "applied_success" and await handle.result() == "applied_success"


async def test_a_failed_email_fails_nothing_and_later_notices_still_go_out(env: Env) -> None:
    _, _, store = env
    store.reminders_s, store.overdue_s, store.failing_emails = (1.0,), 2.0, 1
    fix = store.seed_fix()
    _, handle = await _send(env, fix, FixVerificationWorkflow.record_outcome, _outcome("applied_pending", "user out"))
    await _until(lambda: store.names().count(EMAIL_NOTIFICATION.name) == 2, "both emails")
    assert [n.notice.kind for n in _notices(store)] == ["reminder", "overdue"]
    assert [n["email_status"] for n in store.notifications.values()] == ["failed", "sent"]
    assert store.names().count(EMAIL_NOTIFICATION.name) == 2  # refused for good: not retried
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    assert (await _state(handle)).fired == 2
    done = await handle.execute_update(FixVerificationWorkflow.record_outcome, _outcome("dismissed"))
    assert done.status == "dismissed" and await handle.result() == "dismissed"


async def test_re_parking_restarts_the_schedule_under_a_new_version(env: Env) -> None:
    _, _, store = env
    store.reminders_s, store.overdue_s = (1.0, 2.0), 60.0
    fix = store.seed_fix()
    _, handle = await _send(env, fix, FixVerificationWorkflow.record_outcome, _outcome("applied_pending", "first"))
    await _until(lambda: len(_notices(store)) == 1, "the first reminder")
    again = await handle.execute_update(FixVerificationWorkflow.record_outcome, _outcome("applied_pending", "second"))
    reparked_at = store.inputs(RECORD_OUTCOME.name)[1].at
    assert again.next_reminder_at == reparked_at + timedelta(seconds=1)
    await _until(lambda: sum(n.version == 2 for n in _notices(store)) == 2, "the new schedule's two reminders")
    await asyncio.sleep(0.3)
    old = [n.notice.index for n in _notices(store) if n.version == 1]
    new = [n for n in _notices(store) if n.version == 2]
    assert old == [0] or old == [0, 1]  # the old schedule stopped when re-parked (only a prefix went out)
    assert [n.notice.index for n in new] == [0, 1]  # the new one starts again at the first reminder
    assert [n.notice.due_at - reparked_at for n in new] == [timedelta(seconds=1), timedelta(seconds=2)]
    state = await _state(handle)
    assert (state.version, state.fired, state.pending_reason) == (2, 2, "second")
    await handle.terminate()


async def test_another_outcome_stops_the_schedule(env: Env) -> None:
    _, _, store = env
    store.reminders_s, store.overdue_s = (1.0, 2.0), 3.0
    fix = store.seed_fix()
    _, handle = await _send(env, fix, FixVerificationWorkflow.record_outcome, _outcome("applied_pending", "wait"))
    await _until(lambda: len(_notices(store)) == 1, "the first reminder")
    partial = await handle.execute_update(FixVerificationWorkflow.record_outcome,
                                          _outcome("applied_partial", "half of it works"))
    assert (partial.status, partial.next_reminder_at) == ("applied_partial", None)
    sent = len(_notices(store))
    await asyncio.sleep(2.5)  # past the second reminder and the overdue moment
    assert len(_notices(store)) == sent < 3  # nothing after the partial outcome
    state = await _state(handle)
    assert (state.status, state.next_reminder_at, state.schedule) == ("applied_partial", None, [])
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    await handle.terminate()


async def test_a_notice_gone_stale_reloads_the_row(env: Env) -> None:
    _, _, store = env
    store.reminders_s, store.overdue_s = (1.0,), 30.0
    fix = store.seed_fix()
    _, handle = await _send(env, fix, FixVerificationWorkflow.record_outcome, _outcome("applied_pending", "wait"))
    row = store.fixes[fix.id]
    row.update(status="applied_success", version=row["version"] + 1)  # written outside this workflow
    assert await asyncio.wait_for(handle.result(), timeout=10) == "applied_success"  # trusted the row
    assert store.names().count(LOAD_FIX.name) == 2 and EMAIL_NOTIFICATION.name not in store.names()


async def test_concurrent_outcomes_are_applied_one_at_a_time(env: Env) -> None:
    client, _, store = env
    fix = store.seed_fix()
    cleared, _ = await _send(env, fix, FixVerificationWorkflow.clear_ai_proposal, ClearProposalInput())
    assert cleared.changed is False
    handle = client.get_workflow_handle(fix_workflow_id(fix.id))
    notes = [f"attempt {i}" for i in range(5)]
    results = await asyncio.gather(*(
        handle.execute_update(FixVerificationWorkflow.record_outcome, _outcome("applied_partial", n)) for n in notes))
    assert all(r.status == "applied_partial" and r.changed for r in results)
    assert [i.expected_version for i in store.inputs(RECORD_OUTCOME.name)] == [0, 1, 2, 3, 4]
    assert store.fix(fix.id).version == 5 and (await _state(handle)).version == 5
    assert sorted(store.fixes[fix.id]["notes_log"]) == notes  # every write landed, none lost
    await handle.terminate()


async def test_clear_ai_proposal_is_idempotent_and_changes_no_version(env: Env) -> None:
    _, _, store = env
    fix = store.seed_fix()
    store.fixes[fix.id]["ai_outcome_proposal"] = {"outcome": "applied_success", "reason": "it prints"}
    first, handle = await _send(env, fix, FixVerificationWorkflow.clear_ai_proposal, ClearProposalInput())
    second = await handle.execute_update(FixVerificationWorkflow.clear_ai_proposal, ClearProposalInput())
    assert (first.changed, second.changed) == (True, False)
    assert store.fixes[fix.id]["ai_outcome_proposal"] is None and store.fix(fix.id).version == 0
    await handle.terminate()


async def test_an_idle_run_ends_and_the_next_command_reloads(env: Env) -> None:
    _, _, store = env
    fix = store.seed_fix()
    _, first = await _send(env, fix, FixVerificationWorkflow.apply, ApplyInput(), idle_timeout_s=2)
    assert await asyncio.wait_for(first.result(), timeout=15) == "proposed"  # unloaded, still proposed
    done, second = await _send(env, fix, FixVerificationWorkflow.record_outcome, _outcome("applied_failed", "no"))
    assert second.result_run_id != first.result_run_id and done.status == "applied_failed"
    assert store.names().count(LOAD_FIX.name) == 2 and store.fix(fix.id).version == 2
    assert await second.result() == "applied_failed"
