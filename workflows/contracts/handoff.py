"""Contracts of `HandoffWorkflow` (`handoff-{id}`), the session's `hand_off`/`resume` updates and their activities.

A handoff parks a session (private: waiting on the customer) or escalates it (the team is told at once and
the handoff waits in the live queue until a senior claims it). The workflow holds only `HandoffControl`; the
snapshot, notes and AI assessment are columns that activities read and write by id. Sandbox-safe.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Literal, get_args

from pydantic import BaseModel, Field
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

from workflows.contracts.common import (
    BACKGROUND,
    PERSIST_RETRY,
    PERSIST_TIMEOUT,
    REJECT_CONFLICT,
    ActivityRef,
    persistence,
)
from workflows.contracts.llm import LLM_RETRY_POLICY, HandoffAssessment, LlmCallContext
from workflows.contracts.notify import NotificationEmail
from workflows.contracts.wording import counted

HandoffIntent = Literal["park", "escalate"]
Priority = Literal["low", "normal", "high", "urgent"]
AssessmentStatus = Literal["pending", "ready", "failed"]
EscalationEventKind = Literal["handoff_created", "handoff_assessment_ready", "handoff_claimed",
                              "handoff_priority_raised"]

HANDOFF_INTENTS: tuple[str, ...] = get_args(HandoffIntent)
PRIORITIES: tuple[str, ...] = get_args(Priority)
ASSESSMENT_STATUSES: tuple[str, ...] = get_args(AssessmentStatus)
ESCALATION_EVENT_KINDS: tuple[str, ...] = get_args(EscalationEventKind)
MAX_ENGINEER_NOTES_CHARS = 4_000
USER_NAME_CHARS = 200

HANDOFF_WORKFLOW = "HandoffWorkflow"
QUERY_HANDOFF_STATE = "handoff_state"
SIGNAL_HANDOFF_CLAIMED = "handoff_claimed"
# The default pause before an unclaimed escalation is re-announced (account preference `handoff_renotify_after`).
DEFAULT_RENOTIFY_AFTER = timedelta(minutes=30)


def handoff_workflow_id(handoff_id: uuid.UUID | str) -> str:
    """The workflow id of a handoff."""
    return f"handoff-{handoff_id}"


def package_handoff_id(session_id: uuid.UUID, state_version: int) -> uuid.UUID:
    """The handoff an escalation package's post makes: derived from the escalation (the session's version after
    it), so a retried or replayed post finds the handoff it made instead of making another."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"rflow:ai-session:{session_id}:package-escalation:v{state_version}")


def package_notes(markdown: str) -> str:
    """A posted escalation package as its handoff's notes (what the escalator wrote for the next engineer)."""
    if len(markdown) <= MAX_ENGINEER_NOTES_CHARS:
        return markdown
    return markdown[:MAX_ENGINEER_NOTES_CHARS - 1] + "…"


def raised(priority: str) -> str:
    """The next priority up (urgent stays urgent)."""
    index = PRIORITIES.index(priority) if priority in PRIORITIES else 1
    return PRIORITIES[min(index + 1, len(PRIORITIES) - 1)]


def already_claimed(name: str, claimed_at: datetime, now: datetime) -> str:
    """What the second senior reads: who owns it and since when."""
    seconds = max(0, int((now - claimed_at).total_seconds()))
    return f"Already claimed by {name}, {counted(seconds, 'second')} ago"


def claimed_conflict(by_id: uuid.UUID | None, name: str | None, claimed_at: datetime,
                     now: datetime) -> ApplicationError:
    """The loser's rejection: who won and when, as a structured detail the API passes on as is (409)."""
    who = name or "another engineer"
    return ApplicationError(
        already_claimed(who, claimed_at, now),
        {"claimed_by_id": str(by_id) if by_id else None, "claimed_by_name": who,
         "claimed_at": claimed_at.isoformat()},
        type=REJECT_CONFLICT, non_retryable=True,
    )


class HandoffControl(BaseModel):
    """Everything the handoff workflow decides by; the rest is in Postgres."""

    id: uuid.UUID
    account_id: uuid.UUID
    session_id: uuid.UUID
    intent: HandoffIntent
    priority: Priority = "normal"
    created_by_user_id: uuid.UUID | None = None
    problem_summary: str = ""
    assessment_status: AssessmentStatus = "pending"
    team_notified: bool = Field(default=False, description="The escalation notice went out (once).")
    claimed_by_id: uuid.UUID | None = None
    claimed_by_name: str | None = None
    claimed_at: datetime | None = None
    next_renotify_at: datetime | None = Field(default=None, description="When an unclaimed escalation is "
                                              "re-announced (and its priority raised); None: nothing scheduled.")
    renotify_every_s: int = Field(default=int(DEFAULT_RENOTIFY_AFTER.total_seconds()), ge=1)
    renotify_count: int = 0
    session_closed: bool = Field(default=False, description="The session was resolved meanwhile: nothing to claim.")


