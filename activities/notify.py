"""Email over SMTP: the `notify.*` activities."""

from __future__ import annotations

import asyncio
import logging
import smtplib
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
        """Email an in-app notification's recipient and record the outcome on the notification (sent / failed)."""
        message = EmailMessage(to=[email.to], subject=email.subject, body=email.body)
        try:
            await asyncio.to_thread(self._send, message)
        except Exception as exc:
            log.warning("email for notification %s to %s failed (attempt %d): %s", email.notification_id,
                        email.to, activity.info().attempt, exc)
            await self._record(email, "failed", f"{type(exc).__name__}: {exc}")
            raise
        await self._record(email, "sent", None)

    @activity.defn(name=NOTIFY_EMAIL_NOTIFICATIONS)
    async def email_notifications(self, batch: NotificationEmails) -> None:
        """Email several notifications in one activity (one event in history, not one per recipient); a retry
        sends only those not yet sent. Raises when any failed, so Temporal retries the rest."""
        async with self._session_factory() as session:
            sent = await NotificationRepository(session).sent_among([e.notification_id for e in batch.emails])
        failed = []
        for email in batch.emails:
            if email.notification_id in sent:
                continue
            try:
                await self.email_notification(email)
            except Exception as exc:  # recorded on the notification by email_notification
                failed.append(f"{email.to}: {exc}")
        if failed:
            raise ApplicationError(f"{len(failed)} of {len(batch.emails)} emails failed: {'; '.join(failed)[:500]}",
                                   type="EmailsFailed")

    async def _record(self, email: NotificationEmail, status: str, error: str | None) -> None:
        async with self._session_factory() as session, session.begin():
            await NotificationRepository(session).record_email(email.notification_id, status, error)

    def _send(self, message: EmailMessage) -> None:
        s = self._settings
        mime = MimeMessage()
        mime["From"] = s.smtp_sender
        mime["To"] = ", ".join(message.to)
        mime["Subject"] = message.subject
        mime.set_content(message.body)
        try:
            with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=20) as smtp:
                if s.smtp_username and s.smtp_password:
                    smtp.starttls()
                    smtp.login(s.smtp_username, s.smtp_password)
                smtp.send_message(mime)
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
            # The server answered and said no: retrying will not change its mind.
            raise ApplicationError(f"SMTP refused the message: {exc}", type="EmailRejected",
                                   non_retryable=True) from exc
        log.info("sent email %r to %d recipient(s)", message.subject, len(message.to))
