"""Contracts of `TroubleshootingSessionWorkflow` (`session-{id}`) and its activities.

The workflow holds only `SessionControl` (a few hundred bytes): the transcript, the fixes, the
documents and `state_version` are rows that activities read and write by id, so a 200-message
session grows no payload. Sandbox-safe: pydantic, temporalio and the standard library.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field

from workflows.contracts.common import ActivityRef, persistence
from workflows.contracts.handoff import LatestHandoff
from workflows.contracts.llm import (
    LLM_RETRY_POLICY,
    LLM_SCHEDULE_TO_CLOSE,
    LLM_START_TO_CLOSE,
    ChatReply,
    ConfidenceTier,
    LlmCallContext,
    OutcomeProposal,
)
from workflows.contracts.psa import StatusRecheck

SessionStatus = Literal["active", "paused", "escalated", "resolved"]
SessionType = Literal["guided", "chat"]
IntakeType = Literal["free_text", "psa_ticket"]
DocumentKind = Literal["resolution_note", "escalation_package"]
FixSource = Literal["ai", "engineer"]

# The tuples are the same values for code that needs them at run time (the tables' CHECKs in db/models).
SESSION_STATUSES: tuple[str, ...] = get_args(SessionStatus)
SESSION_TYPES: tuple[str, ...] = get_args(SessionType)
INTAKE_TYPES: tuple[str, ...] = get_args(IntakeType)
FIX_SOURCES: tuple[str, ...] = get_args(FixSource)
MAX_MESSAGE_CHARS = 8_000
MAX_MESSAGES_PER_SESSION = 1_000
MAX_MARKDOWN_CHARS = 50_000
MAX_FIX_TITLE_CHARS = 200
MAX_FIX_DESCRIPTION_CHARS = 4_000
# The model sees the intake and the latest turns; older turns stay in Postgres.
TRANSCRIPT_WINDOW = 40
SUMMARY_CHARS = 200

QUERY_SESSION_STATE = "session_state"


def summary_of(text: str) -> str:
    """The problem summary: the first line of the intake, clipped to SUMMARY_CHARS."""
    lines = text.strip().splitlines()
    first = lines[0].strip() if lines else ""
    return first if len(first) <= SUMMARY_CHARS else first[: SUMMARY_CHARS - 1] + "…"


def session_workflow_id(session_id: uuid.UUID | str) -> str:
    """The workflow id of an AI session."""
    return f"session-{session_id}"


class SessionControl(BaseModel):
    """Everything the session workflow decides by; the rest is in Postgres."""

    id: uuid.UUID
    account_id: uuid.UUID
    user_id: uuid.UUID | None = None
    status: SessionStatus
    session_type: SessionType
    problem_summary: str = Field(default="", description="Clipped to SUMMARY_CHARS for the Web UI.")
    message_count: int = 0
    confidence: float = 0.0
    confidence_tier: ConfidenceTier = "discovery"
    has_psa_ticket: bool = False
    last_activity_at: datetime
    status_recheck: StatusRecheck | None = Field(
        default=None, description="A verified PSA status still to be re-read (drift watch), if any.")
    handoff: LatestHandoff | None = Field(
        default=None, description="The session's latest handoff (its claim is decided here), if any.")


class SessionCreate(BaseModel):
    """What the API decided when it opened the session (ids picked by the API)."""

    session_id: uuid.UUID
    account_id: uuid.UUID
    user_id: uuid.UUID
    session_type: SessionType
    intake_type: IntakeType
    intake_text: str
    problem_summary: str
    psa_connection_id: uuid.UUID | None = None
    psa_ticket_id: str | None = None


class SessionInput(BaseModel):
    """Start input: which session, how long an idle run stays loaded, and (continue-as-new) the state."""

    session_id: uuid.UUID
    account_id: uuid.UUID
    idle_timeout_s: int = Field(default=3600, ge=1)
    created_by_update: bool = False
    state: SessionControl | None = None


class SessionRef(BaseModel):
    """A session by id."""

    session_id: uuid.UUID


class LoadSessionResult(BaseModel):
    """The control state, or None when no such session exists."""

    control: SessionControl | None = None


# --- updates ----------------------------------------------------------------------------------


class MessageInput(BaseModel):
    """`message`: the engineer's next message."""

    content: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)


class MessageResult(BaseModel):
    """The assistant's answer; the proposed fix (stored as the active fix) is named by id."""

    reply: str
    confidence_tier: ConfidenceTier
    suggested_fix_id: uuid.UUID | None = None
    outcome_proposal: OutcomeProposal | None = None
    outcome_fix_id: uuid.UUID | None = None
    state_version: int


