"""Users and their account roles."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, get_args

from sqlalchemy import Boolean, CheckConstraint, DateTime, ForeignKey, String
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, Timestamps, UUIDPrimaryKey

AccountRole = Literal["owner", "admin", "engineer", "l1_tech", "viewer"]
ACCOUNT_ROLES: tuple[str, ...] = get_args(AccountRole)
# Higher rank may do everything a lower rank may.
ROLE_RANK: dict[str, int] = {"viewer": 0, "l1_tech": 1, "engineer": 2, "admin": 3, "owner": 4}


class User(UUIDPrimaryKey, Timestamps, Base):
    """A person who logs in; belongs to one account with one role."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(f"account_role IN {ACCOUNT_ROLES!r}", name="account_role_valid"),
    )

    account_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    email: Mapped[str] = mapped_column(String(320), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    hashed_password: Mapped[str] = mapped_column(String(300), nullable=False)
    account_role: Mapped[str] = mapped_column(String(20), nullable=False, default="engineer")
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    def has_role(self, minimum: str) -> bool:
        """True when this user's role is `minimum` or above."""
        return ROLE_RANK[self.account_role] >= ROLE_RANK[minimum]

    @property
    def can_log_in(self) -> bool:
        """Inactive and soft-deleted users are refused at login and on every request."""
        return self.is_active and self.deleted_at is None
