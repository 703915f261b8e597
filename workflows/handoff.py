"""HandoffWorkflow: one durable workflow per park or escalation (`handoff-{id}`).

The session workflow starts it when it records the handoff. It then asks the model for an assessment in the
background (a slow or failing model never holds anything up), tells the team of an escalation, re-announces
an unclaimed one on a durable timer (raising its priority each time) until the session's workflow, which owns the
claim, signals that it was claimed. Its own `claim` update (the claim before the session's workflow decided it)
stays for runs in flight: the first senior wins, the same senior again is a no-op, anyone else is refused with who
won and when, and the session is made active again through the session's own workflow.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Literal

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows.contracts.common import REJECT_CONFLICT, REJECT_RULE, reject
    from workflows.contracts.handoff import (
        CLAIM_AND_RESUME,
        CLAIM_HANDOFF,
        HANDOFF_NOTICE,
        LOAD_HANDOFF,
        QUERY_HANDOFF_STATE,
        RESUME_SESSION,
        SIGNAL_HANDOFF_CLAIMED,
        STORE_ASSESSMENT,
        AssessmentRequest,
        ClaimAndResumeInput,
        ClaimHandoffInput,
        ClaimInput,
        ClaimResult,
        HandoffById,
        HandoffClaimed,
        HandoffControl,
        HandoffInput,
        HandoffNoticeInput,
        ResumeSessionInput,
        StoreAssessmentInput,
        assessment_activity,
        claimed_conflict,
    )
    from workflows.contracts.llm import LlmCallContext
    from workflows.contracts.notify import EMAIL_NOTIFICATIONS, NotificationEmail, NotificationEmails
    from workflows.contracts.search_attributes import SA_STATUS
    from workflows.skeleton import Deadline, EntityWorkflow, history_is_long

# Fields the notice activity decides; the rest of the state stays the workflow's.
NOTICE_FIELDS = ("priority", "team_notified", "next_renotify_at", "renotify_count", "session_closed")


@workflow.defn
class HandoffWorkflow(EntityWorkflow[HandoffControl]):
    """unclaimed -> claimed, with an AI assessment on the side and re-announcements while unclaimed."""

    _entity = "handoff"

    @workflow.init
    def __init__(self, inp: HandoffInput) -> None:
        super().__init__()
        self._input = inp
        self._idle = timedelta(seconds=inp.idle_timeout_s)
        self._deadline: Deadline | None = None
        self._background: list[asyncio.Task[None]] = []
        self._claiming: tuple[uuid.UUID, str, datetime] | None = None  # who is being recorded as the claimer
        self._quiet_since = workflow.now()

    @workflow.run
    async def run(self, inp: HandoffInput) -> str:
        """Load (or be given) the handoff, assess it, announce it, and serve claims until nothing is due."""
        if inp.state is not None:
            self._commit(inp.state)
        else:
            self._set_loaded((await LOAD_HANDOFF(HandoffById(handoff_id=inp.handoff_id))).control)
        if not await self._exists():
            await self._finish()
            return "missing"
        if self.current.assessment_status == "pending":
            self._background.append(asyncio.create_task(self._assess()))
        state = self.current
        if state.intent == "escalate" and not state.team_notified and state.claimed_at is None:
            await self._notice("escalated", 0)
        at, summary = self._due(self.current)
        deadline = self._deadline = Deadline(at, summary)
        while True:
            due = await deadline.wait(history_is_long)
            if not due:
                await self._drain()
                await self._finish()
                workflow.continue_as_new(inp.model_copy(update={"state": self.current}))
            if self._renotify_due():
                await self._notice("unclaimed", self.current.renotify_count + 1)
                continue
            await self._finish()  # a claim may be in flight
            if not self._renotify_pending(self.current) and workflow.now() >= self._quiet_since + self._idle:
                break  # nothing scheduled: the next claim starts a new run from Postgres
        await self._drain()
        await self._finish()
        return "claimed" if self.current.claimed_at else "unclaimed"

    @workflow.query(name=QUERY_HANDOFF_STATE)
    def state(self) -> HandoffControl | None:
        """The live control state (None until loaded)."""
        return self._state

    @workflow.update
    async def claim(self, inp: ClaimInput) -> ClaimResult:
        """Pick the handoff up: recorded once, the session made active again, whoever handed it off told."""
        # The first claim to start reserves the handoff before it awaits anything, so the others are refused at
        # once (by the validator, or here when they were accepted in the same task) instead of queueing on the
        # lock behind the winner's writes.
        reserved = self._claiming
        if reserved is not None and reserved[0] != inp.user_id:
            raise claimed_conflict(reserved[0], reserved[1], reserved[2], workflow.now())
        if reserved is None and (self._state is None or self._state.claimed_at is None):
            self._claiming = reserved = (inp.user_id, inp.user_name, workflow.now())

        async def change(state: HandoffControl) -> tuple[HandoffControl, ClaimResult]:
            if state.claimed_by_id == inp.user_id and state.claimed_at is not None:  # a double click, a retry
                return state, ClaimResult(claimed_by_id=inp.user_id, claimed_by_name=state.claimed_by_name or "",
                                          claimed_at=state.claimed_at, changed=False)
            at = reserved[2] if reserved is not None else workflow.now()
            claim = ClaimHandoffInput(handoff_id=state.id, user_id=inp.user_id, user_name=inp.user_name, at=at)
            resume = ResumeSessionInput(account_id=state.account_id, session_id=state.session_id,
                                        handoff_id=state.id, by_user_id=inp.user_id)
            if workflow.patched("claim-and-resume-in-one-activity"):
                done = await CLAIM_AND_RESUME(ClaimAndResumeInput(claim=claim, resume=resume),
                                              summary="record the claim and make the session active again")
                self._send(done.recorded.emails)
                claimed = done.recorded.control
                if done.resumed is not None:
                    session_status: str | None = done.resumed.session_status
                elif done.resume_refused is not None:
                    self._not_resumed(state, done.resume_refused)
                    session_status = None
                else:
                    session_status = await self._resume(state, resume)
            else:  # runs that claimed before the one activity existed
                recorded = await CLAIM_HANDOFF(claim)
                self._send(recorded.emails)
                claimed = recorded.control
                session_status = await self._resume(state, resume)
            assert claimed.claimed_at is not None
            return state.model_copy(update={"claimed_by_id": inp.user_id, "claimed_by_name": inp.user_name,
                                            "claimed_at": claimed.claimed_at, "next_renotify_at": None}), ClaimResult(
                claimed_by_id=inp.user_id, claimed_by_name=inp.user_name, claimed_at=claimed.claimed_at,
                session_status=session_status, changed=True)

        try:
            return await self.transition(lambda s: _check_claim(s, inp, workflow.now()), change)
        finally:
            if self._claiming is reserved and (self._state is None or self._state.claimed_at is None):
                self._claiming = None  # refused (resolved meanwhile, claimed before this run): free the reservation

    @claim.validator
    def _validate_claim(self, inp: ClaimInput) -> None:
        reserved = self._claiming
        if reserved is not None and reserved[0] != inp.user_id:
            raise claimed_conflict(reserved[0], reserved[1], reserved[2], workflow.now())
        if self._state is not None:
            _check_claim(self._state, inp, workflow.now())

    @workflow.signal(name=SIGNAL_HANDOFF_CLAIMED)
    async def claimed(self, inp: HandoffClaimed) -> None:
        """The session's workflow recorded the claim (it owns it): stop re-announcing, show who picked it up."""
        if not await self._exists():
            return

        async def change(state: HandoffControl) -> tuple[HandoffControl, None]:
            if state.claimed_at is not None:
                return state, None
            return state.model_copy(update={"claimed_by_id": inp.claimed_by_id, "claimed_by_name": inp.claimed_by_name,
                                            "claimed_at": inp.claimed_at, "next_renotify_at": None}), None

        await self.transition(lambda _: None, change)

    # --- helpers ----------------------------------------------------------------------------

    async def _resume(self, state: HandoffControl, resume: ResumeSessionInput) -> str | None:
        """`resume` on the session's workflow (retried by Temporal); None when it said no: the claim stands."""
        try:
            resumed = await RESUME_SESSION(resume, summary="make the session active again")
        except ActivityError as exc:
            self._not_resumed(state, exc.cause or exc)
            return None
        return resumed.session_status

    @staticmethod
    def _not_resumed(state: HandoffControl, why: object) -> None:
        """The session's workflow said no to the resume: the claim stands, and the log says why."""
        workflow.logger.warning("handoff %s: session %s not resumed: %s", state.id, state.session_id, why)

    async def _assess(self) -> None:
        state = self.current
        request = AssessmentRequest(context=LlmCallContext(account_id=str(state.account_id), subject_id=str(state.id)),
                                    handoff_id=state.id)
        try:
            found = await assessment_activity(timedelta(seconds=self._input.assessment_timeout_s))(
                request, summary="AI assessment for the senior who picks it up")
            stored = StoreAssessmentInput(handoff_id=state.id, assessment=found)
        except ActivityError as exc:  # gave up (slow, failing, refused): the handoff goes on without it
            workflow.logger.warning("handoff %s: no AI assessment: %s", state.id, exc.cause or exc)
            stored = StoreAssessmentInput(handoff_id=state.id, error=str(exc.cause or exc)[:2000])

        async def change(current: HandoffControl) -> tuple[HandoffControl, None]:
            saved = await STORE_ASSESSMENT(stored)
            return current.model_copy(update={"assessment_status": saved.assessment_status}), None

        await self.transition(lambda _: None, change)

    async def _notice(self, kind: Literal["escalated", "unclaimed"], round_: int) -> None:

        async def change(state: HandoffControl) -> tuple[HandoffControl, None]:
            sent = await HANDOFF_NOTICE(HandoffNoticeInput(handoff_id=state.id, kind=kind,
                                                           round=round_, at=workflow.now()),
                                        summary=f"tell the team ({kind}, round {round_})")
            self._send(sent.emails)
            return state.model_copy(update={k: getattr(sent.control, k) for k in NOTICE_FIELDS}), None

        await self.transition(lambda _: None, change)

    def _send(self, emails: list[NotificationEmail]) -> None:
        if emails:
            self._background.append(asyncio.create_task(self._email(emails)))

    async def _email(self, emails: list[NotificationEmail]) -> None:
        # Best-effort: the in-app notifications are the record, and a mail server that is down fails no handoff.
        try:
            await EMAIL_NOTIFICATIONS(NotificationEmails(emails=emails), summary=f"email {len(emails)} people")
        except ActivityError as exc:
            workflow.logger.warning("handoff %s: emails failed: %s", self._input.handoff_id, exc.cause or exc)

    async def _drain(self) -> None:
        tasks, self._background = self._background, []
        await asyncio.gather(*tasks)

    @staticmethod
    def _renotify_pending(state: HandoffControl) -> bool:
        return state.next_renotify_at is not None and state.claimed_at is None and not state.session_closed

    def _renotify_due(self) -> bool:
        at = self.current.next_renotify_at
        return self._renotify_pending(self.current) and at is not None and workflow.now() >= at

    def _due(self, state: HandoffControl) -> tuple[datetime, str]:
        if self._renotify_pending(state) and state.next_renotify_at is not None:
            return state.next_renotify_at, f"re-announce the unclaimed escalation (now {state.priority})"
        return self._quiet_since + self._idle, "idle: unload the handoff (its state is in Postgres)"

    def _on_commit(self, old: HandoffControl | None, new: HandoffControl) -> None:
        self._quiet_since = workflow.now()
        if self._deadline is not None:
            at, self._deadline.summary = self._due(new)
            self._deadline.move_to(at)
        status = "claimed" if new.claimed_at else "unclaimed"
        if old is None or (old.claimed_at is None) != (new.claimed_at is None):
            workflow.upsert_search_attributes([SA_STATUS.value_set(status)])
        text = f"{new.intent} · {status} · {new.priority} · assessment {new.assessment_status}"
        if new.claimed_by_name:
            text += f" · picked up by {new.claimed_by_name}"
        workflow.set_current_details(f"{text} · {new.problem_summary[:80]}")


def _check_claim(state: HandoffControl, inp: ClaimInput, now: datetime) -> None:
    if state.claimed_at is not None and state.claimed_by_id != inp.user_id:
        raise claimed_conflict(state.claimed_by_id, state.claimed_by_name, state.claimed_at, now)
    if state.claimed_at is None and state.intent == "escalate" and state.created_by_user_id == inp.user_id:
        raise reject(REJECT_RULE, "You escalated this session; another engineer picks it up")
    if state.claimed_at is None and state.session_closed:
        raise reject(REJECT_CONFLICT, "This session was resolved meanwhile; there is nothing to pick up")
