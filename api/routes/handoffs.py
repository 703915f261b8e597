"""Handoffs and the escalation queue: park or escalate a session, list, claim, and the live stream.

Parking and escalating go through the session's workflow (it owns the session row and starts the handoff's
workflow), and so does a claim: the session's workflow decides the race. Reads come from Postgres; the stream is
fed by the process's LISTEN connection and resumes from the event log.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request, status
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession
from sse_starlette import EventSourceResponse
from starlette.background import BackgroundTask

from api.deps import (
    ActiveSubscription,
    EngineerUser,
    HandoffCommandsDep,
    OwnedAiSession,
    OwnedHandoff,
    SessionCommandsDep,
    SessionDep,
    SessionFactoryDep,
    SettingsDep,
)
from api.errors import error_responses
from api.idempotency import Idempotent
from api.schemas.common import Limit, Offset
from api.schemas.handoffs import (
    HandoffCreate,
    HandoffListOut,
    HandoffOut,
    QueueItemOut,
    QueueOut,
)
from core.errors import NotFound, RuleViolation, UnprocessableRequest
from db.repositories.handoffs import HandoffRepository
from db.repositories.users import UserRepository
from db.session import unit_of_work
from services.escalation_stream import EscalationBus, event_stream
from workflows.contracts.handoff import HandoffRequest

router = APIRouter(prefix="/ai-sessions", tags=["handoffs"], responses=error_responses(401, 403, 503))

HANDOFF_ERRORS = error_responses(402, 422, described={
    400: "A rule was broken (the detail says which), or the body is not valid JSON",
    404: "No such AI session (or target user) in your account",
    409: "The session is not active (already parked, escalated or resolved)",
})
# Browsers keep the id of the last event they saw; a number this long is no id (ids count one account's events).
MAX_EVENT_ID_DIGITS = 18


async def handoff_out(session: AsyncSession, handoff_id: uuid.UUID) -> HandoffOut:
    """The handoff as stored (its workflow wrote it before answering)."""
    row = await HandoffRepository(session).get(handoff_id)
    if row is None:
        raise NotFound("Handoff not found")
    await session.refresh(row)
    return HandoffOut.model_validate(row)


@router.get("/queue", response_model=QueueOut, responses=error_responses(422))
async def escalation_queue(user: EngineerUser, session: SessionDep, limit: Limit = 50,
                           offset: Offset = 0) -> QueueOut:
    """Unclaimed escalations of your account, oldest first, with priority and age."""
    rows, total = await HandoffRepository(session).queue(user.account_id, limit=limit, offset=offset,
                                                         now=datetime.now(UTC))
    items = [QueueItemOut.model_validate({**HandoffOut.model_validate(h).model_dump(), "problem_summary": summary,
                                          "escalated_by_name": name, "age_seconds": max(0, int(age or 0))})
             for h, summary, name, age in rows]
    return QueueOut(items=items, total=total)


@router.get(
    "/escalations/stream",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": (
        "`event: ready` (data `{account_id, last_event_id}`), then `handoff_created` `{handoff_id, session_id, "
        "priority}`, `handoff_assessment_ready`, `handoff_claimed` and `handoff_priority_raised`, each with an "
        "`id:`; a `: ping` comment every 25 s. Ids number your account's events only (1, 2, 3, ...). Send the last "
        "id back as `Last-Event-ID` to resume without gaps; one above the newest starts from the newest.")},
        **error_responses(described={
            422: "`Last-Event-ID` is not an event id (digits only); a larger id than the newest starts from the "
                 "newest",
            429: "You hold too many streams open already (10 per user)"})},
)
async def escalation_stream(
    request: Request, user: EngineerUser, settings: SettingsDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", description="Resume after this event.")] = None,
) -> EventSourceResponse:
    """Live escalations of your account (Server-Sent Events)."""
    cursor = None
    if last_event_id is not None and last_event_id.strip():
        value = last_event_id.strip()
        if not (value.isascii() and value.isdigit() and len(value) <= MAX_EVENT_ID_DIGITS):
            raise UnprocessableRequest("Last-Event-ID must be the id of an event this stream sent (digits only, "
                                       "as in its `id:` lines), or left out to start from now")
        cursor = int(value)
    bus: EscalationBus = request.app.state.escalation_bus
    session_factory = request.app.state.session_factory
    limit = settings.escalation_streams_per_user
    if bus.open_for(user.account_id, user.id) >= limit:  # each stream holds a queue and a connection
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, headers={"Retry-After": "5"}, detail=(
            f"You already have {limit} escalation streams open (the limit per user); close one (each browser tab "
            "holds one) and try again"))
    # Subscribe before the stream reads its starting point, so nothing committed after it is missed.
    subscription = bus.subscribe(user.account_id, user.id)

    async def events() -> AsyncIterator[dict[str, str]]:
        try:
            async for item in event_stream(subscription, session_factory, last_event_id=cursor):
                yield item
        finally:
            bus.unsubscribe(subscription)

    # A client that stops reading is dropped after send_timeout instead of holding its queue forever; the
    # background task frees the subscription even if the response never started streaming.
    return EventSourceResponse(events(), ping=settings.escalation_heartbeat_s, send_timeout=30,
                               headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
                               background=BackgroundTask(bus.unsubscribe, subscription))


@router.post("/{session_id}/handoff", status_code=status.HTTP_201_CREATED, response_model=HandoffOut,
             responses=HANDOFF_ERRORS)
async def create_handoff(
    body: HandoffCreate, owned: OwnedAiSession, user: EngineerUser, session: SessionDep, sessions: SessionFactoryDep,
    commands: SessionCommandsDep, settings: SettingsDep, idem: Idempotent, _paid: None = ActiveSubscription,
) -> Response:
    """Park the session (paused; nobody is told) or escalate it (escalated; the team is emailed and the live
    queue hears of it at once). The AI assessment lands on the handoff a moment later."""
    if body.target_user_id is not None:
        async with unit_of_work(sessions) as read:  # ended: no pooled connection waits on the workflow with us
            target = await UserRepository(read).engineers_in_account(user.account_id, only_ids=[body.target_user_id])
        if not target:
            raise NotFound("target_user_id is not an active engineer, admin or owner of your account")
        if body.target_user_id == user.id:
            raise RuleViolation("target_user_id names you; escalate to someone else or leave it out")

    async def command() -> HandoffOut:
        request = HandoffRequest(
            handoff_id=idem.entity_id("handoff"), intent=body.intent, engineer_notes=body.engineer_notes,
            target_user_id=body.target_user_id, priority=body.priority or "normal", by_user_id=user.id,
            idle_timeout_s=settings.workflow_idle_unload_s, assessment_timeout_s=settings.handoff_assessment_timeout_s,
        )
        created = await commands.hand_off(owned, request, idem.key)
        return await handoff_out(session, created.handoff.id)

    return await idem.run(command, status_code=status.HTTP_201_CREATED)


@router.get("/{session_id}/handoffs", response_model=HandoffListOut,
            responses=error_responses(422, described={404: "No such AI session in your account"}))
async def list_handoffs(owned: OwnedAiSession, _: EngineerUser, session: SessionDep) -> HandoffListOut:
    """The session's handoffs, oldest first."""
    rows = await HandoffRepository(session).for_session(owned.id)
    return HandoffListOut(items=[HandoffOut.model_validate(r) for r in rows], total=len(rows))


