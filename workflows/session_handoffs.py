"""The session workflow's handoffs: park or escalate (`hand_off`), and the claim that picks one up (`claim_handoff`).

A mixin of `TroubleshootingSessionWorkflow`. The session's workflow owns the claim: it made the handoff row, it
owns the session row, and a claim makes the session active again, so deciding the claim here is one update on
one workflow with one local activity writing both rows in one transaction. The state keeps the latest handoff,
so a loser is refused by the validator (nothing in history) once a claim committed; claims accepted meanwhile
queue on the lock and are answered from the row's claimer. `handoff-{id}` hears of the claim by a signal sent in
the background (it stops re-announcing); the claim's emails go the same way.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, FailureError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from workflows.contracts.ai_session import CloseInput, SessionControl, SessionInput
    from workflows.contracts.common import BACKGROUND, REJECT_CONFLICT, REJECT_RULE, reject
    from workflows.contracts.handoff import (
        CLAIM_SESSION_HANDOFF,
        CREATE_HANDOFF,
        HANDOFF_WORKFLOW,
        RESUME_SESSION_ROW,
        SIGNAL_HANDOFF_CLAIMED,
        ClaimHandoffCommand,
        ClaimResult,
        ClaimSessionHandoff,
        CreateHandoffInput,
        HandoffClaimed,
        HandoffControl,
        HandoffCreated,
        HandoffInput,
        HandoffRequest,
        LatestHandoff,
        ResumeInput,
        ResumeResult,
        ResumeSessionRow,
        claimed_conflict,
        handoff_workflow_id,
        latest_handoff,
        package_handoff_id,
        package_notes,
    )
    from workflows.contracts.notify import EMAIL_NOTIFICATIONS, NotificationEmail, NotificationEmails
    from workflows.contracts.search_attributes import SA_ACCOUNT_ID, SA_STATUS
    from workflows.skeleton import EntityWorkflow


class SessionHandoffs(EntityWorkflow[SessionControl]):
    """`hand_off`, `claim_handoff` and the older `resume`, with the background work a claim leaves behind."""

    _input: SessionInput

    def __init__(self) -> None:
        super().__init__()
        self._background: list[asyncio.Task[None]] = []  # a claim's signal to its handoff's workflow, its emails

    @workflow.update
    async def hand_off(self, inp: HandoffRequest) -> HandoffCreated:
        """Park (paused, private) or escalate (escalated, the team told) the session; its handoff gets a workflow."""

        async def change(state: SessionControl) -> tuple[SessionControl, HandoffControl]:
            created = await CREATE_HANDOFF(CreateHandoffInput(session_id=state.id, request=inp, at=workflow.now()))
            await _start_handoff(state, inp, created)
            status = "escalated" if inp.intent == "escalate" else "paused"
            return state.model_copy(update={"status": status, "last_activity_at": workflow.now(),
                                            "handoff": latest_handoff(created)}), created

        created = await self.transition(require_active, change)
        return HandoffCreated(handoff=created, session_status=self.current.status)

    @hand_off.validator
    def _validate_hand_off(self, inp: HandoffRequest) -> None:
        if self._state is not None:
            require_active(self._state)

    @workflow.update
    async def claim_handoff(self, inp: ClaimHandoffCommand) -> ClaimResult:
        """Pick the handoff up: the claim and the session made active in one transaction; the first claimer wins,
        the same claimer again is answered as before, anyone else is refused naming the claimer the row names."""

        async def change(state: SessionControl) -> tuple[SessionControl, ClaimResult]:
            known = _known(state, inp)
            if known is not None and known.claimed_at is not None:  # theirs already (the check refused the rest)
                return state, _result(known, state.status, changed=False)
            done = await CLAIM_SESSION_HANDOFF(ClaimSessionHandoff(
                session_id=state.id, handoff_id=inp.handoff_id, user_id=inp.user_id, user_name=inp.user_name,
                at=workflow.now()), summary="record the claim and make the session active again")
            row = done.handoff
            self._after_claim(row, done.emails)
            update: dict[str, object] = {"status": done.session_status}
            if state.handoff is None or state.handoff.id == row.id:
                update["handoff"] = row
            if done.changed:
                update["last_activity_at"] = workflow.now()
            return state.model_copy(update=update), _result(row, done.session_status, changed=done.changed)

        result = await self.transition(lambda s: _check_claim(s, inp, workflow.now()), change)
        if result.claimed_by_id != inp.user_id:  # the row names someone else (adopted into the state above)
            raise claimed_conflict(result.claimed_by_id, result.claimed_by_name, result.claimed_at, workflow.now())
        return result

    @claim_handoff.validator
    def _validate_claim_handoff(self, inp: ClaimHandoffCommand) -> None:
        if self._state is not None:
            _check_claim(self._state, inp, workflow.now())

    @workflow.update
    async def resume(self, inp: ResumeInput) -> ResumeResult:
        """A claimed handoff makes the session active again (idempotent; a resolved session stays resolved). Sent
        by `HandoffWorkflow.claim` runs from before `claim_handoff`."""

        async def change(state: SessionControl) -> tuple[SessionControl, ResumeResult]:
            if state.status not in ("paused", "escalated"):
                return state, ResumeResult(session_status=state.status, resumed=False)
            result = await RESUME_SESSION_ROW(ResumeSessionRow(session_id=state.id, handoff_id=inp.handoff_id,
                                                               at=workflow.now()))
            return state.model_copy(update={"status": result.session_status,
                                            "last_activity_at": workflow.now()}), result

        return await self.transition(lambda _: None, change)

    # --- helpers ----------------------------------------------------------------------------

    async def _package_handoff(self, state: SessionControl, inp: CloseInput, version: int) -> LatestHandoff | None:
        """Escalating by posting the escalation package is escalating: the handoff `hand_off` would make (the
        queue, its event, the team told, a claim to pick it up), in the same update as the post."""
        if (inp.kind != "escalation_package" or state.status != "escalated"
                or not workflow.patched("escalation-package-hands-off")):
            return None
        request = HandoffRequest(
            handoff_id=package_handoff_id(state.id, version), intent="escalate",
            engineer_notes=package_notes(inp.markdown), by_user_id=inp.by_user_id,
            idle_timeout_s=self._input.idle_timeout_s, assessment_timeout_s=inp.assessment_timeout_s)
        created = await CREATE_HANDOFF(CreateHandoffInput(session_id=state.id, request=request, at=workflow.now(),
                                                          package_posted=True))
        await _start_handoff(state, request, created)
        return latest_handoff(created)

    def _after_claim(self, row: LatestHandoff, emails: list[NotificationEmail]) -> None:
        """Tell `handoff-{id}` and email whoever handed it off, without holding up the claim's answer."""
        if row.claimed_by_id is not None and row.claimed_at is not None:
            claimed = HandoffClaimed(claimed_by_id=row.claimed_by_id, claimed_by_name=row.claimed_by_name or "",
                                     claimed_at=row.claimed_at)
            self._background.append(asyncio.create_task(self._tell_handoff(row, claimed)))
        if emails:
            self._background.append(asyncio.create_task(self._email(emails)))

    async def _tell_handoff(self, row: LatestHandoff, claimed: HandoffClaimed) -> None:
        try:
            await workflow.get_external_workflow_handle(handoff_workflow_id(row.id)).signal(
                SIGNAL_HANDOFF_CLAIMED, claimed)
        except FailureError as exc:  # not running: a run it starts later loads the claim from the row
            workflow.logger.info("handoff %s: its workflow not told of the claim: %s", row.id, exc)

    async def _email(self, emails: list[NotificationEmail]) -> None:
        # Best-effort: the in-app notification is the record, and a mail server that is down fails no claim.
        try:
            await EMAIL_NOTIFICATIONS(NotificationEmails(emails=emails), summary=f"email {len(emails)} people")
        except ActivityError as exc:
            workflow.logger.warning("session %s: claim emails failed: %s", self._input.session_id, exc.cause or exc)

    async def _finish(self) -> None:
        """Let in-flight handlers and the background work they left complete before the run returns or continues
        as new."""
        while True:
            await super()._finish()
            if not self._background:
                return
            tasks, self._background = self._background, []
            await asyncio.gather(*tasks)


