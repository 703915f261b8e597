"""Contracts of the `notify.*` activities (email over SMTP)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Literal, get_args

from pydantic import BaseModel, Field
from temporalio.common import RetryPolicy

from workflows.contracts.common import BACKGROUND, ActivityRef

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
# The outcome of a notification's email, as recorded on its row (db/models/notification.py says what each means).
EmailStatus = Literal["sent", "failed", "skipped", "retrying"]
EMAIL_STATUSES: tuple[str, ...] = get_args(EmailStatus)

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
    NOTIFY_SEND_EMAIL, None, NOTIFY_START_TO_CLOSE, NOTIFY_RETRY_POLICY, priority=BACKGROUND,
)


class NotificationEmail(BaseModel):
    """The email that goes with an in-app notification (its outcome is recorded on the row)."""

    notification_id: uuid.UUID
    to: str
    subject: str = Field(min_length=1, max_length=300)
    body: str


NOTIFY_EMAIL_NOTIFICATION = "notify.email_notification"
# How long a notification's email is retried through a mail server outage (it was three attempts in about six
# seconds: a 75 s outage lost every email). Meanwhile the row says `retrying`; after it, `failed`. A refused
# recipient is not retried. Changing a retry policy changes no workflow command: histories replay as before.
MAIL_RETRY_WINDOW = timedelta(minutes=15)
# Best-effort: the in-app notification is the record, and the workflow goes on whatever the mail does.
# A local activity: one SMTP hand-off next to the worker, without a server round trip per email (thousands of
# parked fixes remind at once; measured in bench/pending_fixes.py). Its first retry waits longer than the SDK's
# local retry threshold (1 min), so every retry is a durable timer: an outage never holds the workflow task.
EMAIL_NOTIFICATION: ActivityRef[NotificationEmail, None] = ActivityRef(
    NOTIFY_EMAIL_NOTIFICATION, None, timedelta(seconds=20),
    RetryPolicy(initial_interval=timedelta(seconds=61), backoff_coefficient=1.5,
                maximum_interval=timedelta(minutes=3), non_retryable_error_types=["EmailRejected"]),
    local=True, schedule_to_close=MAIL_RETRY_WINDOW,
)

NOTIFY_EMAIL_NOTIFICATIONS = "notify.email_notifications"


class NotificationEmails(BaseModel):
    """Several notification emails sent by one activity (an escalation tells the whole team)."""

    emails: list[NotificationEmail] = Field(min_length=1)


# A regular activity, for workflows that must stay responsive while mail goes out: a local activity's retries
# hold the workflow task open (no update is accepted meanwhile), and one activity per recipient floods the
# history with completions that keep invalidating the workflow task a claim is being decided in.
# Retried through an outage for MAIL_RETRY_WINDOW; each attempt sends only what is not settled yet.
EMAIL_NOTIFICATIONS: ActivityRef[NotificationEmails, None] = ActivityRef(
    NOTIFY_EMAIL_NOTIFICATIONS, None, timedelta(minutes=2),
    RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=1),
                non_retryable_error_types=["EmailRejected"]),
    schedule_to_close=MAIL_RETRY_WINDOW, priority=BACKGROUND,
)
