"""l1 walks: categories, flows, internal tickets, walk sessions, flow proposals

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 08:24:02.501498
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "l1_categories",
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("in_scope", sa.Boolean(), nullable=False),
        sa.Column("escalation_recipient_ids", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_l1_categories_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_l1_categories")),
        sa.UniqueConstraint("account_id", "name", name="uq_l1_categories_account_name"),
    )
    op.create_index(op.f("ix_l1_categories_account_id"), "l1_categories", ["account_id"], unique=False)
    op.create_table(
        "internal_tickets",
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("created_by_user_id", sa.UUID(), nullable=True),
        sa.Column("problem_statement", sa.Text(), nullable=False),
        sa.Column("customer_name", sa.String(length=200), nullable=True),
        sa.Column("customer_contact", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "status IN ('open', 'resolved', 'escalated', 'abandoned')", name=op.f("ck_internal_tickets_status_valid")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_internal_tickets_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["users.id"],
            name=op.f("fk_internal_tickets_created_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_internal_tickets")),
    )
    op.create_index(op.f("ix_internal_tickets_account_id"), "internal_tickets", ["account_id"], unique=False)
    op.create_table(
        "l1_flows",
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=60), nullable=False),
        sa.Column("keywords", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("tree", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("created_by_user_id", sa.UUID(), nullable=True),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_l1_flows_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"], ["users.id"], name=op.f("fk_l1_flows_created_by_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_l1_flows")),
    )
    op.create_index(op.f("ix_l1_flows_account_id"), "l1_flows", ["account_id"], unique=False)
    op.create_table(
        "l1_walk_sessions",
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("created_by_user_id", sa.UUID(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("session_kind", sa.String(length=20), nullable=False),
        sa.Column("ticket_id", sa.String(length=64), nullable=False),
        sa.Column("ticket_kind", sa.String(length=20), nullable=False),
        sa.Column("category", sa.String(length=60), nullable=True),
        sa.Column("problem_text", sa.Text(), nullable=False),
        sa.Column("flow_id", sa.UUID(), nullable=True),
        sa.Column("walked_path", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("walk_notes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("pending_node", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("helpful", sa.Boolean(), nullable=True),
        sa.Column("resolution_notes", sa.Text(), nullable=True),
        sa.Column("escalation_reason_category", sa.String(length=60), nullable=True),
        sa.Column("escalation_reason", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_step_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("abandoned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "session_kind IN ('flow', 'ai_build', 'adhoc')", name=op.f("ck_l1_walk_sessions_session_kind_valid")
        ),
        sa.CheckConstraint(
            "status IN ('active', 'resolved', 'escalated', 'abandoned')", name=op.f("ck_l1_walk_sessions_status_valid")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_l1_walk_sessions_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["created_by_user_id"],
            ["users.id"],
            name=op.f("fk_l1_walk_sessions_created_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["flow_id"], ["l1_flows.id"], name=op.f("fk_l1_walk_sessions_flow_id_l1_flows"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_l1_walk_sessions")),
    )
    op.create_index(op.f("ix_l1_walk_sessions_account_id"), "l1_walk_sessions", ["account_id"], unique=False)
    op.create_index(
        "ix_l1_walk_sessions_escalated",
        "l1_walk_sessions",
        ["account_id", "escalated_at"],
        unique=False,
        postgresql_where=sa.text("status = 'escalated'"),
    )
    op.create_index(
        "ix_l1_walk_sessions_user_status_last_step",
        "l1_walk_sessions",
        ["created_by_user_id", "status", "last_step_at"],
        unique=False,
    )
    op.create_table(
        "flow_proposals",
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("l1_session_id", sa.UUID(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=60), nullable=False),
        sa.Column("keywords", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("tree", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("validated_by_outcome", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reviewed_by_user_id", sa.UUID(), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("flow_id", sa.UUID(), nullable=True),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'rejected')", name=op.f("ck_flow_proposals_status_valid")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_flow_proposals_account_id_accounts"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["flow_id"], ["l1_flows.id"], name=op.f("fk_flow_proposals_flow_id_l1_flows"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["l1_session_id"],
            ["l1_walk_sessions.id"],
            name=op.f("fk_flow_proposals_l1_session_id_l1_walk_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reviewed_by_user_id"],
            ["users.id"],
            name=op.f("fk_flow_proposals_reviewed_by_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_proposals")),
        sa.UniqueConstraint("l1_session_id", name=op.f("uq_flow_proposals_l1_session_id")),
    )
    op.create_index(op.f("ix_flow_proposals_account_id"), "flow_proposals", ["account_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_flow_proposals_account_id"), table_name="flow_proposals")
    op.drop_table("flow_proposals")
    op.drop_index("ix_l1_walk_sessions_user_status_last_step", table_name="l1_walk_sessions")
    op.drop_index(
        "ix_l1_walk_sessions_escalated", table_name="l1_walk_sessions", postgresql_where=sa.text("status = 'escalated'")
    )
    op.drop_index(op.f("ix_l1_walk_sessions_account_id"), table_name="l1_walk_sessions")
    op.drop_table("l1_walk_sessions")
    op.drop_index(op.f("ix_l1_flows_account_id"), table_name="l1_flows")
    op.drop_table("l1_flows")
    op.drop_index(op.f("ix_internal_tickets_account_id"), table_name="internal_tickets")
    op.drop_table("internal_tickets")
    op.drop_index(op.f("ix_l1_categories_account_id"), table_name="l1_categories")
    op.drop_table("l1_categories")
