"""AI troubleshooting sessions, transcripts, suggested fixes and cached previews

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21 21:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FIX_STATUSES = ("'proposed', 'applied_success', 'applied_failed', 'applied_partial', 'applied_pending', "
                "'dismissed'")


def _user_fk(column: str, table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], ["users.id"], name=op.f(f"fk_{table}_{column}_users"),
                                   ondelete="SET NULL")


def upgrade() -> None:
    now = sa.text("now()")
    op.create_table(
        "ai_sessions",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("user_id", sa.UUID(), nullable=True),
        sa.Column("session_type", sa.String(20), nullable=False),
        sa.Column("intake_type", sa.String(20), nullable=False),
        sa.Column("intake_content", postgresql.JSONB(), nullable=False),
        sa.Column("problem_summary", sa.Text(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("confidence_tier", sa.String(20), nullable=False),
        sa.Column("state_version", sa.Integer(), nullable=False),
        sa.Column("message_count", sa.Integer(), nullable=False),
        sa.Column("handoff_count", sa.Integer(), nullable=False),
        sa.Column("psa_connection_id", sa.UUID(), nullable=True),
        sa.Column("psa_ticket_id", sa.String(64), nullable=True),
        sa.Column("resolution_note_markdown", sa.Text(), nullable=True),
        sa.Column("escalation_package_markdown", sa.Text(), nullable=True),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by_user_id", sa.UUID(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        sa.CheckConstraint("status IN ('active', 'paused', 'escalated', 'resolved')",
                           name=op.f("ck_ai_sessions_status_valid")),
        sa.CheckConstraint("session_type IN ('guided', 'chat')", name=op.f("ck_ai_sessions_session_type_valid")),
        sa.CheckConstraint("intake_type IN ('free_text', 'psa_ticket')", name=op.f("ck_ai_sessions_intake_type_valid")),
        sa.CheckConstraint("confidence_tier IN ('discovery', 'exploring', 'guided')",
                           name=op.f("ck_ai_sessions_confidence_tier_valid")),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_ai_sessions_account_id_accounts"),
                                ondelete="CASCADE"),
        _user_fk("user_id", "ai_sessions"),
        _user_fk("closed_by_user_id", "ai_sessions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_sessions")),
    )
    op.create_index(op.f("ix_ai_sessions_account_id"), "ai_sessions", ["account_id"])
    op.create_index("ix_ai_sessions_account_created", "ai_sessions", ["account_id", sa.text("created_at DESC")])

    op.create_table(
        "ai_session_messages",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("session_id", sa.UUID(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("turn_id", sa.String(300), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('user', 'assistant')", name=op.f("ck_ai_session_messages_role_valid")),
        sa.ForeignKeyConstraint(["session_id"], ["ai_sessions.id"],
                                name=op.f("fk_ai_session_messages_session_id_ai_sessions"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_session_messages")),
        sa.UniqueConstraint("session_id", "seq", name="uq_ai_session_messages_seq"),
        sa.UniqueConstraint("session_id", "turn_id", "role", name="uq_ai_session_messages_turn"),
    )

    op.create_table(
        "session_suggested_fixes",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("session_id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("confidence_pct", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(30), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("last_change_id", sa.String(300), nullable=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("partial_notes", sa.Text(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("pending_reason", sa.Text(), nullable=True),
        sa.Column("ai_outcome_proposal", postgresql.JSONB(), nullable=True),
        sa.Column("superseded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_user_id", sa.UUID(), nullable=True),
        sa.Column("parked_by_user_id", sa.UUID(), nullable=True),
        sa.Column("parked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reminder_schedule", postgresql.JSONB(), nullable=False),
        sa.Column("notices_sent", sa.Integer(), nullable=False),
        sa.Column("next_reminder_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("verification_overdue_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        sa.CheckConstraint(f"status IN ({FIX_STATUSES})", name=op.f("ck_session_suggested_fixes_status_valid")),
        sa.CheckConstraint("source IN ('ai', 'engineer')", name=op.f("ck_session_suggested_fixes_source_valid")),
        sa.CheckConstraint("confidence_pct BETWEEN 0 AND 100",
                           name=op.f("ck_session_suggested_fixes_confidence_pct_range")),
        sa.ForeignKeyConstraint(["session_id"], ["ai_sessions.id"],
                                name=op.f("fk_session_suggested_fixes_session_id_ai_sessions"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"],
                                name=op.f("fk_session_suggested_fixes_account_id_accounts"), ondelete="CASCADE"),
        _user_fk("created_by_user_id", "session_suggested_fixes"),
        _user_fk("parked_by_user_id", "session_suggested_fixes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_suggested_fixes")),
    )
    op.create_index(op.f("ix_session_suggested_fixes_account_id"), "session_suggested_fixes", ["account_id"])
    op.create_index("ix_session_suggested_fixes_session_created", "session_suggested_fixes",
                    ["session_id", "created_at"])
    op.create_index("uq_session_suggested_fixes_active", "session_suggested_fixes", ["session_id"], unique=True,
                    postgresql_where=sa.text("superseded_at IS NULL"))

    op.create_table(
        "ai_session_documents",
        sa.Column("session_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("state_version", sa.Integer(), nullable=False),
        sa.Column("markdown", sa.Text(), nullable=False),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["ai_sessions.id"],
                                name=op.f("fk_ai_session_documents_session_id_ai_sessions"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("session_id", "kind", "state_version", name=op.f("pk_ai_session_documents")),
    )


def downgrade() -> None:
    op.drop_table("ai_session_documents")
    op.drop_index("uq_session_suggested_fixes_active", table_name="session_suggested_fixes")
    op.drop_index("ix_session_suggested_fixes_session_created", table_name="session_suggested_fixes")
    op.drop_index(op.f("ix_session_suggested_fixes_account_id"), table_name="session_suggested_fixes")
    op.drop_table("session_suggested_fixes")
    op.drop_table("ai_session_messages")
    op.drop_index("ix_ai_sessions_account_created", table_name="ai_sessions")
    op.drop_index(op.f("ix_ai_sessions_account_id"), table_name="ai_sessions")
    op.drop_table("ai_sessions")
