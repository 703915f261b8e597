"""TroubleshootingSessionWorkflow: one durable workflow per AI session (`session-{id}`).

Updates drive it (create, message, add_fix, close_local); each accepted change is written to
Postgres before the update returns. The workflow holds only `SessionControl`: the transcript,
fixes and documents are rows that activities read by id. A run that sits idle ends (its state is in
Postgres; the next command starts a fresh run), and a long one continues as new.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

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
    )
    from workflows.contracts.common import REJECT_CONFLICT, REJECT_RULE, REJECT_UPSTREAM, reject
    from workflows.contracts.llm import LlmCallContext
    from workflows.contracts.search_attributes import SA_STATUS
    from workflows.skeleton import Deadline, EntityWorkflow, command_id, history_is_long

OPEN_STATUSES = ("active", "paused")


@workflow.defn
class TroubleshootingSessionWorkflow(EntityWorkflow[SessionControl]):
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
        # Idle is measured on the workflow's clock, from this run's start or its last change.
        deadline = self._deadline = Deadline(workflow.now() + self._idle,
                                             summary="idle: unload the session (its state is in Postgres)")
        while self.current.status in OPEN_STATUSES:
            due = await deadline.wait(lambda: self.current.status not in OPEN_STATUSES or history_is_long())
            if due:
                await self._finish()  # a command may be in flight
                if deadline.at is not None and workflow.now() >= deadline.at:
                    break  # idle: the next command starts a new run from Postgres
            elif self.current.status in OPEN_STATUSES:
                await self._finish()
                workflow.continue_as_new(inp.model_copy(update={"state": self.current, "created_by_update": False}))
        await self._finish()
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
        """Insert the session with its intake as the first message (idempotent by id)."""
        await self._create_once(lambda: CREATE_SESSION(inp))
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

        return await self.transition(_require_active, change)

    @add_fix.validator
    def _validate_add_fix(self, inp: FixDraft) -> None:
        if self._state is not None:
            _require_active(self._state)

    @workflow.update
    async def close_local(self, inp: CloseInput) -> CloseResult:
        """Store the resolution note (resolved) or escalation package (escalated) of a session without a ticket."""

        async def change(state: SessionControl) -> tuple[SessionControl, CloseResult]:
            closed = await CLOSE_SESSION(CloseSessionInput(session_id=state.id, kind=inp.kind, markdown=inp.markdown,
                                                           by_user_id=inp.by_user_id, at=workflow.now()))
            new = state.model_copy(update={"status": closed.session_status, "last_activity_at": workflow.now()})
            return new, closed

        return await self.transition(lambda s: _check_close(s, inp), change)

    @close_local.validator
    def _validate_close(self, inp: CloseInput) -> None:
        if self._state is not None:
            _check_close(self._state, inp)

    # --- helpers ----------------------------------------------------------------------------

    def _on_commit(self, old: SessionControl | None, new: SessionControl) -> None:
        if self._deadline is not None:
            self._deadline.move_to(new.last_activity_at + self._idle)
        if old is None or old.status != new.status:
            workflow.upsert_search_attributes([SA_STATUS.value_set(new.status)])
        workflow.set_current_details(
            f"{new.status} · {new.session_type} session · {new.message_count} messages · "
            f"{new.confidence_tier} ({new.confidence:.0%}) · {new.problem_summary[:80]}"
        )



def _require_active(state: SessionControl) -> None:
    if state.status != "active":
        raise reject(REJECT_CONFLICT, f"This AI session is {state.status}; only active sessions change")


def _check_message(state: SessionControl) -> None:
    _require_active(state)
    if state.message_count + 2 > MAX_MESSAGES_PER_SESSION:
        raise reject(REJECT_RULE, f"This session reached its limit of {MAX_MESSAGES_PER_SESSION} messages; "
                                  "post its resolution note or escalate it, then open a new session")


def _check_close(state: SessionControl, inp: CloseInput) -> None:
    if state.has_psa_ticket:
        raise reject(REJECT_RULE, "This session is linked to a PSA ticket: its note is posted to the ticket, "
                                  "which this server cannot do yet")
    closable = ("active", "paused", "escalated") if inp.kind == "resolution_note" else ("active", "paused")
    if state.status not in closable:
        raise reject(REJECT_CONFLICT, f"This session is already {state.status}")
