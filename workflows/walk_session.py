"""WalkSessionWorkflow: one durable workflow per L1 walk session (`walk-{session_id}`).

Updates drive it (create, open, step, add_notes, resolve, escalate); validators enforce the state
machine, every accepted change is written to Postgres before the update returns, and an idle
deadline abandons a walk nobody touches for `idle_timeout_s`. The workflow holds only
`WalkControl`; the path, the notes and the tree are rows that activities read by id.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows.contracts.common import REJECT_CONFLICT, REJECT_RULE, REJECT_UPSTREAM, reject
    from workflows.contracts.llm import NEXT_WALK_NODE, LlmCallContext, NextWalkNodeInput, WalkedStep
    from workflows.contracts.notify import SEND_EMAIL, EmailMessage
    from workflows.contracts.search_attributes import SA_STATUS
    from workflows.contracts.walk import (
        ABANDON_WALK,
        ADD_NOTES,
        CREATE_WALK,
        ESCALATE_WALK,
        LOAD_WALK,
        MAX_NOTES_PER_WALK,
        QUERY_STATE,
        RECORD_STEP,
        RESOLVE_WALK,
        SET_PENDING,
        WALK_PROMPT,
        AddNotesInput,
        CloseWalkInput,
        CreateInput,
        EscalateInput,
        EscalateResult,
        NotesInput,
        NotesResult,
        OpenInput,
        OpenResult,
        RecordStepInput,
        ResolveInput,
        ResolveResult,
        SetPendingInput,
        StepInput,
        StepResult,
        WalkById,
        WalkControl,
        WalkInput,
        WalkNode,
    )
    from workflows.contracts.wording import counted
    from workflows.skeleton import Deadline, EntityWorkflow


@workflow.defn
class WalkSessionWorkflow(EntityWorkflow[WalkControl]):
    """The state machine of one walk: active -> resolved | escalated | abandoned."""

    _entity = "walk session"

    @workflow.init
    def __init__(self, inp: WalkInput) -> None:
        super().__init__()
        self._input = inp
        self._outbox: list[EmailMessage] = []
        self._idle = timedelta(seconds=inp.idle_timeout_s)
        self._idle_deadline: Deadline | None = None

    @workflow.run
    async def run(self, inp: WalkInput) -> str:
        """Load (or be created with) the session, serve updates until it ends or idles out, then send emails."""
        if inp.state is not None:
            self._commit(inp.state)
        elif inp.created_by_update:
            # Runs started before this bound existed waited unbounded (and recorded no timer): keep replaying them.
            if workflow.patched("bounded-create-wait"):
                await self._created_within(self._idle, self._load)
        else:
            self._set_loaded(await self._load())
        if not await self._exists():
            await self._finish()
            return "missing"
        idle = self._idle
        deadline = self._idle_deadline = Deadline(self.current.last_step_at + idle, summary="idle: abandon the walk")
        while self.current.status == "active":
            # One timer per idle period: steps move the deadline later (in _on_commit), which costs no new timer.
            due = await deadline.wait(lambda: self.current.status != "active"
                                      or workflow.info().is_continue_as_new_suggested())
            if due:
                await self._abandon_if_idle()
            elif self.current.status == "active":  # continue-as-new was suggested
                await self._finish()
                workflow.continue_as_new(inp.model_copy(update={"state": self.current}))
        await self._send_outbox()
        await self._finish()
        return self.current.status

    async def _load(self) -> WalkControl | None:
        return (await LOAD_WALK(WalkById(session_id=self._input.session_id))).control

    @workflow.query(name=QUERY_STATE)
    def state(self) -> WalkControl | None:
        """The live control state (None until loaded)."""
        return self._state

    # --- updates ----------------------------------------------------------------------------

    @workflow.update
    async def create(self, inp: CreateInput) -> OpenResult:
        """Insert the session (idempotent by id), serve its first node, and escalate at once if asked."""
        await self._create_once(lambda: CREATE_WALK(inp.walk))
        opened = await self._open()
        if inp.escalate is None or self.current.status != "active":
            return opened
        escalation = await self._escalate(inp.escalate)
        return OpenResult(pending_node=None, escalation=escalation)

    @create.validator
    def _validate_create(self, inp: CreateInput) -> None:
        if inp.walk.session_id != self._input.session_id:
            raise reject(REJECT_RULE, "create names another session than this workflow's")

    @workflow.update
    async def open(self, _: OpenInput) -> OpenResult:
        """The pending node; the first node of an AI-built walk is asked for here, once."""
        return await self._open()

    async def _open(self) -> OpenResult:

        async def change(state: WalkControl) -> tuple[WalkControl, OpenResult]:
            if state.pending_node is not None or state.depth or state.session_kind != "ai_build":
                return state, OpenResult(pending_node=state.pending_node)
            node = await self._ask_model(state)
            await SET_PENDING(SetPendingInput(session_id=state.id, node=node))
            return state.model_copy(update={"pending_node": node}), OpenResult(pending_node=node)

        if self._state is not None and self.current.status != "active":
            return OpenResult(pending_node=self.current.pending_node)
        return await self.transition(_require_active, change)

    @workflow.update
    async def step(self, inp: StepInput) -> StepResult:
        """Record the answer to the pending question and serve the next node."""

        async def change(state: WalkControl) -> tuple[WalkControl, StepResult]:
            pending = state.pending_node
            assert pending is not None  # checked
            question = pending.question or inp.question
            next_node = None
            if state.session_kind == "ai_build":
                next_node = await self._ask_model(state, WalkedStep(node_id=pending.id, question=question,
                                                                     answer=inp.answer))
            at = workflow.now()
            recorded = await RECORD_STEP(RecordStepInput(
                session_id=state.id, node_id=pending.id, question=question,
                answer=inp.answer, at=at, next_node=next_node,
            ))
            served = recorded.pending_node
            new = state.model_copy(update={"pending_node": served, "depth": recorded.depth, "last_step_at": at})
            written = {"step": WalkedStep(node_id=pending.id, question=question, answer=inp.answer),
                       "depth": recorded.depth, "last_step_at": at}
            if served.kind == "question":
                return new, StepResult(next_node=served, **written)
            return new, StepResult(resolution=served, **written)

        return await self.transition(lambda s: _check_step(s, inp), change)

    @step.validator
    def _validate_step(self, inp: StepInput) -> None:
        if self._state is not None:
            _check_step(self._state, inp)

    @workflow.update
    async def add_notes(self, inp: NotesInput) -> NotesResult:
        """Append the tech's notes (stored as rows)."""
        batch = workflow.current_update_info()
        batch_id = batch.id if batch else str(workflow.uuid4())

        async def change(state: WalkControl) -> tuple[WalkControl, NotesResult]:
            saved = await ADD_NOTES(AddNotesInput(session_id=state.id, batch_id=batch_id, notes=inp.notes,
                                                  at=workflow.now()))
            new = state.model_copy(update={"note_count": saved.note_count, "last_step_at": workflow.now()})
            return new, saved

        return await self.transition(lambda s: _check_notes(s, inp), change)

    @add_notes.validator
    def _validate_notes(self, inp: NotesInput) -> None:
        if self._state is not None:
            _check_notes(self._state, inp)

    @workflow.update
    async def resolve(self, inp: ResolveInput) -> ResolveResult:
        """Close the walk as resolved (a helpful AI-built walk becomes a flow proposal)."""

        async def change(state: WalkControl) -> tuple[WalkControl, ResolveResult]:
            found = await RESOLVE_WALK(CloseWalkInput(session_id=state.id, status="resolved", at=workflow.now(),
                                                      helpful=inp.helpful, resolution_notes=inp.resolution_notes))
            return state.model_copy(update={"status": "resolved"}), ResolveResult(proposal_id=found.proposal_id)

        return await self.transition(_require_active, change)

    @resolve.validator
    def _validate_resolve(self, inp: ResolveInput) -> None:
        if self._state is not None:
            _require_active(self._state)

    @workflow.update
    async def escalate(self, inp: EscalateInput) -> EscalateResult:
        """Hand the walk to engineers and queue an email to each live recipient."""
        return await self._escalate(inp)

    async def _escalate(self, inp: EscalateInput) -> EscalateResult:

        async def change(state: WalkControl) -> tuple[WalkControl, EscalateResult]:
            found = await ESCALATE_WALK(CloseWalkInput(
                session_id=state.id, status="escalated", at=workflow.now(),
                escalation_reason_category=inp.reason_category, escalation_reason=inp.reason,
            ))
            new = state.model_copy(update={"status": "escalated"})
            emails = [r.email for r in found.recipients]
            if not emails:
                warning = ("Escalated, but nobody was notified: the category has no live escalation "
                           "recipients and neither does the account (set default_escalation_recipient_ids)")
                workflow.logger.warning("walk %s: %s", state.id, warning)
                return new, EscalateResult(warning=warning)
            self._outbox.extend(EmailMessage(to=[e], subject=found.subject, body=found.body) for e in emails)
            return new, EscalateResult(notified=emails)

        return await self.transition(_require_active, change)

    @escalate.validator
    def _validate_escalate(self, inp: EscalateInput) -> None:
        if self._state is not None:
            _require_active(self._state)

    # --- helpers ----------------------------------------------------------------------------

    def _on_commit(self, old: WalkControl | None, new: WalkControl) -> None:
        if self._idle_deadline is not None:
            self._idle_deadline.move_to(new.last_step_at + self._idle)
        if old is None or old.status != new.status:
            workflow.upsert_search_attributes([SA_STATUS.value_set(new.status)])
        workflow.set_current_details(_details(new))

    async def _ask_model(self, state: WalkControl, answered: WalkedStep | None = None) -> WalkNode:
        prompt = await WALK_PROMPT(WalkById(session_id=state.id))
        path = [*prompt.walked_path, *([answered] if answered else [])]
        force = len(path) >= self._input.max_depth
        request = NextWalkNodeInput(
            context=LlmCallContext(account_id=str(state.account_id), subject_id=str(state.id)),
            problem=prompt.problem, category=prompt.category or "general", walked_path=path,
            force_conclusion=force,
        )
        try:
            suggestion = await NEXT_WALK_NODE(request)
        except ActivityError as exc:
            raise reject(REJECT_UPSTREAM, "The AI could not produce the next node; try again") from exc
        # The server, not the model, names nodes: the step protocol keys on these ids.
        node_id = str(workflow.uuid4())
        if suggestion.kind == "question" and suggestion.question and not force:
            return WalkNode(id=node_id, kind="question", question=suggestion.question, options=suggestion.options)
        if suggestion.kind == "resolution" and suggestion.resolution:
            return WalkNode(id=node_id, kind="resolution", resolution=suggestion.resolution,
                            escalate=suggestion.escalate)
        reason = (f"The walk reached its limit of {self._input.max_depth} questions without a fix" if force
                  else "The AI gave no usable next question")
        return WalkNode(id=node_id, kind="resolution", escalate=True,
                        resolution=f"{reason}: escalate it to an engineer with the walked path.")

    async def _abandon_if_idle(self) -> None:
        async def change(state: WalkControl) -> tuple[WalkControl, None]:
            if state.status != "active" or workflow.now() - state.last_step_at < self._idle:
                return state, None  # a step slipped in while the timer fired
            await ABANDON_WALK(CloseWalkInput(session_id=state.id, status="abandoned", at=workflow.now()))
            workflow.logger.info("walk %s abandoned after being idle", state.id)
            return state.model_copy(update={"status": "abandoned"}), None

        await self.transition(lambda _: None, change)

    async def _send_outbox(self) -> None:
        outbox, self._outbox = self._outbox, []
        results = await asyncio.gather(*(SEND_EMAIL(m) for m in outbox), return_exceptions=True)
        for message, result in zip(outbox, results, strict=True):
            if isinstance(result, BaseException):
                workflow.logger.error("escalation email to %s failed: %s", message.to, result)