class FixFields(BaseModel):
    """What a fix says of itself, given when it is made and never changed by a command.

    The one list of them: a field added here, to `SuggestedFix` (db/models) and to the API's `FixCreate` and
    `FixOut` (plus a migration) is taken on create, stored and answered; no layer in between names it
    (tests/test_seams.py checks the four agree)."""

    title: str = Field(min_length=1, max_length=MAX_FIX_TITLE_CHARS)
    description: str = Field(default="", max_length=MAX_FIX_DESCRIPTION_CHARS)
    confidence_pct: int = Field(ge=0, le=100)

    def columns(self) -> dict[str, Any]:
        """These fields (not a subclass's) as the fix row's column values."""
        return self.model_dump(include=set(FixFields.model_fields))


class FixDraft(FixFields):
    """`add_fix`: an engineer's own candidate fix (the id derives from the request's key)."""

    fix_id: uuid.UUID
    by_user_id: uuid.UUID


class AddFixResult(BaseModel):
    """The stored fix (it supersedes the active one) and the session's version after it."""

    fix_id: uuid.UUID
    state_version: int


class CloseInput(BaseModel):
    """`close_local`: post the resolution note or escalation package on a session without a PSA ticket."""

    kind: DocumentKind
    markdown: str = Field(min_length=1, max_length=MAX_MARKDOWN_CHARS)
    by_user_id: uuid.UUID
    # Work logged as time on the ticket, carrying the note (never a second copy of it); PSA posts only.
    time_minutes: int | None = Field(default=None, ge=1, le=1440)
    # An escalation package's post makes a handoff like `hand_off` does; this is its assessment's bound.
    assessment_timeout_s: int = Field(default=120, ge=1)


class CloseResult(BaseModel):
    """How the session was closed."""

    outcome: Literal["resolved_local", "escalated_local"]
    session_status: SessionStatus
    state_version: int


# --- activities -------------------------------------------------------------------------------


class RecordTurnInput(BaseModel):
    """Store one exchange (the engineer's message and the reply) once per turn id."""

    session_id: uuid.UUID
    turn_id: str
    user_content: str
    reply: ChatReply
    at: datetime


class RecordTurnResult(BaseModel):
    """What the turn stored."""

    message_count: int
    state_version: int
    suggested_fix_id: uuid.UUID | None = None
    outcome_fix_id: uuid.UUID | None = None


class AddFixInput(BaseModel):
    """Insert an engineer's fix (once per id) and supersede the active one."""

    session_id: uuid.UUID
    draft: FixDraft
    at: datetime


class CloseSessionInput(BaseModel):
    """Store the posted document and flip the status (guarded: only once per kind)."""

    session_id: uuid.UUID
    kind: DocumentKind
    markdown: str
    by_user_id: uuid.UUID
    at: datetime


class SessionReplyInput(BaseModel):
    """`llm.session_reply`: the activity reads the transcript and the active fix by id."""

    context: LlmCallContext
    session_id: uuid.UUID
    user_content: str
    current_confidence: float = Field(default=0.0, ge=0, le=1)


class DocumentRequest(BaseModel):
    """`llm.session_document`: a preview, read from Postgres and cached by (session, kind, state_version)."""

    context: LlmCallContext
    session_id: uuid.UUID
    kind: DocumentKind


class DocumentResult(BaseModel):
    """A preview and the state version it was written from."""

    markdown: str
    state_version: int
    from_cache: bool


CREATE_SESSION = persistence("persistence.create_ai_session", SessionCreate, SessionControl)
LOAD_SESSION = persistence("persistence.load_ai_session", SessionRef, LoadSessionResult)
RECORD_TURN = persistence("persistence.record_ai_turn", RecordTurnInput, RecordTurnResult)
ADD_FIX = persistence("persistence.add_engineer_fix", AddFixInput, AddFixResult)
CLOSE_SESSION = persistence("persistence.close_ai_session_local", CloseSessionInput, CloseResult)

LLM_SESSION_REPLY = "llm.session_reply"
LLM_SESSION_DOCUMENT = "llm.session_document"
SESSION_REPLY: ActivityRef[SessionReplyInput, ChatReply] = ActivityRef(
    LLM_SESSION_REPLY, ChatReply, LLM_START_TO_CLOSE, LLM_RETRY_POLICY, schedule_to_close=LLM_SCHEDULE_TO_CLOSE,
)
SESSION_DOCUMENT: ActivityRef[DocumentRequest, DocumentResult] = ActivityRef(
    LLM_SESSION_DOCUMENT, DocumentResult, LLM_START_TO_CLOSE, LLM_RETRY_POLICY,
    schedule_to_close=LLM_SCHEDULE_TO_CLOSE,
)
# An AI turn waits on the model (one attempt may make two calls); a caller should hear back within this.
TURN_RESULT_TIMEOUT = LLM_START_TO_CLOSE + timedelta(seconds=30)
