"""Escalation email over real SMTP, an SMTP outage recorded (not raised), and a slow or failing model that
never holds the escalation up (the real Anthropic SDK against a local stand-in)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AiSession, EscalationEvent, Notification
from tests.handoffs.support import SUMMARY, escalated, make_handoff_desk, open_session, wait_for_assessment
from tests.llm.fake_anthropic import FakeAnthropic
from tests.stack import SmtpSink, StackFactory, free_port

HANDOFF = {"summary_prose": "The VPN client fails the IKE handshake after KB5034441",
           "what_we_know": ["Started after the update"], "likely_cause": "A pinned cipher suite",
           "suggested_steps": ["Roll back KB5034441 on one machine"], "confidence": 0.6}


async def test_escalation_email_reaches_the_team_over_smtp(
    make_stack: StackFactory, db: AsyncSession, smtp_sink: tuple[SmtpSink, int]
) -> None:
    sink, port = smtp_sink
    async with make_stack(smtp_host="127.0.0.1", smtp_port=port) as stack:
        desk = await make_handoff_desk(stack.client, db)
        session_id, _ = await escalated(stack.client, desk.engineer.headers)
        await sink.wait_for(3)
        await asyncio.sleep(0.5)  # nothing more may arrive

    recipients = sorted(r for m in sink.messages for r in m.rcpt_tos)
    assert recipients == sorted([desk.owner.email, desk.senior.email, desk.admin.email])
    for message in sink.messages:
        text = message.content.decode()
        assert SUMMARY in text and session_id in text
    rows = (await db.scalars(select(Notification).where(Notification.kind == "handoff_escalated"))).all()
    async with asyncio.timeout(10):
        while any(r.email_status != "sent" for r in rows):
            await asyncio.sleep(0.1)
            rows = (await db.scalars(select(Notification).where(Notification.kind == "handoff_escalated")
                                     .execution_options(populate_existing=True))).all()
    assert len(rows) == 3


async def test_smtp_outage_is_recorded_on_the_notification_not_raised(make_stack: StackFactory,
                                                                       db: AsyncSession) -> None:
    async with make_stack(smtp_host="127.0.0.1", smtp_port=free_port()) as stack:  # nobody listens there
        desk = await make_handoff_desk(stack.client, db)
        session_id, handoff = await escalated(stack.client, desk.engineer.headers)
        assert handoff["intent"] == "escalate"

        async def retrying() -> list[Any]:  # the mail is retried for a while (tests/test_notification_email_retry.py)
            return list((await db.scalars(select(Notification).where(Notification.email_status == "retrying")
                                          .execution_options(populate_existing=True))).all())

        async with asyncio.timeout(30):  # the first attempt
            while len(await retrying()) < 3:  # noqa: ASYNC110 - the worker writes the outcome to Postgres
                await asyncio.sleep(0.2)
        assert all("Connection" in (n.email_error or "") for n in await retrying())
        senior_claims = await stack.client.post(
            f"/api/v1/ai-sessions/{session_id}/handoffs/{handoff['id']}/claim", headers=desk.senior.headers)
        assert senior_claims.status_code == 200  # the handoff never noticed the mail server was down


async def test_a_slow_model_never_delays_the_escalation(make_stack: StackFactory, db: AsyncSession) -> None:
    fake = FakeAnthropic()
    fake.tool_call("record_handoff_assessment", HANDOFF)
    fake.slow(30)
    async with make_stack(llm=fake.provider(), handoff_assessment_timeout_s=2) as stack:
        desk = await make_handoff_desk(stack.client, db)
        session_id, handoff = await escalated(stack.client, desk.engineer.headers)
        # The 201 came back with the handoff made and announced while the model is still thinking.
        assert handoff["assessment_status"] == "pending" and handoff["ai_assessment"] is None
        status = await db.scalar(select(AiSession.status).where(AiSession.id == uuid.UUID(session_id)))
        assert status == "escalated"
        created = await db.scalar(select(EscalationEvent.kind).where(EscalationEvent.kind == "handoff_created"))
        assert created == "handoff_created"

        landed = await wait_for_assessment(stack.client, desk.engineer.headers, session_id)
        assert landed["assessment_status"] == "failed" and landed["ai_assessment"] is None
        assert landed["claimed_by"] is None
        assert (await stack.client.post(f"/api/v1/ai-sessions/{session_id}/handoffs/{handoff['id']}/claim",
                                        headers=desk.senior.headers)).status_code == 200


async def test_a_failing_model_leaves_the_handoff_without_an_assessment(make_stack: StackFactory,
                                                                         db: AsyncSession) -> None:
    fake = FakeAnthropic()
    fake.error(400, "invalid_request_error", "prompt is too long")
    async with make_stack(llm=fake.provider()) as stack:
        desk = await make_handoff_desk(stack.client, db)
        session_id, _ = await escalated(stack.client, desk.engineer.headers)
        landed = await wait_for_assessment(stack.client, desk.engineer.headers, session_id)
    assert landed["assessment_status"] == "failed"
    assert await db.scalar(select(EscalationEvent.id).where(EscalationEvent.kind == "handoff_assessment_ready")) is None


async def test_the_assessment_is_written_from_the_session_and_the_notes(make_stack: StackFactory,
                                                                         db: AsyncSession) -> None:
    fake = FakeAnthropic()
    fake.tool_call("record_handoff_assessment", HANDOFF)
    async with make_stack(llm=fake.provider()) as stack:
        desk = await make_handoff_desk(stack.client, db)
        session = await open_session(stack.client, desk.engineer.headers, "Printer jams on tray 2")
        resp = await stack.client.post(f"/api/v1/ai-sessions/{session['id']}/handoff", headers=desk.engineer.headers,
                                       json={"intent": "park", "engineer_notes": "Waiting on the toner delivery"})
        assert resp.status_code == 201
        landed = await wait_for_assessment(stack.client, desk.engineer.headers, session["id"])
    assert landed["ai_assessment"] == HANDOFF["summary_prose"]
    assert landed["ai_assessment_data"]["suggested_steps"] == HANDOFF["suggested_steps"]
    prompt = str(fake.requests[-1]["messages"])
    assert "Printer jams on tray 2" in prompt and "Waiting on the toner delivery" in prompt
