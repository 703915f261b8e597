"""AI troubleshooting session payloads: sessions, messages, suggested fixes, previews and local posts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from api.schemas.common import JsonUuid, RequestBody
from workflows.contracts.ai_session import (
    MAX_FIX_DESCRIPTION_CHARS,
    MAX_FIX_TITLE_CHARS,
    MAX_MARKDOWN_CHARS,
    MAX_MESSAGE_CHARS,
    IntakeType,
    SessionStatus,
    SessionType,
)
from workflows.contracts.fix import MAX_NOTES_CHARS, FixStatus
from workflows.contracts.llm import ConfidenceTier, FixOutcome

PSA_TICKET_ID_MAX = 64
# Ticket ids go into PSA URLs: nothing that could change the path.
PSA_TICKET_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"


def _visible(value: str) -> str:
    # A pattern's \S is Unicode White_Space only; str.strip() also drops \x1c-\x1f, which once left an intake
    # with no first line to summarise (a 500). One rule for every free-text field.
    if not value.strip():
        raise ValueError("must contain visible text, not only whitespace or separator characters")
    return value


def visible_text(max_length: int) -> Any:
    """A string of 1 to `max_length` characters with something visible in it."""
    return Annotated[str, Field(min_length=1, max_length=max_length, pattern=r"\S"), AfterValidator(_visible)]


class IntakeContent(BaseModel):
    """What the engineer was told: the problem in their words (or the ticket's summary)."""

    text: visible_text(MAX_MESSAGE_CHARS)  # type: ignore[valid-type]


class AiSessionCreate(RequestBody):
    """Open a session from the engineer's words (free_text) or from a PSA ticket (its summary is read)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"session_type": "chat", "intake_type": "free_text",
         "intake_content": {"text": "Outlook keeps prompting for a password after the M365 migration"}},
        {"session_type": "guided", "intake_type": "psa_ticket",
         "psa_connection_id": "0f7c2a9e-3b1d-4c55-9a4e-7d2b8c6f1e21", "psa_ticket_id": "48291"},
    ]})

    session_type: SessionType
    intake_type: IntakeType = "free_text"
    intake_content: IntakeContent | None = Field(
        default=None, description="Required for free_text; for psa_ticket, added after the ticket's summary.")
    psa_connection_id: JsonUuid | None = None
    psa_ticket_id: str | None = Field(default=None, min_length=1, max_length=PSA_TICKET_ID_MAX,
                                      pattern=PSA_TICKET_ID_PATTERN,
                                      description="The ticket's id in the PSA (letters, digits, - and _).")

    @model_validator(mode="after")
    def _intake_is_complete(self) -> AiSessionCreate:
        if (self.psa_connection_id is None) != (self.psa_ticket_id is None):
            raise ValueError("psa_connection_id and psa_ticket_id go together: give both or neither")
        if self.intake_type == "psa_ticket" and self.psa_ticket_id is None:
            raise ValueError("intake_type psa_ticket needs psa_connection_id and psa_ticket_id")
        if self.intake_type == "free_text" and self.intake_content is None:
            raise ValueError("intake_type free_text needs intake_content.text")
        return self


class AiSessionSummaryOut(BaseModel):
    """A session without its transcript (lists)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    status: SessionStatus
    session_type: SessionType
    intake_type: IntakeType
    problem_summary: str
    confidence_tier: ConfidenceTier
    state_version: int
    message_count: int
    handoff_count: int
    psa_connection_id: uuid.UUID | None
    psa_ticket_id: str | None
    user_id: uuid.UUID | None
    resolved_at: datetime | None
    escalated_at: datetime | None
    created_at: datetime
    updated_at: datetime
    last_activity_at: datetime


class MessageOut(BaseModel):
    """One message of the transcript."""

    model_config = ConfigDict(from_attributes=True)

    seq: int
    role: Literal["user", "assistant"]
    content: str
    created_at: datetime


class AiSessionOut(AiSessionSummaryOut):
    """One session with its transcript and posted documents."""

    intake_content: dict[str, Any]
    messages: list[MessageOut]
    resolution_note_markdown: str | None
    escalation_package_markdown: str | None


class AiSessionListOut(BaseModel):
    """A page of sessions, newest first, and how many match the filter."""

    items: list[AiSessionSummaryOut]
    total: int


class MessageRequest(RequestBody):
    """The engineer's next message to the assistant."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"content": "I cleared the cached credentials; "
                                                                          "it still prompts"}]})

    content: visible_text(MAX_MESSAGE_CHARS)  # type: ignore[valid-type]


class AiOutcomeProposalOut(BaseModel):
    """The assistant's reading of how the active fix went; nothing changes until the engineer confirms."""

    outcome: FixOutcome
    reason: str
    proposed_at: datetime | None = None


class FixOut(BaseModel):
    """A suggested fix with its verification state."""

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [{
        "id": "0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b", "session_id": "9c2d7e11-3a4b-4c5d-8e6f-708192a3b4c5",
        "source": "ai", "title": "Reset credential cache", "description": "Clear stale credentials.",
        "confidence_pct": 82, "status": "applied_pending", "applied_at": "2026-11-22T12:00:00Z",
        "verified_at": None, "partial_notes": None, "failure_reason": None,
        "pending_reason": "waiting on AD replication", "ai_outcome_proposal": None, "superseded_at": None,
        "created_at": "2026-11-22T11:50:00Z", "updated_at": "2026-11-22T12:00:00Z", "parked_at": "2026-11-22T12:00:00Z",
        "next_reminder_at": "2026-11-22T14:00:00Z", "verification_overdue_at": None,
    }]})

    id: uuid.UUID
    session_id: uuid.UUID
    source: Literal["ai", "engineer"]
    title: str
    description: str
    confidence_pct: int
    status: FixStatus
    applied_at: datetime | None
    verified_at: datetime | None
    partial_notes: str | None
    failure_reason: str | None
    pending_reason: str | None
    ai_outcome_proposal: AiOutcomeProposalOut | None
    superseded_at: datetime | None
    created_at: datetime
    updated_at: datetime
    parked_at: datetime | None
    next_reminder_at: datetime | None
    verification_overdue_at: datetime | None


