"""AI troubleshooting sessions, their transcripts, suggested fixes and cached document previews.

A session's workflow (`session-{id}`) and each fix's workflow (`fix-{id}`) own every change; the API
only reads these tables.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, Timestamps, UUIDPrimaryKey
from workflows.contracts.ai_session import FIX_SOURCES, INTAKE_TYPES, SESSION_STATUSES, SESSION_TYPES
from workflows.contracts.fix import FIX_STATUSES
from workflows.contracts.llm import CHAT_ROLES, CONFIDENCE_TIERS


class AiSession(UUIDPrimaryKey, Timestamps, Base):
    """One AI-assisted troubleshooting session of an engineer."""

    __tablename__ = "ai_sessions"
    __table_args__ = (
        CheckConstraint(f"status IN {SESSION_STATUSES!r}", name="status_valid"),
        CheckConstraint(f"session_type IN {SESSION_TYPES!r}", name="session_type_valid"),
        CheckConstraint(f"intake_type IN {INTAKE_TYPES!r}", name="intake_type_valid"),
        CheckConstraint(f"confidence_tier IN {CONFIDENCE_TIERS!r}", name="confidence_tier_valid"),
        Index("ix_ai_sessions_account_created", "account_id", text("created_at DESC")),
    )

    account_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    session_type: Mapped[str] = mapped_column(String(20), nullable=False)
    intake_type: Mapped[str] = mapped_column(String(20), nullable=False)
    intake_content: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    problem_summary: Mapped[str] = mapped_column(Text, nullable=False, default="")
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="active")
    confidence: Mapped[float] = mapped_column(Float, nullable=False, default=0.0)
    confidence_tier: Mapped[str] = mapped_column(String(20), nullable=False, default="discovery")
    # Bumped once by every accepted change (turn, fix, outcome, close): previews are cached by it.
    state_version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    message_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    handoff_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    psa_connection_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("psa_connections.id", ondelete="SET NULL"), nullable=True
    )
    psa_ticket_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resolution_note_markdown: Mapped[str | None] = mapped_column(Text, nullable=True)
    escalation_package_markdown: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_activity_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    closed_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )


class AiSessionMessage(UUIDPrimaryKey, Base):
    """One message of a session's transcript (rows, so the transcript never grows a workflow payload)."""

    __tablename__ = "ai_session_messages"
    __table_args__ = (
        CheckConstraint(f"role IN {CHAT_ROLES!r}", name="role_valid"),
        UniqueConstraint("session_id", "seq", name="uq_ai_session_messages_seq"),
        # One turn (the update's id) stores its two messages once, however often its activity is retried.
        UniqueConstraint("session_id", "turn_id", "role", name="uq_ai_session_messages_turn"),
    )

    session_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("ai_sessions.id", ondelete="CASCADE"), nullable=False
    )
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    turn_id: Mapped[str] = mapped_column(String(300), nullable=False)
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class SuggestedFix(UUIDPrimaryKey, Timestamps, Base):
    """A candidate fix of a session (the AI's or an engineer's); at most one per session is not superseded."""

    __tablename__ = "session_suggested_fixes"
    __table_args__ = (
        CheckConstraint(f"status IN {FIX_STATUSES!r}", name="status_valid"),
        CheckConstraint(f"source IN {FIX_SOURCES!r}", name="source_valid"),
        CheckConstraint("confidence_pct BETWEEN 0 AND 100", name="confidence_pct_range"),
        Index("ix_session_suggested_fixes_session_created", "session_id", "created_at"),
        Index("uq_session_suggested_fixes_active", "session_id", unique=True,
              postgresql_where=text("superseded_at IS NULL")),
    )

    session_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("ai_sessions.id", ondelete="CASCADE"), nullable=False
    )
    account_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    source: Mapped[str] = mapped_column(String(20), nullable=False, default="ai")
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    confidence_pct: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    status: Mapped[str] = mapped_column(String(30), nullable=False, default="proposed")
    # Bumped by every accepted change; the fix workflow's writes are guarded by it.
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Which command made the latest change: a retried activity recognises its own committed write by it.
    last_change_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    applied_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    partial_notes: Mapped[str | None] = mapped_column(Text, nullable=True)
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    pending_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    ai_outcome_proposal: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    superseded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    # While applied_pending: who parked it, when, the schedule of notices and how many went out.
    parked_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    parked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reminder_schedule: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, default=list)
    notices_sent: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_reminder_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    verification_overdue_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class SessionDocument(Base):
    """A generated preview, cached by (session, kind, state_version) across API processes."""

    __tablename__ = "ai_session_documents"

    session_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("ai_sessions.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(30), primary_key=True)
    state_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    markdown: Mapped[str] = mapped_column(Text, nullable=False)
    provider: Mapped[str] = mapped_column(String(40), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)