def _require_active(state: WalkControl) -> None:
    if state.status != "active":
        raise reject(REJECT_CONFLICT, f"This walk session is {state.status}; only active sessions change")


def _check_notes(state: WalkControl, inp: NotesInput) -> None:
    _require_active(state)
    if state.note_count + len(inp.notes) > MAX_NOTES_PER_WALK:
        raise reject(REJECT_RULE, f"A walk keeps at most {MAX_NOTES_PER_WALK} notes; this one has "
                                  f"{state.note_count}, so at most {MAX_NOTES_PER_WALK - state.note_count} more")


def _check_step(state: WalkControl, inp: StepInput) -> None:
    _require_active(state)
    if state.session_kind == "adhoc":
        raise reject(REJECT_RULE, "This is an adhoc session: it has no decision tree to step through; "
                                  "add notes, resolve or escalate it instead")
    pending = state.pending_node
    if pending is None or pending.kind != "question":
        hint = "; it reached a resolution: resolve or escalate it" if pending else ""
        raise reject(REJECT_CONFLICT, f"No question is pending on this walk{hint}")
    if inp.node_id != pending.id:
        raise reject(REJECT_CONFLICT, f"Node '{inp.node_id}' is not the pending node; answer node '{pending.id}'")
    if state.session_kind == "flow" and pending.option_matching(inp.answer) is None:
        raise reject(REJECT_RULE, f"answer must be one of: {', '.join(pending.options)}")


def _details(state: WalkControl) -> str:
    """The walk as the Web UI lists it."""
    steps = counted(state.depth, "step")
    if state.status != "active":
        return f"{state.status} after {steps}"
    pending = state.pending_node
    waiting = (f"waiting on '{pending.question}'" if pending and pending.kind == "question"
               else "at a resolution" if pending else "no node served yet")
    return f"{state.status} · {state.session_kind} walk · {waiting} · {steps}, {counted(state.note_count, 'note')}"
