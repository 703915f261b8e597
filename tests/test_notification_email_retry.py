"""Notification email through an SMTP outage (issue 20 item 12): retried for a bounded time, sent once the
server is back, and `email_status` shown on GET /notifications."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from core.config import Settings
from db.models import Notification
from db.repositories.notifications import NotificationRepository
from tests.handoffs.support import escalated, make_handoff_desk
from tests.helpers import make_user
from tests.stack import SmtpSink, StackFactory, free_port
from workflows.contracts.handoff import handoff_workflow_id
from workflows.contracts.notify import EMAIL_NOTIFICATION, NOTIFY_EMAIL_NOTIFICATIONS, NotificationEmail

URL = "/api/v1/notifications"


async def _statuses(client: AsyncClient, headers: dict[str, str], kind: str) -> list[str | None]:
    resp = await client.get(URL, headers=headers)
    assert resp.status_code == 200, resp.text
    return [n["email_status"] for n in resp.json()["items"] if n["kind"] == kind]


async def _until(check: Any, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while not await check():  # noqa: ASYNC110 - the worker writes the outcome to Postgres
            await asyncio.sleep(0.1)


async def test_team_email_during_an_smtp_outage_goes_out_once_the_server_is_back(
    make_stack: StackFactory, db: AsyncSession, temporal_client: Client
) -> None:
    port = free_port()  # the mail server is down: nobody listens there yet
    sink = SmtpSink()
    async with make_stack(smtp_host="127.0.0.1", smtp_port=port) as stack:
        desk = await make_handoff_desk(stack.client, db)
        _, handoff = await escalated(stack.client, desk.engineer.headers)

        async def retrying() -> bool:
            return await _statuses(stack.client, desk.senior.headers, "handoff_escalated") == ["retrying"]

        await _until(retrying, 20)  # the attempt failed, more are coming: shown as such
        # The outage outlasts the three attempts the old policy made (then every row stayed `failed`).
        workflow = temporal_client.get_workflow_handle(handoff_workflow_id(handoff["id"]))

        async def past_the_old_attempts() -> bool:
            pending = (await workflow.describe()).raw_description.pending_activities
            return any(a.activity_type.name == NOTIFY_EMAIL_NOTIFICATIONS and a.attempt > 3 for a in pending)

        await _until(past_the_old_attempts, 40)
        assert await retrying()
        controller = Controller(sink, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            await sink.wait_for(3, seconds=60)

            async def sent() -> bool:
                return await _statuses(stack.client, desk.senior.headers, "handoff_escalated") == ["sent"]

            await _until(sent, 20)
        finally:
            controller.stop()
    recipients = sorted(r for m in sink.messages for r in m.rcpt_tos)
    assert recipients == sorted([desk.owner.email, desk.senior.email, desk.admin.email])  # each once


async def _one_notification(client: AsyncClient, db: AsyncSession) -> tuple[dict[str, Any], Notification]:
    owner = await make_user(client, db)
    row = await NotificationRepository(db).create_once(
        account_id=uuid.UUID(owner["account_id"]), user_id=uuid.UUID(owner["user"]["id"]),
        kind="fix_verification_reminder", title="Verify the fix", body="b")
    await db.commit()
    return owner, row


def _attempt(scheduled_ago: timedelta, attempt: int) -> activity.Info:
    now = datetime.now(UTC)
    return ActivityEnvironment().info.__class__(**{
        **ActivityEnvironment().info.__dict__, "attempt": attempt, "is_local": True,
        "scheduled_time": now - scheduled_ago, "current_attempt_scheduled_time": now,
        "schedule_to_close_timeout": EMAIL_NOTIFICATION.schedule_to_close, "retry_policy": EMAIL_NOTIFICATION.retry})


@pytest.mark.parametrize(("scheduled_ago", "status", "retried"), [
    (timedelta(seconds=1), "retrying", True),  # early in the window: Temporal tries again
    (timedelta(minutes=30), "failed", False),  # the window is over: the outcome is final
])
async def test_a_reminder_email_is_retrying_within_its_window_and_failed_after_it(
    client: AsyncClient, db: AsyncSession, settings: Settings, session_factory: async_sessionmaker[AsyncSession],
    scheduled_ago: timedelta, status: str, retried: bool,
) -> None:
    owner, row = await _one_notification(client, db)
    notify = NotifyActivities(settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": free_port()}),
                              session_factory)
    env = ActivityEnvironment()
    env.info = _attempt(scheduled_ago, attempt=2)
    with pytest.raises(Exception) as raised:
        await env.run(notify.email_notification, NotificationEmail(notification_id=row.id, to=owner["email"],
                                                                   subject="s", body="b"))
    final = isinstance(raised.value, ApplicationError) and raised.value.non_retryable
    assert final is not retried
    stored = await db.get(Notification, row.id, populate_existing=True)
    assert stored is not None and stored.email_status == status and "Connection" in (stored.email_error or "")
    listed = (await client.get(URL, headers=owner["headers"])).json()["items"]
    assert [n["email_status"] for n in listed] == [status]