class LatestHandoff(BaseModel):
    """The session workflow's view of its latest handoff: enough to answer a claim without a read."""

    id: uuid.UUID
    intent: HandoffIntent
    created_by_user_id: uuid.UUID | None = None
    claimed_by_id: uuid.UUID | None = None
    claimed_by_name: str | None = None
    claimed_at: datetime | None = None


def latest_handoff(control: HandoffControl) -> LatestHandoff:
    """The part of a handoff its session's workflow keeps."""
    return LatestHandoff(id=control.id, intent=control.intent, created_by_user_id=control.created_by_user_id,
                         claimed_by_id=control.claimed_by_id, claimed_by_name=control.claimed_by_name,
                         claimed_at=control.claimed_at)


class HandoffInput(BaseModel):
    """Start input: which handoff, how long the model may take, and (child start / continue-as-new) the state."""

    handoff_id: uuid.UUID
    account_id: uuid.UUID
    idle_timeout_s: int = Field(default=3600, ge=1)
    assessment_timeout_s: int = Field(default=120, ge=1)
    state: HandoffControl | None = None


class HandoffById(BaseModel):
    """A handoff by id."""

    handoff_id: uuid.UUID


class LoadHandoffResult(BaseModel):
    """The control state, or None when no such handoff exists."""

    control: HandoffControl | None = None


# --- the session's updates --------------------------------------------------------------------


class HandoffRequest(BaseModel):
    """`hand_off` on the session workflow: park or escalate it (the id is picked by the API)."""

    handoff_id: uuid.UUID
    intent: HandoffIntent
    engineer_notes: str = Field(max_length=MAX_ENGINEER_NOTES_CHARS)
    target_user_id: uuid.UUID | None = None
    priority: Priority = "normal"
    by_user_id: uuid.UUID
    # Settings copied in, so the handoff keeps the values it started with.
    idle_timeout_s: int = Field(default=3600, ge=1)
    assessment_timeout_s: int = Field(default=120, ge=1)


class HandoffCreated(BaseModel):
    """What `hand_off` made: the handoff (its workflow is running) and the session's new status."""

    handoff: HandoffControl
    session_status: str


class ResumeInput(BaseModel):
    """`resume` on the session workflow: a claimed handoff makes the session active again."""

    handoff_id: uuid.UUID
    by_user_id: uuid.UUID


class ResumeResult(BaseModel):
    """The session's status after the resume (a resolved session stays resolved)."""

    session_status: str
    resumed: bool


# --- the handoff's update -------------------------------------------------------------------------


class ClaimInput(BaseModel):
    """`claim`: the senior who picks the handoff up (their name goes into the loser's 409)."""

    user_id: uuid.UUID
    user_name: str = Field(max_length=USER_NAME_CHARS)


class ClaimResult(BaseModel):
    """Who owns the handoff now, since when, and the session's status."""

    claimed_by_id: uuid.UUID
    claimed_by_name: str
    claimed_at: datetime
    session_status: str | None = Field(default=None, description="None when the claim was already recorded.")
    changed: bool


class ClaimHandoffCommand(BaseModel):
    """`claim_handoff` on the session workflow (it owns the claim): the senior who picks the handoff up."""

    handoff_id: uuid.UUID
    user_id: uuid.UUID
    user_name: str = Field(max_length=USER_NAME_CHARS)


class HandoffClaimed(BaseModel):
    """Signal to `handoff-{id}` once the session's workflow recorded the claim: stop re-announcing it."""

    claimed_by_id: uuid.UUID
    claimed_by_name: str
    claimed_at: datetime


# --- activities -----------------------------------------------------------------------------------


class CreateHandoffInput(BaseModel):
    """Insert the handoff with its snapshot, flip the session, log the event (one transaction)."""

    session_id: uuid.UUID
    request: HandoffRequest
    at: datetime
    # The session was escalated by posting its escalation package: it stays as posted (status and package),
    # and a park still open on it is closed as picked up by the poster.
    package_posted: bool = False


class ClaimHandoffInput(BaseModel):
    """Record the claim (once), log `handoff_claimed` and tell whoever handed it off."""

    handoff_id: uuid.UUID
    user_id: uuid.UUID
    user_name: str
    at: datetime


class ClaimRecorded(BaseModel):
    """The stored claim and the emails that go with it."""

    control: HandoffControl
    emails: list[NotificationEmail] = []


class ClaimSessionHandoff(BaseModel):
    """`persistence.claim_handoff_and_resume`: the claim and the session made active, in one transaction."""

    session_id: uuid.UUID
    handoff_id: uuid.UUID
    user_id: uuid.UUID
    user_name: str
    at: datetime


class SessionHandoffClaimed(BaseModel):
    """The handoff as its row says after the call (its claimer may be someone else: the row decides), the
    session's status, and the emails that go with a claim this call recorded."""

    handoff: LatestHandoff
    changed: bool
    session_status: str
    emails: list[NotificationEmail] = []


class HandoffNoticeInput(BaseModel):
    """Tell the team about an escalation: at creation, or again (priority raised) while unclaimed."""

    handoff_id: uuid.UUID
    kind: Literal["escalated", "unclaimed"]
    round: int = Field(default=0, ge=0, description="Which re-announcement (dedupes a retried activity).")
    at: datetime