@router.post(
    "/{session_id}/handoffs/{handoff_id}/claim", response_model=HandoffOut,
    responses=error_responses(402, 422, described={
        403: "Viewers may not claim (the engineer role or higher is needed), nor may the escalator",
        404: "No such handoff in this session of your account",
        409: "Someone else claimed it first: `detail` is `{message, claimed_by_id, claimed_by_name, claimed_at}` "
             "(e.g. \"Already claimed by Dana Reyes, 12 seconds ago\"); or the session was resolved meanwhile"},
        examples={409: {"message": "Already claimed by Dana Reyes, 12 seconds ago",
                        "claimed_by_id": "3f6c2a9e-8d41-4b7a-9c55-1e2f3a4b5c6d", "claimed_by_name": "Dana Reyes",
                        "claimed_at": "2026-03-02T14:31:48.120000+00:00"}}),
)
async def claim_handoff(
    handoff: OwnedHandoff, user: EngineerUser, commands: HandoffCommandsDep, idem: Idempotent,
    _paid: None = ActiveSubscription,
) -> Response:
    """Pick the handoff up: the first claimer owns it and the session is active again; the same claimer again
    gets the same answer; anyone else gets 409 naming who won and when."""

    async def command() -> HandoffOut:
        claimed = await commands.claim(handoff, user.id, user.name, idem.key)
        # The handoff as read with the caller, and the claim as the session's workflow recorded it: no read after.
        return HandoffOut.model_validate({**asdict(handoff), "claimed_by_user_id": claimed.claimed_by_id,
                                          "claimed_by_name": claimed.claimed_by_name,
                                          "claimed_at": claimed.claimed_at})

    return await idem.run(command)
