"""Notifications: created (once per dedupe key) by workflow activities, listed and marked read by their user.

Every read and change through the API is scoped to the recipient (`user_id`): another user's notification,
in the same account or not, is simply not found.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert

from db.models import Notification, User
from db.models.notification import DEDUPE_KEY_MAX, EMAIL_STATUSES, TITLE_MAX
from db.repositories.base import AccountScopedRepository
from workflows.contracts.notify import NOTIFICATION_KINDS

EMAIL_ERROR_MAX = 2000


def _storable(text: str) -> str:
    # Postgres text cannot hold NUL; titles and bodies come from tickets and third parties, so drop it here
    # rather than fail an activity on every retry.
    return text.replace("\x00", "")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class NotificationRepository(AccountScopedRepository[Notification]):
    """Writes notifications for activities and serves one user's notifications to the API."""

    model = Notification

    async def create_once(
        self,
        *,
        account_id: uuid.UUID,
        user_id: uuid.UUID,
        kind: str,
        title: str,
        body: str = "",
        session_id: uuid.UUID | None = None,
        fix_id: uuid.UUID | None = None,
        handoff_id: uuid.UUID | None = None,
        dedupe_key: str | None = None,
    ) -> Notification:
        """Insert a notification for `user_id`; with a `dedupe_key` this user already has, the existing row.

        `INSERT ... ON CONFLICT (user_id, dedupe_key) DO NOTHING`, so an activity retried after its first
        attempt committed (or two racing calls) leaves one row. A title longer than 300 characters is cut with
        an ellipsis. Raises `ValueError` for an unknown kind, an over-long dedupe key, or a user who is not in
        `account_id` (non-retryable for an activity). The caller commits.
        """
        if kind not in NOTIFICATION_KINDS:
            raise ValueError(f"unknown notification kind {kind!r}; expected one of {', '.join(NOTIFICATION_KINDS)}")
        if dedupe_key is not None and not 0 < len(dedupe_key) <= DEDUPE_KEY_MAX:
            raise ValueError(f"dedupe_key must be 1 to {DEDUPE_KEY_MAX} characters")
        member = await self.session.scalar(
            select(exists().where(User.id == user_id, User.account_id == account_id))
        )
        if not member:
            raise ValueError(f"user {user_id} is not in account {account_id}")
        stmt = (
            insert(Notification)
            .values(
                id=uuid.uuid4(), account_id=account_id, user_id=user_id, kind=kind,
                title=_clip(_storable(title), TITLE_MAX), body=_storable(body), session_id=session_id,
                fix_id=fix_id, handoff_id=handoff_id, dedupe_key=dedupe_key,
            )
            .on_conflict_do_nothing(index_elements=["user_id", "dedupe_key"])
            .returning(Notification)
        )
        created = (await self.session.scalars(stmt, execution_options={"populate_existing": True})).one_or_none()
        if created is not None:
            return created
        # The key was taken: by an earlier attempt, or by a concurrent one whose commit the insert waited for
        # (a new statement under READ COMMITTED sees it).
        existing = await self.session.scalar(
            select(Notification)
            .where(Notification.user_id == user_id, Notification.dedupe_key == dedupe_key)
            .execution_options(populate_existing=True)
        )
        assert existing is not None
        return existing

    @staticmethod
    def _of_user(user_id: uuid.UUID, unread_only: bool) -> list[ColumnElement[bool]]:
        conditions = [Notification.user_id == user_id]
        if unread_only:
            conditions.append(Notification.read_at.is_(None))
        return conditions

    async def list_for_user(
        self, user_id: uuid.UUID, *, unread_only: bool = False, limit: int = 50, offset: int = 0
    ) -> Sequence[Notification]:
        """The user's notifications (only the unread ones when `unread_only`), newest first."""
        result = await self.session.scalars(
            select(Notification)
            .where(*self._of_user(user_id, unread_only))
            .order_by(Notification.created_at.desc(), Notification.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return result.all()

    async def count_for_user(self, user_id: uuid.UUID, *, unread_only: bool = False) -> int:
        """How many notifications `list_for_user` pages through with the same filter."""
        count = await self.session.scalar(
            select(func.count()).select_from(Notification).where(*self._of_user(user_id, unread_only))
        )
        return int(count or 0)

    async def mark_read(self, user_id: uuid.UUID, notification_id: uuid.UUID) -> Notification | None:
        """Stamp `read_at` unless already read (the first stamp stays); None when it is not this user's."""
        stamped = (await self.session.scalars(
            update(Notification)
            .where(Notification.id == notification_id, Notification.user_id == user_id,
                   Notification.read_at.is_(None))
            .values(read_at=func.now())
            .returning(Notification),
            execution_options={"synchronize_session": False, "populate_existing": True},
        )).one_or_none()
        if stamped is not None:
            return stamped
        found: Notification | None = await self.session.scalar(
            select(Notification)
            .where(Notification.id == notification_id, Notification.user_id == user_id)
            .execution_options(populate_existing=True)
        )
        return found

    async def mark_all_read(self, user_id: uuid.UUID) -> int:
        """Stamp every unread notification of the user; how many were unread."""
        marked = await self.session.scalars(
            update(Notification)
            .where(Notification.user_id == user_id, Notification.read_at.is_(None))
            .values(read_at=func.now())
            .returning(Notification.id)
            .execution_options(synchronize_session=False)
        )
        return len(marked.all())

    async def settled_among(self, notification_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """Those of `notification_ids` whose email needs no more attempts: sent, or refused for good."""
        if not notification_ids:
            return set()
        found = await self.session.scalars(select(Notification.id).where(
            Notification.id.in_(notification_ids), Notification.email_status.in_(("sent", "failed"))))
        return set(found.all())

    async def record_email(self, notification_id: uuid.UUID, status: str, error: str | None = None) -> bool:
        """Record the best-effort email's outcome (`sent`, `retrying`, `failed` or `skipped`); False when no such
        row."""
        if status not in EMAIL_STATUSES:
            raise ValueError(f"unknown email status {status!r}; expected one of {', '.join(EMAIL_STATUSES)}")
        stored_error = _clip(_storable(error), EMAIL_ERROR_MAX) if error is not None else None
        result = await self.session.scalar(
            update(Notification)
            .where(Notification.id == notification_id)
            .values(email_status=status, email_error=stored_error)
            .returning(Notification.id)
            .execution_options(synchronize_session=False)
        )
        return result is not None
