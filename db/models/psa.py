"""PSA connections (credentials encrypted at rest) and the write-back log of what was posted to tickets."""

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
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base, Timestamps, UUIDPrimaryKey
from workflows.contracts.psa import PSA_PROVIDERS, STATUS_CHANGES, WRITEBACK_KINDS, WRITEBACK_STATES


class PsaConnection(UUIDPrimaryKey, Timestamps, Base):
    """An account's link to its PSA; only `credentials_encrypted` holds secrets (Fernet, key from config).

    Every provider fills `site_url` (where its API is: ConnectWise's site, Autotask's zone or discovery root,
    HaloPSA's API root) and `company_id` (who we are there: the CW company, the Autotask API user, the Halo
    client id), so one unique index keeps one live connection per instance and identity; the provider's other
    non-secret fields are in `settings`.
    """

    __tablename__ = "psa_connections"
    __table_args__ = (
        CheckConstraint(f"provider IN {PSA_PROVIDERS!r}", name="provider_valid"),
        # One live connection per PSA instance and company: a second POST is a 409, not a twin.
        Index("uq_psa_connections_live_site", "account_id", "provider", text("lower(site_url)"),
              text("lower(company_id)"), unique=True, postgresql_where=text("deleted_at IS NULL")),
    )

    account_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    provider: Mapped[str] = mapped_column(String(20), nullable=False)
    site_url: Mapped[str] = mapped_column(String(300), nullable=False)
    company_id: Mapped[str] = mapped_column(String(100), nullable=False)
    client_id: Mapped[str | None] = mapped_column(String(100), nullable=True)  # ConnectWise's clientId header
    codebase: Mapped[str | None] = mapped_column(String(100), nullable=True)
    settings: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"),
                                                     default=dict)
    display_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # The statuses a resolved / escalated ticket is set to; they win over the account's cw_* fallbacks.
    resolved_status_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    escalated_status_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    credentials_encrypted: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    # Soft delete: sessions and the write-back log keep pointing at what was used.
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class PsaWriteback(UUIDPrimaryKey, Timestamps, Base):
    """One document posted (or being posted) to a ticket: the note, the status change, its verification, drift."""

    __tablename__ = "psa_writebacks"
    __table_args__ = (
        CheckConstraint(f"kind IN {WRITEBACK_KINDS!r}", name="kind_valid"),
        CheckConstraint(f"state IN {WRITEBACK_STATES!r}", name="state_valid"),
        CheckConstraint(f"status_change IN {STATUS_CHANGES!r}", name="status_change_valid"),
        # At most one unfinished write-back per session and kind: a retry resumes it instead of posting again.
        Index("uq_psa_writebacks_open", "session_id", "kind", unique=True,
              postgresql_where=text("state <> 'completed'")),
        Index("ix_psa_writebacks_session_created", "session_id", "created_at"),
    )

    account_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False, index=True
    )
    session_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("ai_sessions.id", ondelete="CASCADE"), nullable=False
    )
    connection_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("psa_connections.id", ondelete="CASCADE"), nullable=False
    )
    provider: Mapped[str] = mapped_column(String(20), nullable=False)
    ticket_id: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    note_type: Mapped[str] = mapped_column(String(30), nullable=False)
    state: Mapped[str] = mapped_column(String(20), nullable=False, default="pending")
    markdown: Mapped[str] = mapped_column(Text, nullable=False)  # the text on the ticket (once posted)
    # What the latest attempt asked to post (an edited re-post differs from `markdown` until the note is
    # replaced): the psa.* activities read it by id, so a 50 KB note is not copied into every activity input.
    requested_markdown: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    posted_by_user_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    external_note_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Work logged as time with the note: asked for, and the PSA's id of the entry once it exists.
    time_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    time_entry_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    note_reused: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    note_posted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    target_status_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status_change: Mapped[str | None] = mapped_column(String(20), nullable=True)
    status_skipped_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    verified_status_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    verified_status_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The re-read after a verified change: due at recheck_at, done at rechecked_at; drift_* when it moved.
    recheck_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    rechecked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    recheck_status_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    recheck_status_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    drift_detected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