class FixListOut(BaseModel):
    """A page of the session's fixes, newest first."""

    items: list[FixOut]
    total: int


class MessageResponse(BaseModel):
    """The assistant's reply; a proposed fix is now the session's active fix."""

    reply: str
    confidence_tier: ConfidenceTier
    suggested_fix: FixOut | None
    outcome_proposal: AiOutcomeProposalOut | None
    outcome_fix_id: uuid.UUID | None = Field(description="The fix the outcome proposal is stored on.")
    state_version: int


class FixCreate(RequestBody):
    """An engineer's own candidate fix; it supersedes the active one."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"title": "Re-register the Outlook profile", "description": "Create a new mail profile.", "confidence_pct": 60},
    ]})

    # Exactly the fix's own fields (`FixFields`, with the API's stricter checks): the route passes them on as
    # they are, so a field added there is added here too (tests/test_seams.py).
    title: visible_text(MAX_FIX_TITLE_CHARS)  # type: ignore[valid-type]
    description: str = Field(default="", max_length=MAX_FIX_DESCRIPTION_CHARS)
    confidence_pct: int = Field(ge=0, le=100)


class OutcomeRequest(RequestBody):
    """How the fix went. `applied_partial` and `applied_pending` need notes; success, failed and dismissed are final."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"outcome": "applied_pending", "notes": "waiting on AD replication"},
        {"outcome": "applied_success"},
    ]})

    outcome: FixOutcome
    notes: str | None = Field(default=None, max_length=MAX_NOTES_CHARS)


class PreviewOut(BaseModel):
    """A generated document for the session's current state (cached per state version)."""

    markdown: str
    state_version: int
    from_cache: bool


class PostDocumentRequest(RequestBody):
    """The (edited) markdown to post."""

    markdown: visible_text(MAX_MARKDOWN_CHARS)  # type: ignore[valid-type]
    time_minutes: Annotated[int, Field(ge=1, le=1440)] | None = Field(
        default=None, description="Minutes of work to log on the ticket with the note (1-1440; PSA tickets only).")


class PostDocumentOut(BaseModel):
    """How the session was closed; the PSA fields stay null for a session without a ticket."""

    outcome: Literal["resolved", "resolved_local", "escalated", "escalated_local"]
    session_status: SessionStatus
    state_version: int
    external_id: str | None = None
    time_entry_id: str | None = Field(default=None, description="The PSA's time entry, when time was logged.")
    verified_status_id: int | None = None
    verified_status_name: str | None = None
    status_transition_skipped_reason: str | None = None
