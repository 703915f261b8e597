"""The caller's own in-app notifications (any role): list them, mark one or all read."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.deps import CurrentUser, SessionDep
from api.errors import error_responses
from api.idempotency import Idempotent
from api.schemas.common import Limit, Offset
from api.schemas.notifications import NotificationListOut, NotificationOut, ReadAllOut
from core.errors import NotFound
from db.repositories.notifications import NotificationRepository

router = APIRouter(prefix="/notifications", tags=["notifications"], responses=error_responses(401, 503))

UnreadOnly = Annotated[bool, Query(description="Only the unread ones (`items` and `total`).")]


@router.get("", response_model=NotificationListOut, responses=error_responses(422))
async def list_notifications(
    user: CurrentUser, session: SessionDep, unread_only: UnreadOnly = False, limit: Limit = 50, offset: Offset = 0
) -> NotificationListOut:
    """The caller's notifications, newest first, with the filter's total and the caller's unread count."""
    repo = NotificationRepository(session)
    rows = await repo.list_for_user(user.id, unread_only=unread_only, limit=limit, offset=offset)
    total = await repo.count_for_user(user.id, unread_only=unread_only)
    unread = total if unread_only else await repo.count_for_user(user.id, unread_only=True)
    return NotificationListOut(items=[NotificationOut.model_validate(r) for r in rows], total=total, unread=unread)


@router.post("/read-all", response_model=ReadAllOut)
async def read_all(user: CurrentUser, session: SessionDep, idem: Idempotent) -> Response:
    """Mark every unread notification of the caller read; again, it marks none (a retry with the same
    `Idempotency-Key` gets the first answer's count)."""

    async def command() -> ReadAllOut:
        marked = await NotificationRepository(session).mark_all_read(user.id)
        return ReadAllOut(marked=marked)

    return await idem.run(command)


@router.post("/{notification_id}/read", response_model=NotificationOut,
             responses=error_responses(422, described={404: "No such notification of yours"}))
async def read_one(notification_id: uuid.UUID, user: CurrentUser, session: SessionDep, idem: Idempotent) -> Response:
    """Mark one of the caller's notifications read; marking it again keeps the first `read_at`."""

    async def command() -> NotificationOut:
        row = await NotificationRepository(session).mark_read(user.id, notification_id)
        if row is None:
            raise NotFound("Notification not found")
        return NotificationOut.model_validate(row)

    return await idem.run(command)
