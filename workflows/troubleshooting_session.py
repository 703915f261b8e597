"""TroubleshootingSessionWorkflow: one durable workflow per AI session (`session-{id}`).

Updates drive it (create, message, add_fix, close_local, post_to_psa, and hand_off and claim_handoff from
workflows/session_handoffs.py); each accepted change is written to Postgres before the update returns. After a
verified PSA status change the run stays to re-read the ticket once (drift watch) before it ends. The workflow
holds only `SessionControl`: the transcript, fixes and documents are rows that activities read by id. A run that
sits idle ends (its state is in Postgres; the next command starts a fresh run), and a long one continues as new.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.contracts.ai_session import (
        ADD_FIX,
        CLOSE_SESSION,
        CREATE_SESSION,
        LOAD_SESSION,
        MAX_MESSAGES_PER_SESSION,
        QUERY_SESSION_STATE,
        RECORD_TURN,
        SESSION_REPLY,
        AddFixInput,
        AddFixResult,
        CloseInput,
        CloseResult,
        CloseSessionInput,
        FixDraft,
        MessageInput,
        MessageResult,
        RecordTurnInput,
        SessionControl,
        SessionCreate,
        SessionInput,
        SessionRef,
        SessionReplyInput,
        summary_of,
    )
    from workflows.contracts.common import REJECT_CONFLICT, REJECT_RULE, REJECT_UPSTREAM, reject
    from workflows.contracts.llm import LlmCallContext
    from workflows.contracts.notify import EMAIL_NOTIFICATION, NotificationEmail
    from workflows.contracts.psa import PsaCloseResult, StatusRecheck, TicketRef
    from workflows.contracts.search_attributes import SA_STATUS
    from workflows.contracts.wording import counted
    from workflows.session_handoffs import SessionHandoffs, require_active
    from workflows.session_writeback import read_ticket_for_intake, recheck_status, write_back
    from workflows.skeleton import Deadline, command_id, history_is_long

OPEN_STATUSES = ("active", "paused")
# Statuses whose run stays for the idle period: open ones, and an escalation waiting for its claim.
HELD_STATUSES = (*OPEN_STATUSES, "escalated")


@workflow.defn
class TroubleshootingSessionWorkflow(SessionHandoffs):
    """The conversation of one AI session and its local close (resolved / escalated)."""

    _entity = "AI session"

    @workflow.init
    def __init__(self, inp: SessionInput) -> None:
        super().__init__()
        self._input = inp
        self._idle = timedelta(seconds=inp.idle_timeout_s)
        self._deadline: Deadline | None = None

    @workflow.run
    async def run(self, inp: SessionInput) -> str:
        """Load (or be created with) the session and serve commands until it closes or sits idle."""
        if inp.state is not None:
            self._commit(inp.state)
        elif inp.created_by_update:
            await self._created_within(self._idle, self._load)
        else:
            self._set_loaded(await self._load())
        if not await self._exists():
            await self._finish()
            return "missing"
        # Idle is measured on the workflow's clock, from this run's start or its last change; a pending
        # status re-read keeps the run (its timer) until it is done.
        deadline = self._deadline = Deadline(self._due(self.current), summary=self._due_summary(self.current))
        idle = False
        while not idle:
            while self._serving(self.current):
                due = await deadline.wait(lambda: not self._serving(self.current) or history_is_long())
                if not due:
                    if self._serving(self.current):
                        await self._finish()
                        workflow.continue_as_new(inp.model_copy(update={"state": self.current,
                                                                        "created_by_update": False}))
                    continue
                recheck = self.current.status_recheck
                if recheck is not None:
                    if workflow.now() >= recheck.due_at:
                        await self._recheck(recheck)
                    continue
                await self._finish()  # a command may be in flight
                if deadline.at is not None and workflow.now() >= deadline.at:
                    idle = True  # the next command starts a new run from Postgres
                    break
            await self._finish()
            if not idle and self.current.status == "escalated" and workflow.patched("hold-an-escalated-run"):
                await self._await_claim(deadline)
            # A claim (`claim_handoff`, or an older run's `resume`) starts a run that loads the session still
            # escalated; once it lands the session is active: serve it here rather than end, so the claimer's next
            # command finds this run.
            if not self._serving(self.current) or not workflow.patched("serve-a-resumed-session"):
                break
        return self.current.status

    async def _load(self) -> SessionControl | None:
        return (await LOAD_SESSION(SessionRef(session_id=self._input.session_id))).control

    @workflow.query(name=QUERY_SESSION_STATE)
    def state(self) -> SessionControl | None:
        """The live control state (None until loaded)."""
        return self._state

    # --- updates ----------------------------------------------------------------------------

    @workflow.update
    async def create(self, inp: SessionCreate) -> SessionControl:
        """Insert the session with its intake as the first message (idempotent by id); a PSA intake reads
        the ticket's summary first."""

        async def create() -> SessionControl:
            if inp.intake_type == "psa_ticket" and inp.psa_connection_id and inp.psa_ticket_id:
                ticket = await read_ticket_for_intake(TicketRef(account_id=inp.account_id,
                                                                connection_id=inp.psa_connection_id,
                                                                ticket_id=inp.psa_ticket_id))
                text = f"{ticket.summary}\n\n{inp.intake_text}".strip()
                return await CREATE_SESSION(inp.model_copy(update={"intake_text": text,
                                                                   "problem_summary": summary_of(text)}))
            return await CREATE_SESSION(inp)

        await self._create_once(create)
        return self.current

    @create.validator
    def _validate_create(self, inp: SessionCreate) -> None:
        if inp.session_id != self._input.session_id:
            raise reject(REJECT_RULE, "create names another session than this workflow's")

    @workflow.update
    async def message(self, inp: MessageInput) -> MessageResult:
        """Ask the model with the engineer's message, then store the exchange and any proposals."""
        turn_id = command_id()

        async def change(state: SessionControl) -> tuple[SessionControl, MessageResult]:
            try:
                reply = await SESSION_REPLY(SessionReplyInput(
                    context=LlmCallContext(account_id=str(state.account_id), subject_id=str(state.id)),
                    session_id=state.id, user_content=inp.content, current_confidence=state.confidence,
                ), summary="the assistant's reply")
            except ActivityError as exc:
                raise reject(REJECT_UPSTREAM, "The AI could not answer; send the message again") from exc
            stored = await RECORD_TURN(RecordTurnInput(session_id=state.id, turn_id=turn_id,
                                                       user_content=inp.content, reply=reply, at=workflow.now()))
            new = state.model_copy(update={
                "message_count": stored.message_count, "confidence": reply.confidence,
                "confidence_tier": reply.confidence_tier, "last_activity_at": workflow.now(),
            })
            return new, MessageResult(
                reply=reply.reply, confidence_tier=reply.confidence_tier, suggested_fix_id=stored.suggested_fix_id,
                outcome_proposal=reply.outcome_proposal if stored.outcome_fix_id else None,
                outcome_fix_id=stored.outcome_fix_id, state_version=stored.state_version,
            )

        return await self.transition(_check_message, change)

    @message.validator
    def _validate_message(self, inp: MessageInput) -> None:
        if self._state is not None:
            _check_message(self._state)

    @workflow.update
    async def add_fix(self, inp: FixDraft) -> AddFixResult:
        """Record an engineer's own candidate fix; it becomes the active one."""

        async def change(state: SessionControl) -> tuple[SessionControl, AddFixResult]:
            added = await ADD_FIX(AddFixInput(session_id=state.id, draft=inp, at=workflow.now()))
            return state.model_copy(update={"last_activity_at": workflow.now()}), added

        return await self.transition(require_active, change)

    @add_fix.validator
    def _validate_add_fix(self, inp: FixDraft) -> None:
        if self._state is not None:
            require_active(self._state)

    @workflow.update
    async def close_local(self, inp: CloseInput) -> CloseResult:
        """Store the resolution note (resolved) or escalation package (escalated) of a session without a ticket."""

        async def change(state: SessionControl) -> tuple[SessionControl, CloseResult]:
            closed = await CLOSE_SESSION(CloseSessionInput(session_id=state.id, kind=inp.kind, markdown=inp.markdown,
                                                           by_user_id=inp.by_user_id, at=workflow.now()))
            new = state.model_copy(update={"status": closed.session_status, "last_activity_at": workflow.now()})
            handoff = await self._package_handoff(new, inp, closed.state_version)
            return (new.model_copy(update={"handoff": handoff}) if handoff else new), closed

        return await self.transition(lambda s: _check_close(s, inp), change)

    @close_local.validator
    def _validate_close(self, inp: CloseInput) -> None:
        if self._state is not None:
            _check_close(self._state, inp)

    @workflow.update
    async def post_to_psa(self, inp: CloseInput) -> PsaCloseResult:
        """Post the document to the session's ticket, change and verify its status, then resolve or escalate."""

        async def change(state: SessionControl) -> tuple[SessionControl, PsaCloseResult]:
            result, recheck = await write_back(state, inp)
            pending = state.status_recheck
            if recheck is not None and (pending is None or recheck.due_at < pending.due_at):
                pending = recheck  # the later one is loaded from Postgres once the earlier is done
            new = state.model_copy(update={"status": result.session_status, "last_activity_at": workflow.now(),
                                           "status_recheck": pending})
            handoff = await self._package_handoff(new, inp, result.state_version)
            return (new.model_copy(update={"handoff": handoff}) if handoff else new), result

        return await self.transition(lambda s: _check_post(s, inp), change)

    @post_to_psa.validator
    def _validate_post(self, inp: CloseInput) -> None:
        if self._state is not None:
            _check_post(self._state, inp)

    # --- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _serving(state: SessionControl) -> bool:
        return state.status in OPEN_STATUSES or state.status_recheck is not None

    def _due(self, state: SessionControl) -> datetime | None:
        if state.status_recheck is not None:
            return state.status_recheck.due_at
        return state.last_activity_at + self._idle if state.status in HELD_STATUSES else None

    @staticmethod
    def _due_summary(state: SessionControl) -> str:
        if state.status_recheck is not None:
            return f"re-read ticket {state.status_recheck.ticket.ticket_id}'s status (drift watch)"
        if state.status == "escalated":
            return "escalated and unclaimed: unload the session (its state is in Postgres)"
        return "idle: unload the session (its state is in Postgres)"

    async def _await_claim(self, deadline: Deadline) -> None:
        """Keep an escalated session's run for the idle period: seniors claim from a live queue, and a claim then
        reaches this cached run (one update) instead of starting a run that loads the session."""
        await deadline.wait(lambda: self.current.status != "escalated" or self._serving(self.current)
                            or history_is_long())
        await self._finish()

    async def _recheck(self, recheck: StatusRecheck) -> None:
        """Re-read the ticket's status once; on drift the engineer is notified (in-app, and email best-effort)."""
        recorded = None

        async def change(state: SessionControl) -> tuple[SessionControl, None]:
            nonlocal recorded
            try:
                recorded = await recheck_status(recheck)
                # Another verified write-back of this session may still wait: Postgres knows.
                loaded = (await LOAD_SESSION(SessionRef(session_id=state.id))).control
            except ActivityError as exc:  # the write-back row is gone: nothing left to watch
                workflow.logger.warning("session %s: status re-read dropped: %s", state.id, exc.cause or exc)
                loaded = None
            return state.model_copy(update={"status_recheck": loaded.status_recheck if loaded else None}), None

        await self.transition(lambda _: None, change)
        if recorded is not None and recorded.email_to and recorded.notification_id:
            try:
                await EMAIL_NOTIFICATION(NotificationEmail(notification_id=recorded.notification_id,
                                                           to=recorded.email_to, subject=recorded.subject,
                                                           body=recorded.body), summary=f"email {recorded.email_to}")
            except (ActivityError, ApplicationError) as exc:  # best-effort: the notification is the record
                workflow.logger.warning("session %s: drift email failed: %s", self._input.session_id,
                                        getattr(exc, "cause", None) or exc)

    def _on_commit(self, old: SessionControl | None, new: SessionControl) -> None:
        if self._deadline is not None:
            self._deadline.move_to(self._due(new))
            self._deadline.summary = self._due_summary(new)
        if old is None or old.status != new.status:
            workflow.upsert_search_attributes([SA_STATUS.value_set(new.status)])
        workflow.set_current_details(_details(new))



