"""Handoff payloads: park or escalate a session, the handoff itself, the queue and the claim conflict."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.schemas.ai_sessions import visible_text
from api.schemas.common import JsonUuid, RequestBody
from workflows.contracts.handoff import MAX_ENGINEER_NOTES_CHARS, AssessmentStatus, HandoffIntent, Priority

EXAMPLE_HANDOFF: dict[str, Any] = {
    "id": "2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d", "session_id": "9b1d2c3e-4f5a-4b6c-8d7e-0f1a2b3c4d5e",
    "intent": "escalate", "engineer_notes": "Stuck on the auth handshake; logs attached to the ticket",
    "priority": "normal", "target_user_id": None, "created_by": "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9",
    "snapshot": {"status": "active", "problem_summary": "VPN won't connect after Win update",
                 "confidence_tier": "exploring", "message_count": 6, "recent_messages": [], "fixes": []},
    "ai_assessment": None, "ai_assessment_data": None, "assessment_status": "pending",
    "claimed_by": None, "claimed_by_name": None, "claimed_at": None, "renotify_count": 0,
    "created_at": "2026-11-21T09:30:00Z",
}


class HandoffCreate(RequestBody):
    """Park the session (waiting on the customer: private) or escalate it (the team is told at once)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"intent": "park", "engineer_notes": "Waiting for the customer to send the VPN client logs"},
        {"intent": "escalate", "engineer_notes": "Stuck on the auth handshake", "priority": "high"},
    ]})

    intent: HandoffIntent
    engineer_notes: visible_text(MAX_ENGINEER_NOTES_CHARS)  # type: ignore[valid-type]
    target_user_id: JsonUuid | None = Field(
        default=None, description="Escalations only: the engineer, admin or owner to tell (instead of the team).")
    priority: Priority | None = Field(default=None, description="Escalations only; default normal.")

    @model_validator(mode="after")
    def _park_is_private(self) -> HandoffCreate:
        if self.intent == "park" and (self.target_user_id is not None or self.priority is not None):
            raise ValueError("a park is private: target_user_id and priority apply to escalations only")
        return self


class HandoffOut(BaseModel):
    """A handoff: the snapshot taken when it was made, the AI assessment once it lands, and who claimed it."""

    model_config = ConfigDict(from_attributes=True, populate_by_name=True,
                              json_schema_extra={"examples": [EXAMPLE_HANDOFF]})

    id: uuid.UUID
    session_id: uuid.UUID
    intent: HandoffIntent
    engineer_notes: str
    priority: Priority
    target_user_id: uuid.UUID | None
    created_by: uuid.UUID | None = Field(validation_alias="created_by_user_id")
    snapshot: dict[str, Any]
    ai_assessment: str | None = Field(description="The assessment's summary; null until it lands (or if it failed).")
    ai_assessment_data: dict[str, Any] | None = Field(
        description="what_we_know, likely_cause, suggested_steps, confidence, provider.")
    assessment_status: AssessmentStatus
    claimed_by: uuid.UUID | None = Field(validation_alias="claimed_by_user_id")
    claimed_by_name: str | None
    claimed_at: datetime | None
    renotify_count: int = Field(description="How often an unclaimed escalation was announced again.")
    created_at: datetime


class HandoffListOut(BaseModel):
    """A session's handoffs, oldest first."""

    items: list[HandoffOut]
    total: int


class QueueItemOut(HandoffOut):
    """An unclaimed escalation in the queue, with what a senior scans for."""

    problem_summary: str
    escalated_by_name: str | None
    age_seconds: int = Field(description="Seconds since it was escalated.")


class QueueOut(BaseModel):
    """Unclaimed escalations of the account, oldest first."""

    items: list[QueueItemOut]
    total: int
