"""Users of an account."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError

from core.errors import Conflict
from db.models import User
from db.repositories.base import AccountScopedRepository

ENGINEER_ROLES = ("engineer", "admin", "owner")
EMAIL_TAKEN = "A user with this email already exists"
EMAIL_CONSTRAINT = "uq_users_email"


def _violates(exc: IntegrityError, constraint: str) -> bool:
    # asyncpg names the constraint on the error SQLAlchemy wraps; its message names it too.
    cause = exc.orig.__cause__ if exc.orig is not None else None
    return getattr(cause, "constraint_name", None) == constraint or f'"{constraint}"' in str(exc.orig)


def user_ids(values: Sequence[Any]) -> list[uuid.UUID]:
    """The values that are UUIDs (stored recipient lists may hold anything a past version wrote)."""
    found = []
    for value in values:
        try:
            found.append(uuid.UUID(str(value)))
        except ValueError:
            continue
    return found


class UserRepository(AccountScopedRepository[User]):
    """Looks users up by id or email and changes them; lists are scoped to one account."""

    model = User

    def _visible(self, query: Select[Any]) -> Select[Any]:
        return query.where(User.deleted_at.is_(None))  # a soft-deleted user is gone for the API

    async def get_by_email(self, email: str) -> User | None:
        """Case-insensitive email lookup."""
        result = await self.session.execute(select(User).where(func.lower(User.email) == email.lower()))
        return result.scalar_one_or_none()

    async def create(
        self, *, account_id: uuid.UUID, email: str, name: str, hashed_password: str, account_role: str
    ) -> User:
        """Insert a user; `Conflict` when the email is taken (also by a concurrent insert that won the race)."""
        user = User(
            id=uuid.uuid4(),
            account_id=account_id,
            email=email.lower(),
            name=name,
            hashed_password=hashed_password,
            account_role=account_role,
            is_active=True,
        )
        try:
            # A savepoint: losing the race undoes only this insert, and the session stays usable.
            async with self.session.begin_nested():
                self.session.add(user)
                await self.session.flush()
        except IntegrityError as exc:
            if _violates(exc, EMAIL_CONSTRAINT):
                raise Conflict(EMAIL_TAKEN) from exc
            raise
        await self.session.refresh(user)
        return user

    async def list_for_account(self, account_id: uuid.UUID, *, limit: int, offset: int) -> Sequence[User]:
        """Live users of the account, oldest first."""
        result = await self.session.execute(
            select(User)
            .where(User.account_id == account_id, User.deleted_at.is_(None))
            .order_by(User.created_at, User.id)
            .limit(limit)
            .offset(offset)
        )
        return result.scalars().all()

    async def active_in_account(self, account_id: uuid.UUID, user_ids: Sequence[uuid.UUID]) -> Sequence[User]:
        """Those of `user_ids` that are in the account, active and not deleted."""
        if not user_ids:
            return []
        result = await self.session.execute(
            select(User).where(
                User.account_id == account_id,
                User.id.in_(list(user_ids)),
                User.is_active.is_(True),
                User.deleted_at.is_(None),
            )
        )
        return result.scalars().all()

    async def engineers_in_account(self, account_id: uuid.UUID, *, only_ids: Sequence[uuid.UUID] | None = None,
                                   except_ids: Sequence[uuid.UUID] = ()) -> Sequence[User]:
        """Active, live engineers, admins and owners of the account (who is told of an escalation): of `only_ids`
        when given, but never `except_ids`."""
        query = select(User).where(
            User.account_id == account_id, User.account_role.in_(ENGINEER_ROLES),
            User.is_active.is_(True), User.deleted_at.is_(None),
        )
        if only_ids is not None:
            query = query.where(User.id.in_(list(only_ids)))
        if except_ids:
            query = query.where(User.id.not_in(list(except_ids)))
        return (await self.session.scalars(query.order_by(User.created_at, User.id))).all()

    async def update(self, user: User, *, account_role: str | None, is_active: bool | None) -> User:
        """Change role and/or active flag."""
        if account_role is not None:
            user.account_role = account_role
        if is_active is not None:
            user.is_active = is_active
        await self.session.flush()
        await self.session.refresh(user)
        return user

    async def soft_delete(self, user: User) -> None:
        """Stamp `deleted_at`; the row stays for audit and foreign keys."""
        user.deleted_at = datetime.now(UTC)
        user.is_active = False
        await self.session.flush()