class HandoffNoticeResult(BaseModel):
    """The new control state (priority, next re-announcement) and the emails to send."""

    control: HandoffControl
    emails: list[NotificationEmail] = []


class AssessmentRequest(BaseModel):
    """`llm.handoff_assessment_for`: the activity reads the session and the handoff's notes by id."""

    context: LlmCallContext
    handoff_id: uuid.UUID


class StoreAssessmentInput(BaseModel):
    """Store the assessment (or that it failed) and log `handoff_assessment_ready`."""

    handoff_id: uuid.UUID
    assessment: HandoffAssessment | None = None
    error: str | None = Field(default=None, max_length=2_000)


class ResumeSessionInput(BaseModel):
    """`sessions.resume_from_handoff`: send `resume` to the session's workflow (it owns the session row)."""

    account_id: uuid.UUID
    session_id: uuid.UUID
    handoff_id: uuid.UUID
    by_user_id: uuid.UUID


class ClaimAndResumeInput(BaseModel):
    """`sessions.claim_and_resume`: record the claim, then ask the session's workflow to resume, in one activity."""

    claim: ClaimHandoffInput
    resume: ResumeSessionInput


class ClaimedAndResumed(BaseModel):
    """The stored claim and how the one resume attempt went: `resumed` when the session's workflow answered,
    `resume_refused` when it said no (the claim stands), neither when the resume is still to do."""

    recorded: ClaimRecorded
    resumed: ResumeResult | None = None
    resume_refused: str | None = Field(default=None, max_length=2_000)


class ResumeSessionRow(BaseModel):
    """`persistence.resume_ai_session`: make the session active again (idempotent)."""

    session_id: uuid.UUID
    handoff_id: uuid.UUID
    at: datetime


CREATE_HANDOFF = persistence("persistence.create_handoff", CreateHandoffInput, HandoffControl)
LOAD_HANDOFF = persistence("persistence.load_handoff", HandoffById, LoadHandoffResult)
# HandoffWorkflow's own claim (kept for its runs in flight and recorded histories; claims now go to the session's
# workflow, CLAIM_SESSION_HANDOFF). A regular activity: the workflow decided the winner before the write ran.
CLAIM_HANDOFF: ActivityRef[ClaimHandoffInput, ClaimRecorded] = ActivityRef(
    "persistence.claim_handoff", ClaimRecorded, PERSIST_TIMEOUT, PERSIST_RETRY)
# The session's workflow owns the claim: one local activity writes the handoff's claim and the session's status
# together and returns the claimer the row names, so every answer agrees with the row even when a workflow task
# holding an earlier attempt's result was lost and the updates ran again in another order.
CLAIM_SESSION_HANDOFF = persistence("persistence.claim_handoff_and_resume", ClaimSessionHandoff,
                                    SessionHandoffClaimed)
HANDOFF_NOTICE = persistence("persistence.handoff_notice", HandoffNoticeInput, HandoffNoticeResult)
STORE_ASSESSMENT = persistence("persistence.store_handoff_assessment", StoreAssessmentInput, HandoffControl)
RESUME_SESSION_ROW = persistence("persistence.resume_ai_session", ResumeSessionRow, ResumeResult)

LLM_HANDOFF_ASSESSMENT_FOR = "llm.handoff_assessment_for"
SESSIONS_RESUME_FROM_HANDOFF = "sessions.resume_from_handoff"
SESSIONS_CLAIM_AND_RESUME = "sessions.claim_and_resume"
# The session's workflow answers a resume with one Postgres write; an unreachable engine is retried.
RESUME_SESSION: ActivityRef[ResumeSessionInput, ResumeResult] = ActivityRef(
    SESSIONS_RESUME_FROM_HANDOFF, ResumeResult, timedelta(seconds=30),
    RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10),
                non_retryable_error_types=["Conflict", "NotFound"]),
)

# The claim write and its first resume in one regular activity: one dispatch and one workflow task fewer than
# CLAIM_HANDOFF then RESUME_SESSION. Only the claim's own failure fails it (and is retried as CLAIM_HANDOFF is);
# a resume that did not happen comes back as such and the workflow retries the resume alone through
# RESUME_SESSION, so a resume's retry never re-runs the committed claim (whose emails come with its first answer).
CLAIM_AND_RESUME: ActivityRef[ClaimAndResumeInput, ClaimedAndResumed] = ActivityRef(
    SESSIONS_CLAIM_AND_RESUME, ClaimedAndResumed, PERSIST_TIMEOUT + timedelta(seconds=30), PERSIST_RETRY)


def assessment_activity(timeout: timedelta) -> ActivityRef[AssessmentRequest, HandoffAssessment]:
    """The assessment call bounded by the handoff's budget: a slow model gives up rather than hold anything."""
    return ActivityRef(LLM_HANDOFF_ASSESSMENT_FOR, HandoffAssessment, min(timeout, timedelta(minutes=2)),
                       LLM_RETRY_POLICY, schedule_to_close=timeout, priority=BACKGROUND)
