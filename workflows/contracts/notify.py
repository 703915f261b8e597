"""Contracts of the `notify.*` activities (email over SMTP)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Literal, get_args

from pydantic import BaseModel, Field
from temporalio.common import RetryPolicy

from workflows.contracts.common import ActivityRef

NOTIFY_SEND_EMAIL = "notify.send_email"

# What an in-app notification is about; workflow activities create them, the API lists them.
NotificationKind = Literal[
    "fix_verification_reminder",
    "fix_verification_overdue",
    "handoff_escalated",
    "handoff_claimed",
    "handoff_unclaimed",
    "psa_status_drift",
]
NOTIFICATION_KINDS: tuple[str, ...] = get_args(NotificationKind)

NOTIFY_START_TO_CLOSE = timedelta(seconds=30)
# A mail server that is down is retried for a while; a refused recipient is non-retryable.
NOTIFY_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=2),
    maximum_attempts=10,
    non_retryable_error_types=["EmailRejected"],
)


class EmailMessage(BaseModel):
    """A plain-text email to one or more recipients."""

    to: list[str] = Field(min_length=1)
    subject: str = Field(min_length=1, max_length=300)
    body: str


SEND_EMAIL: ActivityRef[EmailMessage, None] = ActivityRef(
    NOTIFY_SEND_EMAIL, None, NOTIFY_START_TO_CLOSE, NOTIFY_RETRY_POLICY,
)


class NotificationEmail(BaseModel):
    """The email that goes with an in-app notification (its outcome is recorded on the row)."""

    notification_id: uuid.UUID
    to: str
    subject: str = Field(min_length=1, max_length=300)
    body: str


NOTIFY_EMAIL_NOTIFICATION = "notify.email_notification"
# Best-effort: a few attempts, then the failure stays recorded on the notification and the workflow goes on.
# A local activity: one SMTP hand-off next to the worker, without a server round trip per email (thousands of
# parked fixes remind at once; measured in bench/pending_fixes.py).
EMAIL_NOTIFICATION: ActivityRef[NotificationEmail, None] = ActivityRef(
    NOTIFY_EMAIL_NOTIFICATION, None, timedelta(seconds=20),
    RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(seconds=20), maximum_attempts=3,
                non_retryable_error_types=["EmailRejected"]),
    local=True, schedule_to_close=timedelta(minutes=2),
)

NOTIFY_EMAIL_NOTIFICATIONS = "notify.email_notifications"


class NotificationEmails(BaseModel):
    """Several notification emails sent by one activity (an escalation tells the whole team)."""

    emails: list[NotificationEmail] = Field(min_length=1)


# A regular activity, for workflows that must stay responsive while mail goes out: a local activity's retries
# hold the workflow task open (no update is accepted meanwhile), and one activity per recipient floods the
# history with completions that keep invalidating the workflow task a claim is being decided in.
EMAIL_NOTIFICATIONS: ActivityRef[NotificationEmails, None] = ActivityRef(
    NOTIFY_EMAIL_NOTIFICATIONS, None, timedelta(minutes=2),
    RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(seconds=20), maximum_attempts=3),
    schedule_to_close=timedelta(minutes=5),
)
