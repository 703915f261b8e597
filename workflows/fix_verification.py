"""FixVerificationWorkflow: one durable workflow per suggested fix (`fix-{fix_id}`).

Update validators enforce seed 001's outcome state machine; every accepted change is written to
Postgres (and counted once on the session's `state_version`) before the update returns. While a
fix is parked as `applied_pending` the workflow is what remembers it: it reminds the engineer at the
account's `pending_verification_reminders` and at `verification_overdue_after` marks it overdue and
tells the escalation recipients. Any other outcome cancels the schedule; re-parking restarts it.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.contracts.common import REJECT_CONFLICT, REJECT_NOT_FOUND, REJECT_RULE, reject
    from workflows.contracts.fix import (
        APPLY_FIX,
        CLEAR_AI_PROPOSAL,
        LOAD_FIX,
        NEEDS_NOTES,
        QUERY_FIX_STATE,
        RECORD_OUTCOME,
        SEND_FIX_NOTICE,
        TERMINAL_STATUSES,
        ApplyFixInput,
        ApplyInput,
        ClearProposalInput,
        FixById,
        FixCommandResult,
        FixControl,
        FixInput,
        FixNoticeInput,
        OutcomeInput,
        RecordOutcomeInput,
        final_outcome,
        not_appliable,
    )
    from workflows.contracts.notify import EMAIL_NOTIFICATION, NotificationEmail
    from workflows.contracts.search_attributes import SA_FIX_STATUS
    from workflows.contracts.wording import waiting_on
    from workflows.skeleton import Deadline, EntityWorkflow, command_id, history_is_long


@workflow.defn
class FixVerificationWorkflow(EntityWorkflow[FixControl]):
    """proposed -> applied_success | applied_failed | dismissed (final) | applied_partial | applied_pending."""

    _entity = "suggested fix"

    @workflow.init
    def __init__(self, inp: FixInput) -> None:
        super().__init__()
        self._input = inp
        self._idle = timedelta(seconds=inp.idle_timeout_s)
        self._deadline: Deadline | None = None
        self._emails: list[asyncio.Task[None]] = []
        # Idle is measured on the workflow's clock from the last change this run saw (not a row's timestamp).
        self._quiet_since = workflow.now()

    @workflow.run
    async def run(self, inp: FixInput) -> str:
        """Load the fix, serve commands, send each due notice; end when final or idle (state is in Postgres)."""
        if inp.state is not None:
            self._commit(inp.state)
        else:
            self._set_loaded((await LOAD_FIX(FixById(fix_id=inp.fix_id))).control)
        if not await self._exists():
            await self._finish()
            return "missing"
        at, summary = self._due(self.current)
        deadline = self._deadline = Deadline(at, summary)
        while self.current.status not in TERMINAL_STATUSES:
            due = await deadline.wait(lambda: self.current.status in TERMINAL_STATUSES or history_is_long())
            if due and self.current.next_notice() is not None:
                await self._send_notice()
            elif due:
                await self._finish()  # a command may be in flight: it may park the fix
                if self.current.next_notice() is None and workflow.now() >= self._quiet_since + self._idle:
                    break  # idle and nothing scheduled: the next command starts a new run from Postgres
            elif self.current.status not in TERMINAL_STATUSES:
                await self._drain_emails()
                await self._finish()
                workflow.continue_as_new(inp.model_copy(update={"state": self.current}))
        await self._drain_emails()
        await self._finish()
        return self.current.status

    @workflow.query(name=QUERY_FIX_STATE)
    def state(self) -> FixControl | None:
        """The live control state, `next_reminder_at` included (None until loaded)."""
        return self._state

    # --- updates ----------------------------------------------------------------------------

    @workflow.update
    async def apply(self, _: ApplyInput) -> FixCommandResult:
        """Stamp `applied_at` once; the status stays proposed until an outcome is recorded."""

        async def change(state: FixControl) -> tuple[FixControl, FixCommandResult]:
            if state.applied_at is not None:  # idempotent: no second stamp, no second version bump
                return state, FixCommandResult(status=state.status, changed=False)
            changed = await APPLY_FIX(ApplyFixInput(fix_id=state.id, session_id=state.session_id,
                                                    expected_version=state.version, change_id=command_id(),
                                                    at=workflow.now()))
            new = changed.control()
            return new, FixCommandResult(status=new.status, changed=True, view=changed.view)

        return await self.transition(_check_apply, change)

    @apply.validator
    def _validate_apply(self, _: ApplyInput) -> None:
        if self._state is not None:
            _check_apply(self._state)

    @workflow.update
    async def record_outcome(self, inp: OutcomeInput) -> FixCommandResult:
        """Record how the fix went; parking it (applied_pending) starts its reminders, anything else stops them."""

        async def change(state: FixControl) -> tuple[FixControl, FixCommandResult]:
            changed = await RECORD_OUTCOME(RecordOutcomeInput(
                fix_id=state.id, session_id=state.session_id, expected_version=state.version,
                change_id=command_id(), outcome=inp.outcome,
                notes=inp.notes,
                by_user_id=inp.by_user_id, at=workflow.now(),
            ))
            new = changed.control()
            if new.status == "applied_pending":
                workflow.logger.info("fix %s parked: %d notice(s), first at %s", new.id, len(new.schedule),
                                     new.next_reminder_at)
            return new, FixCommandResult(status=new.status, changed=True, next_reminder_at=new.next_reminder_at,
                                         view=changed.view)

        return await self.transition(lambda s: _check_outcome(s, inp), change)

    @record_outcome.validator
    def _validate_outcome(self, inp: OutcomeInput) -> None:
        _check_notes(inp)
        if self._state is not None:
            _check_outcome(self._state, inp)

    @workflow.update
    async def clear_ai_proposal(self, _: ClearProposalInput) -> FixCommandResult:
        """Drop the AI's outcome proposal (idempotent; nothing else changes)."""

        async def change(state: FixControl) -> tuple[FixControl, FixCommandResult]:
            return state, await CLEAR_AI_PROPOSAL(FixById(fix_id=state.id))

        return await self.transition(lambda _: None, change)

    # --- helpers ----------------------------------------------------------------------------

    async def _send_notice(self) -> None:

        async def change(state: FixControl) -> tuple[FixControl, None]:
            notice = state.next_notice()
            if notice is None or notice.due_at > workflow.now():
                return state, None  # an outcome slipped in while the timer fired
            following = state.schedule[state.fired + 1].due_at if state.fired + 1 < len(state.schedule) else None
            sent = await SEND_FIX_NOTICE(
                FixNoticeInput(fix_id=state.id, version=state.version, notice=notice, next_reminder_at=following),
                summary=f"{notice.kind} {notice.index + 1} of {len(state.schedule)}",
            )
            if sent.stale:  # Postgres moved on without this workflow (or the session closed): trust the row
                return await self._reload(or_else=state.model_copy(update={"schedule": []})), None
            self._emails += [asyncio.create_task(self._email(e)) for e in sent.emails]
            overdue = notice.due_at if notice.kind == "overdue" else state.verification_overdue_at
            return state.model_copy(update={"fired": state.fired + 1, "verification_overdue_at": overdue}), None

        await self.transition(lambda _: None, change)

    async def _email(self, email: NotificationEmail) -> None:
        # Best-effort: the in-app notification is the record; a mail server that is down fails no reminder.
        try:
            await EMAIL_NOTIFICATION(email, summary=f"email {email.to}")
        except (ActivityError, ApplicationError) as exc:  # a local activity's final failure may come unwrapped
            workflow.logger.warning("fix %s: email to %s failed: %s", self._input.fix_id, email.to,
                                    getattr(exc, "cause", None) or exc)

    async def _drain_emails(self) -> None:
        emails, self._emails = self._emails, []
        await asyncio.gather(*emails)

    async def _reload(self, or_else: FixControl | None = None) -> FixControl:
        """The fix as stored; when it is gone, `or_else` (or a not-found rejection)."""
        loaded = (await LOAD_FIX(FixById(fix_id=self._input.fix_id))).control
        if loaded is not None:
            return loaded
        if or_else is not None:
            return or_else
        raise reject(REJECT_NOT_FOUND, "Suggested fix not found")

    def _due(self, state: FixControl) -> tuple[datetime, str]:
        notice = state.next_notice()
        if notice is not None:
            return notice.due_at, f"{notice.kind} {notice.index + 1} of {len(state.schedule)}"
        return self._quiet_since + self._idle, "idle: unload the fix (its state is in Postgres)"

    def _on_commit(self, old: FixControl | None, new: FixControl) -> None:
        self._quiet_since = workflow.now()
        if self._deadline is not None:
            at, self._deadline.summary = self._due(new)
            self._deadline.move_to(at)
        if old is None or old.status != new.status:
            workflow.upsert_search_attributes([SA_FIX_STATUS.value_set(new.status)])
        workflow.set_current_details(_details(new))


