"""Email over SMTP: the `notify.*` activities.

A notification's email that fails for a reason that may pass (the server unreachable, a 4xx) is left to
Temporal's retries for the activity's window (MAIL_RETRY_WINDOW) and shown as `retrying` on the row; once
no attempt fits in the window, or the server refused the message, the row says `failed` and no retry follows.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage as MimeMessage

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from core.config import Settings
from db.repositories.notifications import NotificationRepository
from workflows.contracts.notify import (
    NOTIFY_EMAIL_NOTIFICATION,
    NOTIFY_EMAIL_NOTIFICATIONS,
    NOTIFY_SEND_EMAIL,
    EmailMessage,
    NotificationEmail,
    NotificationEmails,
)

log = logging.getLogger(__name__)


class NotifyActivities:
    """Sends mail through the configured SMTP server (stdlib smtplib in a thread)."""

    def __init__(self, settings: Settings, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._settings = settings
        self._session_factory = session_factory

    @activity.defn(name=NOTIFY_SEND_EMAIL)
    async def send_email(self, message: EmailMessage) -> None:
        """Deliver one message; an unreachable server is retried, refused recipients are not."""
        await asyncio.to_thread(self._send, message)

    @activity.defn(name=NOTIFY_EMAIL_NOTIFICATION)
    async def email_notification(self, email: NotificationEmail) -> None:
        """Email an in-app notification's recipient and record the outcome on it (sent / retrying / failed)."""
        message = EmailMessage(to=[email.to], subject=email.subject, body=email.body)
        try:
            await asyncio.to_thread(self._send, message)
        except Exception as exc:
            refused = isinstance(exc, ApplicationError) and exc.non_retryable
            final = refused or _last_attempt(activity.info())
            log.warning("email for notification %s to %s failed (attempt %d%s): %s", email.notification_id,
                        email.to, activity.info().attempt, ", final" if final else "", exc)
            why = str(exc) if refused else f"{type(exc).__name__}: {exc}"
            await self._record(email, "failed" if final else "retrying", why)
            if final and not refused:
                raise ApplicationError(f"no more attempts in the retry window: {why}", type="EmailsFailed",
                                       non_retryable=True) from exc
            raise
        await self._record(email, "sent", None)

    @activity.defn(name=NOTIFY_EMAIL_NOTIFICATIONS)
    async def email_notifications(self, batch: NotificationEmails) -> None:
        """Email several notifications over one SMTP connection in one activity (one event in history, not one
        per recipient) and record each outcome; a retry sends only those not yet sent. Raises when any failed,
        so Temporal retries the rest."""
        async with self._session_factory() as session:
            settled = await NotificationRepository(session).settled_among([e.notification_id for e in batch.emails])
        todo = [e for e in batch.emails if e.notification_id not in settled]
        outcomes = await asyncio.to_thread(
            self._send_many, [EmailMessage(to=[e.to], subject=e.subject, body=e.body) for e in todo])
        final = _last_attempt(activity.info())
        failed = [(e, f"{type(error).__name__}: {error}") for e, error in zip(todo, outcomes, strict=True) if error]
        again = [e for e, error in zip(todo, outcomes, strict=True) if error and not _refused(error)]
        async with self._session_factory() as session, session.begin():
            notifications = NotificationRepository(session)
            for email, error in zip(todo, outcomes, strict=True):
                status = "sent" if error is None else "retrying" if email in again and not final else "failed"
                await notifications.record_email(email.notification_id, status,
                                                 f"{type(error).__name__}: {error}" if error else None)
        log.info("sent %d of %d notification emails (attempt %d, %d to retry%s)", len(todo) - len(failed),
                 len(todo), activity.info().attempt, len(again), ", final" if final else "")
        if failed:
            raise ApplicationError(f"{len(failed)} of {len(todo)} emails failed: "
                                   f"{'; '.join(f'{e.to}: {why}' for e, why in failed)[:500]}", type="EmailsFailed",
                                   non_retryable=final or not again)

    async def _record(self, email: NotificationEmail, status: str, error: str | None) -> None:
        async with self._session_factory() as session, session.begin():
            await NotificationRepository(session).record_email(email.notification_id, status, error)

    def _connect(self) -> smtplib.SMTP:
        s = self._settings
        smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=20)
        if s.smtp_username and s.smtp_password:
            smtp.starttls()
            smtp.login(s.smtp_username, s.smtp_password)
        return smtp

    def _mime(self, message: EmailMessage) -> MimeMessage:
        mime = MimeMessage()
        mime["From"] = self._settings.smtp_sender
        mime["To"] = ", ".join(message.to)
        mime["Subject"] = message.subject
        mime.set_content(message.body)
        return mime

    def _send(self, message: EmailMessage) -> None:
        try:
            with self._connect() as smtp:
                smtp.send_message(self._mime(message))
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPResponseException) as exc:
            if not _refused(exc):
                raise  # a 4xx: the server may take it later
            # The server answered and said no: retrying will not change its mind.
            raise ApplicationError(f"SMTP refused the message: {exc}", type="EmailRejected",
                                   non_retryable=True) from exc
        log.info("sent email %r to %d recipient(s)", message.subject, len(message.to))

    def _send_many(self, messages: list[EmailMessage]) -> list[Exception | None]:
        """Send each message over one connection; per message, None or why it failed."""
        outcomes: list[Exception | None] = []
        try:
            with self._connect() as smtp:
                for message in messages:
                    try:
                        smtp.send_message(self._mime(message))
                        outcomes.append(None)
                    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
                        outcomes.append(exc)  # this message was refused; the connection carries on
        except (OSError, smtplib.SMTPException) as exc:  # the server or the connection failed: the rest is unsent
            outcomes += [exc] * (len(messages) - len(outcomes))
        return outcomes


def _refused(error: Exception) -> bool:
    """The server answered this message with a permanent no: another attempt would get the same."""
    if isinstance(error, smtplib.SMTPRecipientsRefused | smtplib.SMTPSenderRefused):
        return True
    return isinstance(error, smtplib.SMTPResponseException) and error.smtp_code >= 500


def _last_attempt(info: activity.Info) -> bool:
    """True when Temporal will not try this activity again: its attempts are used up, or the next one would start
    after its schedule-to-close window (the mail retry window) ends."""
    policy = info.retry_policy
    if policy is not None and policy.maximum_attempts and info.attempt >= policy.maximum_attempts:
        return True
    if info.schedule_to_close_timeout is None:
        return False
    backoff = timedelta(0)
    if policy is not None:
        backoff = policy.initial_interval * (policy.backoff_coefficient ** (info.attempt - 1))
        if policy.maximum_interval is not None:
            backoff = min(backoff, policy.maximum_interval)
    return datetime.now(UTC) + backoff >= info.scheduled_time + info.schedule_to_close_timeout
