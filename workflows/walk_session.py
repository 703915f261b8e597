"""WalkSessionWorkflow: one durable workflow per L1 walk session (`walk-{session_id}`).

Updates drive it (open, step, add_notes, resolve, escalate); validators enforce the state machine,
every accepted change is written to Postgres before the update returns, and an idle timer abandons
a walk nobody touches for `idle_timeout_s`.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.contracts.llm import (
        LLM_NEXT_WALK_NODE,
        LLM_RETRY_POLICY,
        LLM_SCHEDULE_TO_CLOSE,
        LLM_START_TO_CLOSE,
        LlmCallContext,
        NextWalkNodeInput,
        WalkedStep,
        WalkNodeSuggestion,
    )
    from workflows.contracts.notify import (
        NOTIFY_RETRY_POLICY,
        NOTIFY_SEND_EMAIL,
        NOTIFY_START_TO_CLOSE,
        EmailMessage,
    )
    from workflows.contracts.search_attributes import SA_STATUS
    from workflows.contracts.walk import (
        ACT_ESCALATE_WALK,
        ACT_LOAD_WALK,
        ACT_RESOLVE_WALK,
        ACT_SAVE_WALK,
        PERSIST_RETRY,
        PERSIST_TIMEOUT,
        QUERY_STATE,
        REJECT_CONFLICT,
        REJECT_NOT_FOUND,
        REJECT_RULE,
        REJECT_UPSTREAM,
        UPDATE_ESCALATE,
        UPDATE_NOTES,
        UPDATE_OPEN,
        UPDATE_RESOLVE,
        UPDATE_STEP,
        EscalateInput,
        EscalateResult,
        EscalateWalkResult,
        FlowOption,
        FlowTree,
        LoadWalkInput,
        LoadWalkResult,
        NotesInput,
        OpenInput,
        OpenResult,
        ResolveInput,
        ResolveResult,
        ResolveWalkResult,
        SaveWalkInput,
        StepInput,
        StepResult,
        WalkInput,
        WalkNode,
        WalkState,
    )


def _reject(kind: str, message: str) -> ApplicationError:
    # Non-retryable with a type the API maps to a status (see services/walks.py).
    return ApplicationError(message, type=kind, non_retryable=True)


def _flow_option(tree: FlowTree | None, node_id: str, answer: str) -> FlowOption | None:
    node = tree.nodes.get(node_id) if tree else None
    if node is None:
        return None
    wanted = answer.strip().casefold()
    return next((o for o in node.options if o.label.strip().casefold() == wanted), None)


@workflow.defn
class WalkSessionWorkflow:
    """The state machine of one walk: active -> resolved | escalated | abandoned."""

    def __init__(self) -> None:
        self._state: WalkState | None = None
        self._tree: FlowTree | None = None  # the authored flow, snapshotted when the walk loaded
        self._missing = False
        # Handlers await activities; the lock makes them apply one at a time, in arrival order.
        self._lock = asyncio.Lock()
        self._outbox: list[EmailMessage] = []
        self._max_depth = 12

    @workflow.run
    async def run(self, inp: WalkInput) -> str:
        """Load the session, serve updates until it ends or idles out, then send pending emails."""
        self._max_depth = inp.max_depth
        if inp.state is None:
            loaded = await workflow.execute_local_activity(
                ACT_LOAD_WALK, LoadWalkInput(session_id=inp.session_id), result_type=LoadWalkResult,
                start_to_close_timeout=PERSIST_TIMEOUT, retry_policy=PERSIST_RETRY,
            )
            if loaded.state is None:
                self._missing = True
                await workflow.wait_condition(workflow.all_handlers_finished)
                return "missing"
            self._state, self._tree = loaded.state, loaded.flow_tree
        else:
            self._state, self._tree = inp.state, inp.flow_tree
        idle = timedelta(seconds=inp.idle_timeout_s)
        while self._current.status == "active":
            # One timer per idle period, not one per step: steps only move last_step_at, and a timer
            # that fires early just sleeps for the rest (cancelling and restarting a timer on every
            # step would double the history and the server's work per step).
            remaining = idle - (workflow.now() - self._current.last_step_at)
            if remaining <= timedelta(0):
                await self._abandon_if_idle(idle)
                continue
            try:
                await workflow.wait_condition(
                    lambda: self._current.status != "active" or workflow.info().is_continue_as_new_suggested(),
                    timeout=remaining,
                )
            except TimeoutError:
                continue
            if self._current.status == "active":  # continue-as-new was suggested
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(inp.model_copy(update={"state": self._state, "flow_tree": self._tree}))
        await self._send_outbox()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._current.status

    @workflow.query(name=QUERY_STATE)
    def state(self) -> WalkState | None:
        """The live state (None until loaded)."""
        return self._state

    # --- updates ----------------------------------------------------------------------------

    @workflow.update(name=UPDATE_OPEN)
    async def open(self, _: OpenInput) -> OpenResult:
        """The pending node; the first node of a flow or AI-built walk is created here, once."""
        async with self._lock:
            state = await self._ready()
            self._require_active(state)
            if state.pending_node is None and not state.walked_path and state.session_kind != "adhoc":
                new = state.model_copy(deep=True)
                new.pending_node = await self._first_node(new)
                await self._save(new)
                state = new
            return OpenResult(state=state, pending_node=state.pending_node)

    @open.validator
    def _validate_open(self, _: OpenInput) -> None:
        if self._state is not None:
            self._require_active(self._state)

    @workflow.update(name=UPDATE_STEP)
    async def step(self, inp: StepInput) -> StepResult:
        """Record the answer to the pending question and serve the next node."""
        async with self._lock:
            state = await self._ready()
            node = self._check_step(state, inp)
            new = state.model_copy(deep=True)
            new.walked_path.append(WalkedStep(node_id=node.id, question=node.question or inp.question,
                                              answer=inp.answer))
            new.depth = len(new.walked_path)
            new.pending_node = await self._next_node(new, node, inp.answer)
            new.last_step_at = workflow.now()
            await self._save(new)
            served = new.pending_node
            is_question = served.kind == "question"
            return StepResult(state=new, next_node=served if is_question else None,
                              resolution=None if is_question else served)

    @step.validator
    def _validate_step(self, inp: StepInput) -> None:
        if self._state is not None:
            self._check_step(self._state, inp)

    @workflow.update(name=UPDATE_NOTES)
    async def add_notes(self, inp: NotesInput) -> WalkState:
        """Append the tech's notes."""
        async with self._lock:
            state = await self._ready()
            self._require_active(state)
            new = state.model_copy(deep=True)
            new.walk_notes.extend(inp.notes)
            new.last_step_at = workflow.now()
            await self._save(new)
            return new

    @add_notes.validator
    def _validate_notes(self, inp: NotesInput) -> None:
        if self._state is not None:
            self._require_active(self._state)

    @workflow.update(name=UPDATE_RESOLVE)
    async def resolve(self, inp: ResolveInput) -> ResolveResult:
        """Close the walk as resolved (a helpful AI-built walk becomes a flow proposal)."""
        async with self._lock:
            state = await self._ready()
            self._require_active(state)
            new = state.model_copy(deep=True)
            new.status, new.helpful, new.resolution_notes = "resolved", inp.helpful, inp.resolution_notes
            new.resolved_at = workflow.now()
            result = await workflow.execute_local_activity(
                ACT_RESOLVE_WALK, SaveWalkInput(state=new), result_type=ResolveWalkResult,
                start_to_close_timeout=PERSIST_TIMEOUT, retry_policy=PERSIST_RETRY,
            )
            self._commit(new)
            return ResolveResult(state=new, proposal_id=result.proposal_id)

    @resolve.validator
    def _validate_resolve(self, inp: ResolveInput) -> None:
        if self._state is not None:
            self._require_active(self._state)

    @workflow.update(name=UPDATE_ESCALATE)
    async def escalate(self, inp: EscalateInput) -> EscalateResult:
        """Hand the walk to engineers and queue an email to each live recipient."""
        async with self._lock:
            state = await self._ready()
            self._require_active(state)
            new = state.model_copy(deep=True)
            new.status = "escalated"
            new.escalation_reason_category, new.escalation_reason = inp.reason_category, inp.reason
            new.escalated_at = workflow.now()
            found = await workflow.execute_local_activity(
                ACT_ESCALATE_WALK, SaveWalkInput(state=new), result_type=EscalateWalkResult,
                start_to_close_timeout=PERSIST_TIMEOUT, retry_policy=PERSIST_RETRY,
            )
            self._commit(new)
            emails = [r.email for r in found.recipients]
            if not emails:
                warning = ("Escalated, but nobody was notified: the category has no live escalation "
                           "recipients and neither does the account (set default_escalation_recipient_ids)")
                workflow.logger.warning("walk %s: %s", new.id, warning)
                return EscalateResult(state=new, warning=warning)
            self._outbox.extend(_escalation_email(new, email) for email in emails)
            return EscalateResult(state=new, notified=emails)

    @escalate.validator
    def _validate_escalate(self, inp: EscalateInput) -> None:
        if self._state is not None:
            self._require_active(self._state)

    # --- helpers ----------------------------------------------------------------------------

    @property
    def _current(self) -> WalkState:
        assert self._state is not None
        return self._state

    async def _ready(self) -> WalkState:
        # An update can arrive with the start, before the row is loaded.
        await workflow.wait_condition(lambda: self._state is not None or self._missing)
        if self._state is None:
            raise _reject(REJECT_NOT_FOUND, "Walk session not found")
        return self._state

    @staticmethod
    def _require_active(state: WalkState) -> None:
        if state.status != "active":
            raise _reject(REJECT_CONFLICT, f"This walk session is {state.status}; only active sessions change")

    def _check_step(self, state: WalkState, inp: StepInput) -> WalkNode:
        self._require_active(state)
        if state.session_kind == "adhoc":
            raise _reject(REJECT_RULE, "This is an adhoc session: it has no decision tree to step through; "
                                       "add notes, resolve or escalate it instead")
        pending = state.pending_node
        if pending is None or pending.kind != "question":
            hint = "; it reached a resolution: resolve or escalate it" if pending else ""
            raise _reject(REJECT_CONFLICT, f"No question is pending on this walk{hint}")
        if inp.node_id != pending.id:
            raise _reject(REJECT_CONFLICT,
                          f"Node '{inp.node_id}' is not the pending node; answer node '{pending.id}'")
        if state.session_kind == "flow" and _flow_option(self._tree, pending.id, inp.answer) is None:
            raise _reject(REJECT_RULE, f"answer must be one of: {', '.join(pending.options)}")
        return pending

    async def _first_node(self, state: WalkState) -> WalkNode:
        if state.session_kind == "ai_build":
            return await self._ask_model(state)
        tree = self._tree
        if tree is None or tree.root not in tree.nodes:
            raise _reject(REJECT_CONFLICT, "This session's flow no longer exists; escalate or walk it ad hoc")
        root = tree.nodes[tree.root]
        return WalkNode(id=tree.root, kind="question", question=root.question,
                        options=[o.label for o in root.options])

    async def _next_node(self, state: WalkState, node: WalkNode, answer: str) -> WalkNode:
        if state.session_kind == "ai_build":
            return await self._ask_model(state)
        option = _flow_option(self._tree, node.id, answer)
        assert option is not None and self._tree is not None  # checked by _check_step
        target = self._tree.nodes.get(option.next) if option.next else None
        if option.next and target is not None:
            return WalkNode(id=option.next, kind="question", question=target.question,
                            options=[o.label for o in target.options])
        text = option.resolution or "This flow ends here without a fix: escalate it to an engineer."
        return WalkNode(id=str(workflow.uuid4()), kind="resolution", resolution=text,
                        escalate=option.resolution is None)

    async def _ask_model(self, state: WalkState) -> WalkNode:
        force = state.depth >= self._max_depth
        request = NextWalkNodeInput(
            context=LlmCallContext(account_id=state.account_id, subject_id=state.id),
            problem=state.problem_text, category=state.category or "general",
            walked_path=state.walked_path, force_conclusion=force,
        )
        try:
            suggestion = await workflow.execute_activity(
                LLM_NEXT_WALK_NODE, request, result_type=WalkNodeSuggestion,
                start_to_close_timeout=LLM_START_TO_CLOSE, schedule_to_close_timeout=LLM_SCHEDULE_TO_CLOSE,
                retry_policy=LLM_RETRY_POLICY,
            )
        except ActivityError as exc:
            raise _reject(REJECT_UPSTREAM, "The AI could not produce the next node; try again") from exc
        # The server, not the model, names nodes: the step protocol keys on these ids.
        node_id = str(workflow.uuid4())
        if suggestion.kind == "question" and suggestion.question and not force:
            return WalkNode(id=node_id, kind="question", question=suggestion.question, options=suggestion.options)
        if suggestion.kind == "resolution" and suggestion.resolution:
            return WalkNode(id=node_id, kind="resolution", resolution=suggestion.resolution,
                            escalate=suggestion.escalate)
        reason = (f"The walk reached its limit of {self._max_depth} questions without a fix" if force
                  else "The AI gave no usable next question")
        return WalkNode(id=node_id, kind="resolution", escalate=True,
                        resolution=f"{reason}: escalate it to an engineer with the walked path.")

    async def _save(self, new: WalkState) -> None:
        await workflow.execute_local_activity(
            ACT_SAVE_WALK, SaveWalkInput(state=new),
            start_to_close_timeout=PERSIST_TIMEOUT, retry_policy=PERSIST_RETRY,
        )
        self._commit(new)

    def _commit(self, new: WalkState) -> None:
        if self._state is None or self._state.status != new.status:
            workflow.upsert_search_attributes([SA_STATUS.value_set(new.status)])
        self._state = new

    async def _abandon_if_idle(self, idle: timedelta) -> None:
        async with self._lock:
            state = self._current
            if state.status != "active" or workflow.now() - state.last_step_at < idle:
                return  # a step slipped in while the timer fired
            new = state.model_copy(deep=True)
            new.status, new.abandoned_at = "abandoned", workflow.now()
            await self._save(new)
            workflow.logger.info("walk %s abandoned after being idle", new.id)

    async def _send_outbox(self) -> None:
        outbox, self._outbox = self._outbox, []
        results = await asyncio.gather(*(self._send(m) for m in outbox), return_exceptions=True)
        for message, result in zip(outbox, results, strict=True):
            if isinstance(result, BaseException):
                workflow.logger.error("escalation email to %s failed: %s", message.to, result)

    async def _send(self, message: EmailMessage) -> None:
        await workflow.execute_activity(
            NOTIFY_SEND_EMAIL, message, start_to_close_timeout=NOTIFY_START_TO_CLOSE,
            retry_policy=NOTIFY_RETRY_POLICY,
        )


def _escalation_email(state: WalkState, to: str) -> EmailMessage:
    path = "\n".join(f"  {i}. {s.question} -> {s.answer}" for i, s in enumerate(state.walked_path, 1))
    notes = "\n".join(f"  - {n.text}" for n in state.walk_notes)
    body = (
        f"An L1 walk was escalated.\n\nProblem: {state.problem_text}\nCategory: {state.category or '-'}\n"
        f"Reason: {state.escalation_reason_category}: {state.escalation_reason or '-'}\n"
        f"Ticket: {state.ticket_kind} {state.ticket_id}\nSession: {state.id}\n\n"
        f"Walked path:\n{path or '  (none)'}\n\nNotes:\n{notes or '  (none)'}\n"
    )
    subject = f"L1 escalation [{state.category or 'uncategorised'}]: {state.problem_text[:80]}"
    return EmailMessage(to=[to], subject=subject, body=body)
