"""Email over SMTP: the `notify.*` activities."""

from __future__ import annotations

import asyncio
import logging
import smtplib
from email.message import EmailMessage as MimeMessage

from temporalio import activity
from temporalio.exceptions import ApplicationError

from core.config import Settings
from workflows.contracts.notify import NOTIFY_SEND_EMAIL, EmailMessage

log = logging.getLogger(__name__)


class NotifyActivities:
    """Sends mail through the configured SMTP server (stdlib smtplib in a thread)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @activity.defn(name=NOTIFY_SEND_EMAIL)
    async def send_email(self, message: EmailMessage) -> None:
        """Deliver one message; an unreachable server is retried, refused recipients are not."""
        await asyncio.to_thread(self._send, message)

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