def _details(state: FixControl) -> str:
    text = f"Fix '{state.title}' — {state.status}"
    if state.status == "applied_pending":
        text += f": {waiting_on(state.pending_reason) if state.pending_reason else 'no reason given'}"
        nxt = state.next_reminder_at
        text += f"; next reminder {nxt:%Y-%m-%d %H:%M:%S} UTC" if nxt else "; no reminders left"
        if state.verification_overdue_at:
            text += f"; overdue since {state.verification_overdue_at:%Y-%m-%d %H:%M} UTC"
    elif state.applied_at and state.status == "proposed":
        text += f", applied {state.applied_at:%Y-%m-%d %H:%M} UTC, awaiting its outcome"
    return text




def _check_apply(state: FixControl) -> None:
    if state.status != "proposed":
        raise reject(REJECT_CONFLICT, not_appliable(state.status))


def _check_notes(inp: OutcomeInput) -> None:
    if inp.outcome in NEEDS_NOTES and not (inp.notes or "").strip():
        what = "what you are waiting on" if inp.outcome == "applied_pending" else "what worked and what did not"
        raise reject(REJECT_RULE, f"notes are required for {inp.outcome}: say {what}")


def _check_outcome(state: FixControl, inp: OutcomeInput) -> None:
    _check_notes(inp)
    if state.status in TERMINAL_STATUSES:
        raise reject(REJECT_CONFLICT, final_outcome(state.status))
