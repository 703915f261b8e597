"""In-memory stand-ins for the handoff workflow's activities, registered by name."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Literal

from temporalio import activity
from temporalio.exceptions import ApplicationError

from workflows.contracts.handoff import (
    CLAIM_HANDOFF,
    HANDOFF_NOTICE,
    LLM_HANDOFF_ASSESSMENT_FOR,
    LOAD_HANDOFF,
    SESSIONS_CLAIM_AND_RESUME,
    SESSIONS_RESUME_FROM_HANDOFF,
    STORE_ASSESSMENT,
    AssessmentRequest,
    ClaimAndResumeInput,
    ClaimedAndResumed,
    ClaimHandoffInput,
    ClaimRecorded,
    HandoffById,
    HandoffControl,
    HandoffNoticeInput,
    HandoffNoticeResult,
    LoadHandoffResult,
    ResumeResult,
    ResumeSessionInput,
    StoreAssessmentInput,
)
from workflows.contracts.llm import HandoffAssessment
from workflows.contracts.notify import NOTIFY_EMAIL_NOTIFICATIONS, NotificationEmails

ESCALATOR = uuid.uuid4()


class FakeHandoffStore:
    """One handoff in memory; records every activity call by name; the model answers once `assess` is set."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.stored: list[StoreAssessmentInput] = []
        self.assess: asyncio.Event = asyncio.Event()  # the model answers once set
        self.model_fails = False
        self.claimed: ClaimHandoffInput | None = None
        # How the combined activity's one resume attempt goes: answered, refused (the claim stands), or to retry.
        self.first_resume: Literal["resumed", "refused", "to_retry"] = "resumed"

    def activities(self) -> list[Any]:
        return [self.load, self.claim, self.claim_and_resume, self.notice, self.store, self.assessment, self.resume,
                self.email]

    @activity.defn(name=LOAD_HANDOFF.name)
    async def load(self, inp: HandoffById) -> LoadHandoffResult:
        self.calls.append(LOAD_HANDOFF.name)
        return LoadHandoffResult()

    @activity.defn(name=CLAIM_HANDOFF.name)
    async def claim(self, inp: ClaimHandoffInput) -> ClaimRecorded:
        self.calls.append(CLAIM_HANDOFF.name)
        self.claimed = self.claimed or inp
        return ClaimRecorded(control=handoff_control().model_copy(update={
            "claimed_by_id": self.claimed.user_id, "claimed_by_name": self.claimed.user_name,
            "claimed_at": self.claimed.at}))

    @activity.defn(name=SESSIONS_CLAIM_AND_RESUME)
    async def claim_and_resume(self, inp: ClaimAndResumeInput) -> ClaimedAndResumed:
        self.calls.append(SESSIONS_CLAIM_AND_RESUME)
        self.claimed = self.claimed or inp.claim
        recorded = ClaimRecorded(control=handoff_control().model_copy(update={
            "claimed_by_id": self.claimed.user_id, "claimed_by_name": self.claimed.user_name,
            "claimed_at": self.claimed.at}))
        if self.first_resume == "refused":
            return ClaimedAndResumed(recorded=recorded, resume_refused="Conflict: This session is resolved")
        if self.first_resume == "to_retry":
            return ClaimedAndResumed(recorded=recorded)
        return ClaimedAndResumed(recorded=recorded, resumed=ResumeResult(session_status="active", resumed=True))

    @activity.defn(name=HANDOFF_NOTICE.name)
    async def notice(self, inp: HandoffNoticeInput) -> HandoffNoticeResult:
        self.calls.append(f"{HANDOFF_NOTICE.name}:{inp.kind}")
        return HandoffNoticeResult(control=handoff_control().model_copy(update={"team_notified": True}))

    @activity.defn(name=STORE_ASSESSMENT.name)
    async def store(self, inp: StoreAssessmentInput) -> HandoffControl:
        self.calls.append(STORE_ASSESSMENT.name)
        self.stored.append(inp)
        return handoff_control().model_copy(update={"assessment_status": "ready" if inp.assessment else "failed"})

    @activity.defn(name=LLM_HANDOFF_ASSESSMENT_FOR)
    async def assessment(self, inp: AssessmentRequest) -> HandoffAssessment:
        await self.assess.wait()
        if self.model_fails:
            raise ApplicationError("prompt is too long", type="LlmBadRequest", non_retryable=True)
        return HandoffAssessment(summary_prose="s", what_we_know=[], likely_cause="c", suggested_steps=["x"],
                                 confidence=0.5, provider="fake")

    @activity.defn(name=SESSIONS_RESUME_FROM_HANDOFF)
    async def resume(self, inp: ResumeSessionInput) -> ResumeResult:
        self.calls.append(SESSIONS_RESUME_FROM_HANDOFF)
        return ResumeResult(session_status="active", resumed=True)

    @activity.defn(name=NOTIFY_EMAIL_NOTIFICATIONS)
    async def email(self, batch: NotificationEmails) -> None:
        self.calls.append(NOTIFY_EMAIL_NOTIFICATIONS)


HANDOFF_ID = uuid.uuid4()


def handoff_control(intent: str = "escalate") -> HandoffControl:
    return HandoffControl(id=HANDOFF_ID, account_id=uuid.uuid4(), session_id=uuid.uuid4(), intent=intent,
                          created_by_user_id=ESCALATOR, problem_summary="VPN down")
