"""The L1 workspace: categories, authored flows, internal tickets, walk sessions and flow proposals."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, Timestamps, UUIDPrimaryKey
from workflows.contracts.walk import SESSION_KINDS, WALK_STATUSES

# No workflow contract types these two, so the model keeps their values.
TICKET_STATUSES = ("open", "resolved", "escalated", "abandoned")
PROPOSAL_STATUSES = ("pending", "approved", "rejected")


def _account_fk() -> Mapped[uuid.UUID]:
    return mapped_column(
        UUID(as_uuid=True), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    )


def _user_fk() -> Mapped[uuid.UUID | None]:
    # Users are soft-deleted, so the row survives; SET NULL only matters if an account is purged.
    return mapped_column(UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"), nullable=True)


class L1Category(UUIDPrimaryKey, Timestamps, Base):
    """A problem category: whether L1 may walk it and who hears about its escalations."""

    __tablename__ = "l1_categories"
    __table_args__ = (UniqueConstraint("account_id", "name", name="uq_l1_categories_account_name"),)

    account_id: Mapped[uuid.UUID] = _account_fk()
    name: Mapped[str] = mapped_column(String(60), nullable=False)
    in_scope: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    escalation_recipient_ids: Mapped[list[str]] = mapped_column(JSONB, nullable=False, default=list)


class L1Flow(UUIDPrimaryKey, Timestamps, Base):
    """An authored decision tree `{root, nodes:{id:{question, options:[{label, next?, resolution?}]}}}`."""

    __tablename__ = "l1_flows"

    account_id: Mapped[uuid.UUID] = _account_fk()
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    category: Mapped[str] = mapped_column(String(60), nullable=False)
    keywords: Mapped[list[str]] = mapped_column(JSONB, nullable=False, default=list)
    tree: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    source: Mapped[str] = mapped_column(String(20), nullable=False, default="authored")
    created_by_user_id: Mapped[uuid.UUID | None] = _user_fk()


class InternalTicket(UUIDPrimaryKey, Timestamps, Base):
    """The ticket an intake opens when no PSA ticket is linked."""

    __tablename__ = "internal_tickets"
    __table_args__ = (CheckConstraint(f"status IN {TICKET_STATUSES!r}", name="status_valid"),)

    account_id: Mapped[uuid.UUID] = _account_fk()
    created_by_user_id: Mapped[uuid.UUID | None] = _user_fk()
    problem_statement: Mapped[str] = mapped_column(Text, nullable=False)
    customer_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    customer_contact: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="open")


class L1WalkSession(UUIDPrimaryKey, Timestamps, Base):
    """One L1 walk; its workflow (`walk-{id}`) owns every change after creation."""

    __tablename__ = "l1_walk_sessions"
    __table_args__ = (
        CheckConstraint(f"status IN {WALK_STATUSES!r}", name="status_valid"),
        CheckConstraint(f"session_kind IN {SESSION_KINDS!r}", name="session_kind_valid"),
        Index("ix_l1_walk_sessions_user_status_last_step", "created_by_user_id", "status", "last_step_at"),
        Index(
            "ix_l1_walk_sessions_escalated",
            "account_id",
            "escalated_at",
            postgresql_where=text("status = 'escalated'"),
        ),
    )

    account_id: Mapped[uuid.UUID] = _account_fk()
    created_by_user_id: Mapped[uuid.UUID | None] = _user_fk()
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="active")
    session_kind: Mapped[str] = mapped_column(String(20), nullable=False)
    ticket_id: Mapped[str] = mapped_column(String(64), nullable=False)
    ticket_kind: Mapped[str] = mapped_column(String(20), nullable=False, default="internal")
    category: Mapped[str | None] = mapped_column(String(60), nullable=True)
    problem_text: Mapped[str] = mapped_column(Text, nullable=False, default="")
    flow_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("l1_flows.id", ondelete="SET NULL"), nullable=True
    )
    walked_path: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, default=list)
    note_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    pending_node: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    depth: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    helpful: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    resolution_notes: Mapped[str | None] = mapped_column(Text, nullable=True)
    escalation_reason_category: Mapped[str | None] = mapped_column(String(60), nullable=True)
    escalation_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_step_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    abandoned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class L1WalkNote(UUIDPrimaryKey, Base):
    """A note the tech typed on a walk: rows, so a walk's notes never grow a workflow payload."""

    __tablename__ = "l1_walk_notes"
    __table_args__ = (
        # One batch is one notes update; retrying its insert (same batch id) adds nothing.
        UniqueConstraint("session_id", "batch_id", "position", name="uq_l1_walk_notes_batch"),
        Index("ix_l1_walk_notes_session_order", "session_id", "created_at", "position"),
    )

    session_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("l1_walk_sessions.id", ondelete="CASCADE"), nullable=False
    )
    batch_id: Mapped[str] = mapped_column(String(300), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class FlowProposal(UUIDPrimaryKey, Timestamps, Base):
    """A flow learned from a resolved, helpful AI-built walk, waiting for an admin's review."""

    __tablename__ = "flow_proposals"
    __table_args__ = (CheckConstraint(f"status IN {PROPOSAL_STATUSES!r}", name="status_valid"),)

    account_id: Mapped[uuid.UUID] = _account_fk()
    # CASCADE: deleting a walk must not leave a proposal pointing at nothing.
    l1_session_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("l1_walk_sessions.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    category: Mapped[str] = mapped_column(String(60), nullable=False)
    keywords: Mapped[list[str]] = mapped_column(JSONB, nullable=False, default=list)
    tree: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    validated_by_outcome: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    reviewed_by_user_id: Mapped[uuid.UUID | None] = _user_fk()
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    flow_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("l1_flows.id", ondelete="SET NULL"), nullable=True
    )