def require_active(state: SessionControl) -> None:
    """Only an active session changes."""
    if state.status != "active":
        raise reject(REJECT_CONFLICT, f"This AI session is {state.status}; only active sessions change")


def _known(state: SessionControl, inp: ClaimHandoffCommand) -> LatestHandoff | None:
    """The handoff as the state knows it (None: not this session's latest, or not loaded: the row decides)."""
    return state.handoff if state.handoff is not None and state.handoff.id == inp.handoff_id else None


def _check_claim(state: SessionControl, inp: ClaimHandoffCommand, now: datetime) -> None:
    known = _known(state, inp)
    if known is None:
        return
    if known.claimed_at is not None and known.claimed_by_id != inp.user_id:
        raise claimed_conflict(known.claimed_by_id, known.claimed_by_name, known.claimed_at, now)
    if known.claimed_at is None and known.intent == "escalate" and known.created_by_user_id == inp.user_id:
        raise reject(REJECT_RULE, "You escalated this session; another engineer picks it up")
    if known.claimed_at is None and state.status == "resolved":
        raise reject(REJECT_CONFLICT, "This session was resolved meanwhile; there is nothing to pick up")


def _result(row: LatestHandoff, session_status: str, *, changed: bool) -> ClaimResult:
    assert row.claimed_by_id is not None and row.claimed_at is not None
    return ClaimResult(claimed_by_id=row.claimed_by_id, claimed_by_name=row.claimed_by_name or "",
                       claimed_at=row.claimed_at, session_status=session_status, changed=changed)


async def _start_handoff(state: SessionControl, inp: HandoffRequest, created: HandoffControl) -> None:
    """Start the handoff's workflow, abandoned on close: it outlives this run (which may end at once)."""
    await workflow.start_child_workflow(
        HANDOFF_WORKFLOW, HandoffInput(handoff_id=created.id, account_id=state.account_id,
                                       idle_timeout_s=inp.idle_timeout_s,
                                       assessment_timeout_s=inp.assessment_timeout_s, state=created),
        id=handoff_workflow_id(created.id), parent_close_policy=ParentClosePolicy.ABANDON,
        # Announcements, re-announcements and the assessment: nothing a request waits on (a claim is the session's).
        priority=BACKGROUND,
        search_attributes=TypedSearchAttributes([SearchAttributePair(SA_ACCOUNT_ID, str(state.account_id)),
                                                 SearchAttributePair(SA_STATUS, "unclaimed")]),
        static_summary=f"{inp.intent.capitalize()} of AI session {state.id} · {state.problem_summary[:100]}",
    )
