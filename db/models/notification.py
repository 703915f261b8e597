"""Per-user in-app notifications (fix-verification reminders, handoff events, PSA drift)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Index, String, Text, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, UUIDPrimaryKey
from workflows.contracts.notify import EMAIL_STATUSES, NOTIFICATION_KINDS

# EMAIL_STATUSES: `retrying` when an attempt failed for a reason that may pass (the server unreachable) and
# another is coming; `failed` when refused, or still failing as the retry window (MAIL_RETRY_WINDOW) ended.
TITLE_MAX = 300
DEDUPE_KEY_MAX = 200


class Notification(UUIDPrimaryKey, Base):
    """One notification for one user; created by workflow activities, read and marked read over HTTP."""

    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint(f"kind IN {NOTIFICATION_KINDS!r}", name="kind_valid"),
        # NULL passes a CHECK: no email attempt recorded yet.
        CheckConstraint(f"email_status IN {EMAIL_STATUSES!r}", name="email_status_valid"),
        # An activity retried after its insert committed finds the row instead of adding a second one. NULL
        # keys are distinct, so notifications without a key are never deduplicated.
        UniqueConstraint("user_id", "dedupe_key", name="uq_notifications_user_dedupe_key"),
        Index("ix_notifications_user_created", "user_id", text("created_at DESC")),
        Index("ix_notifications_user_unread", "user_id", text("created_at DESC"),
              postgresql_where=text("read_at IS NULL")),
    )

    account_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    title: Mapped[str] = mapped_column(String(TITLE_MAX), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False, default="")
    # What the notification is about; no foreign keys yet (those tables come with their workflows).
    session_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    fix_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    handoff_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), nullable=True)
    dedupe_key: Mapped[str | None] = mapped_column(String(DEDUPE_KEY_MAX), nullable=True)
    email_status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    email_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # clock_timestamp(), not now(): several notifications made in one transaction still list in creation order.
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp(), nullable=False
    )
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
