"""Handoffs (a parked or escalated AI session) and the escalation event log the live queue replays from."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, Timestamps, UUIDPrimaryKey
from workflows.contracts.handoff import ASSESSMENT_STATUSES, ESCALATION_EVENT_KINDS, HANDOFF_INTENTS, PRIORITIES


class SessionHandoff(UUIDPrimaryKey, Timestamps, Base):
    """One park or escalation of a session; `HandoffWorkflow` (`handoff-{id}`) owns every change after creation."""

    __tablename__ = "session_handoffs"
    __table_args__ = (
        CheckConstraint(f"intent IN {HANDOFF_INTENTS!r}", name="intent_valid"),
        CheckConstraint(f"priority IN {PRIORITIES!r}", name="priority_valid"),
        CheckConstraint(f"assessment_status IN {ASSESSMENT_STATUSES!r}", name="assessment_status_valid"),
        Index("ix_session_handoffs_session_created", "session_id", "created_at"),
        # The live queue: unclaimed escalations of an account, oldest first.
        Index("ix_session_handoffs_queue", "account_id", "created_at",
              postgresql_where=text("intent = 'escalate' AND claimed_at IS NULL")),
        # A session has at most one open handoff: a second park/escalate must claim the first.
        Index("uq_session_handoffs_open", "session_id", unique=True, postgresql_where=text("claimed_at IS NULL")),
    )

    account_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    session_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("ai_sessions.id", ondelete="CASCADE"), nullable=False
    )
    intent: Mapped[str] = mapped_column(String(10), nullable=False)
    engineer_notes: Mapped[str] = mapped_column(Text, nullable=False, default="")
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    priority: Mapped[str] = mapped_column(String(10), nullable=False, default="normal")
    target_user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    ai_assessment: Mapped[str | None] = mapped_column(Text, nullable=True)
    ai_assessment_data: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    assessment_status: Mapped[str] = mapped_column(String(10), nullable=False, default="pending")
    assessment_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    claimed_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    # The name at claim time: the loser's 409 says who won even if that user is renamed or deleted later.
    claimed_by_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    team_notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    renotify_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_renotify_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    renotify_every_s: Mapped[int] = mapped_column(Integer, nullable=False, default=1800)


class EscalationEvent(Base):
    """One event of the live queue, written in the transaction of the change it reports (an outbox).

    Ids and account numbers are handed out under one advisory lock held to commit, so both follow commit
    order: listeners resume with `id > last seen`, a stream with `account_seq > Last-Event-ID`, and neither
    misses what committed meanwhile. Streams show only `account_seq`, which counts the account's own events.
    """

    __tablename__ = "escalation_events"
    __table_args__ = (
        CheckConstraint(f"kind IN {ESCALATION_EVENT_KINDS!r}", name="kind_valid"),
        Index("uq_escalation_events_account_seq", "account_id", "account_seq", unique=True),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    )
    # The event's place in its account's log (1, 2, 3, ...): the SSE `id:`, so it tells nothing of other accounts.
    account_seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    kind: Mapped[str] = mapped_column(String(40), nullable=False)
    handoff_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("session_handoffs.id", ondelete="CASCADE"), nullable=False
    )
    # Ids and the priority only: clients read the details by id.
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    # One event per (handoff, what happened): a retried activity finds it instead of logging it twice.
    dedupe_key: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp(), nullable=False
    )
