"""In-app notification payloads."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from workflows.contracts.notify import EmailStatus, NotificationKind

EXAMPLE_NOTIFICATION: dict[str, Any] = {
    "id": "5b0f8a52-6c1e-4b8e-9a57-2f1d3c4e5a60",
    "kind": "fix_verification_reminder",
    "title": "Verify the fix on ticket #4821: Outlook keeps asking for a password",
    "body": "You applied “Reset the credential manager entry” 4 hours ago. Did it work?",
    "session_id": "9c2d7e11-3a4b-4c5d-8e6f-708192a3b4c5",
    "fix_id": "0e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b",
    "handoff_id": None,
    "created_at": "2026-11-22T14:03:11.482Z",
    "read_at": None,
    "email_status": "sent",
}


class NotificationOut(BaseModel):
    """One notification for the caller; the ids say what it is about (null when it is not about one)."""

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [
        EXAMPLE_NOTIFICATION,
        {**EXAMPLE_NOTIFICATION, "id": "7d3e9f20-1b2c-4d3e-8f4a-5b6c7d8e9f01", "kind": "handoff_claimed",
         "title": "Dana claimed your escalation", "body": "Dana Lee is now working the printer escalation.",
         "session_id": None, "fix_id": None, "handoff_id": "2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d",
         "read_at": "2026-11-22T14:10:02.017Z"},
    ]})

    id: uuid.UUID
    kind: NotificationKind
    title: str
    body: str
    session_id: uuid.UUID | None
    fix_id: uuid.UUID | None
    handoff_id: uuid.UUID | None
    created_at: datetime
    read_at: datetime | None = Field(description="When the caller first marked it read; null while unread.")
    email_status: EmailStatus | None = Field(description=(
        "The email that goes with it: `sent`; `retrying` (the mail server did not take it yet; retried for up to "
        "15 minutes); `failed` (refused, or still failing after that); `skipped`; null before the first attempt "
        "or when none is sent."))


class NotificationListOut(BaseModel):
    """A page of the caller's notifications, newest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"items": [EXAMPLE_NOTIFICATION], "total": 1, "unread": 1},
    ]})

    items: list[NotificationOut]
    total: int = Field(description="How many notifications match the filter (all pages).")
    unread: int = Field(description="How many of the caller's notifications are unread (whatever the filter).")


class ReadAllOut(BaseModel):
    """What `read-all` changed."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"marked": 3}, {"marked": 0}]})

    marked: int = Field(description="How many unread notifications were marked read (0 when none were).")