def _details(state: SessionControl) -> str:
    """The session as the Web UI lists it."""
    return (f"{state.status} · {state.session_type} session · {counted(state.message_count, 'message')} · "
            f"{state.confidence_tier} ({state.confidence:.0%}) · {state.problem_summary[:80]}")


def _check_message(state: SessionControl) -> None:
    require_active(state)
    if state.message_count + 2 > MAX_MESSAGES_PER_SESSION:
        raise reject(REJECT_RULE, f"This session reached its limit of {MAX_MESSAGES_PER_SESSION} messages; "
                                  "post its resolution note or escalate it, then open a new session")


def _check_close(state: SessionControl, inp: CloseInput) -> None:
    if state.has_psa_ticket:
        raise reject(REJECT_RULE, "This session is linked to a PSA ticket: its document is posted to the ticket")
    _check_closable(state, inp)


def _check_post(state: SessionControl, inp: CloseInput) -> None:
    if not state.has_psa_ticket:
        raise reject(REJECT_RULE, "This session has no PSA ticket: its document is stored on the session only")
    _check_closable(state, inp)


def _check_closable(state: SessionControl, inp: CloseInput) -> None:
    closable = ("active", "paused", "escalated") if inp.kind == "resolution_note" else ("active", "paused")
    if state.status not in closable:
        raise reject(REJECT_CONFLICT, f"This session is already {state.status}")
