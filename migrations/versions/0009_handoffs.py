"""Handoffs (park / escalate) and the escalation event log behind the live queue

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-21 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"),
                                   ondelete=ondelete)


def upgrade() -> None:
    now = sa.text("now()")
    op.create_table(
        "session_handoffs",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("session_id", sa.UUID(), nullable=False),
        sa.Column("intent", sa.String(10), nullable=False),
        sa.Column("engineer_notes", sa.Text(), nullable=False),
        sa.Column("snapshot", postgresql.JSONB(), nullable=False),
        sa.Column("priority", sa.String(10), nullable=False),
        sa.Column("target_user_id", sa.UUID(), nullable=True),
        sa.Column("created_by_user_id", sa.UUID(), nullable=True),
        sa.Column("ai_assessment", sa.Text(), nullable=True),
        sa.Column("ai_assessment_data", postgresql.JSONB(), nullable=True),
        sa.Column("assessment_status", sa.String(10), nullable=False),
        sa.Column("assessment_error", sa.Text(), nullable=True),
        sa.Column("claimed_by_user_id", sa.UUID(), nullable=True),
        sa.Column("claimed_by_name", sa.String(200), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("team_notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("renotify_count", sa.Integer(), nullable=False),
        sa.Column("next_renotify_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("renotify_every_s", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        sa.CheckConstraint("intent IN ('park', 'escalate')", name=op.f("ck_session_handoffs_intent_valid")),
        sa.CheckConstraint("priority IN ('low', 'normal', 'high', 'urgent')",
                           name=op.f("ck_session_handoffs_priority_valid")),
        sa.CheckConstraint("assessment_status IN ('pending', 'ready', 'failed')",
                           name=op.f("ck_session_handoffs_assessment_status_valid")),
        _fk("session_handoffs", "account_id", "accounts", "CASCADE"),
        _fk("session_handoffs", "session_id", "ai_sessions", "CASCADE"),
        sa.ForeignKeyConstraint(["target_user_id"], ["users.id"],
                                name=op.f("fk_session_handoffs_target_user_id_users"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["created_by_user_id"], ["users.id"],
                                name=op.f("fk_session_handoffs_created_by_user_id_users"), ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["claimed_by_user_id"], ["users.id"],
                                name=op.f("fk_session_handoffs_claimed_by_user_id_users"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_handoffs")),
    )
    op.create_index(op.f("ix_session_handoffs_account_id"), "session_handoffs", ["account_id"])
    op.create_index("ix_session_handoffs_session_created", "session_handoffs", ["session_id", "created_at"])
    op.create_index("ix_session_handoffs_queue", "session_handoffs", ["account_id", "created_at"],
                    postgresql_where=sa.text("intent = 'escalate' AND claimed_at IS NULL"))
    op.create_index("uq_session_handoffs_open", "session_handoffs", ["session_id"], unique=True,
                    postgresql_where=sa.text("claimed_at IS NULL"))

    op.create_table(
        "escalation_events",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("handoff_id", sa.UUID(), nullable=False),
        sa.Column("data", postgresql.JSONB(), nullable=False),
        sa.Column("dedupe_key", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("clock_timestamp()"),
                  nullable=False),
        sa.CheckConstraint("kind IN ('handoff_created', 'handoff_assessment_ready', 'handoff_claimed', "
                           "'handoff_priority_raised')", name=op.f("ck_escalation_events_kind_valid")),
        _fk("escalation_events", "account_id", "accounts", "CASCADE"),
        _fk("escalation_events", "handoff_id", "session_handoffs", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalation_events")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_escalation_events_dedupe_key")),
    )
    op.create_index("ix_escalation_events_account_id_id", "escalation_events", ["account_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_escalation_events_account_id_id", table_name="escalation_events")
    op.drop_table("escalation_events")
    op.drop_index("uq_session_handoffs_open", table_name="session_handoffs")
    op.drop_index("ix_session_handoffs_queue", table_name="session_handoffs")
    op.drop_index("ix_session_handoffs_session_created", table_name="session_handoffs")
    op.drop_index(op.f("ix_session_handoffs_account_id"), table_name="session_handoffs")
    op.drop_table("session_handoffs")
