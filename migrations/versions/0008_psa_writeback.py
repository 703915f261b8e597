"""PSA connections and the write-back log; sessions point at their connection

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21 23:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"),
                                   ondelete=ondelete)


def upgrade() -> None:
    now = sa.text("now()")
    op.create_table(
        "psa_connections",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("provider", sa.String(20), nullable=False),
        sa.Column("site_url", sa.String(300), nullable=False),
        sa.Column("company_id", sa.String(100), nullable=False),
        sa.Column("client_id", sa.String(100), nullable=False),
        sa.Column("codebase", sa.String(100), nullable=True),
        sa.Column("credentials_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("created_by_user_id", sa.UUID(), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        sa.CheckConstraint("provider = 'connectwise'", name=op.f("ck_psa_connections_provider_valid")),
        _fk("psa_connections", "account_id", "accounts", "CASCADE"),
        sa.ForeignKeyConstraint(["created_by_user_id"], ["users.id"],
                                name=op.f("fk_psa_connections_created_by_user_id_users"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_psa_connections")),
    )
    op.create_index(op.f("ix_psa_connections_account_id"), "psa_connections", ["account_id"])
    op.create_index("uq_psa_connections_live_site", "psa_connections",
                    ["account_id", "provider", sa.text("lower(site_url)"), sa.text("lower(company_id)")],
                    unique=True, postgresql_where=sa.text("deleted_at IS NULL"))
    op.create_foreign_key(op.f("fk_ai_sessions_psa_connection_id_psa_connections"), "ai_sessions",
                          "psa_connections", ["psa_connection_id"], ["id"], ondelete="SET NULL")

    op.create_table(
        "psa_writebacks",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("session_id", sa.UUID(), nullable=False),
        sa.Column("connection_id", sa.UUID(), nullable=False),
        sa.Column("provider", sa.String(20), nullable=False),
        sa.Column("ticket_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("note_type", sa.String(30), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("markdown", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("posted_by_user_id", sa.UUID(), nullable=True),
        sa.Column("external_note_id", sa.String(64), nullable=True),
        sa.Column("note_reused", sa.Boolean(), nullable=False),
        sa.Column("note_posted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("target_status_id", sa.Integer(), nullable=True),
        sa.Column("status_change", sa.String(20), nullable=True),
        sa.Column("status_skipped_reason", sa.Text(), nullable=True),
        sa.Column("verified_status_id", sa.Integer(), nullable=True),
        sa.Column("verified_status_name", sa.String(200), nullable=True),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recheck_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rechecked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recheck_status_id", sa.Integer(), nullable=True),
        sa.Column("recheck_status_name", sa.String(200), nullable=True),
        sa.Column("drift_detected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        sa.CheckConstraint("kind IN ('resolution_note', 'escalation_package')",
                           name=op.f("ck_psa_writebacks_kind_valid")),
        sa.CheckConstraint("state IN ('pending', 'note_posted', 'completed')", name=op.f("ck_psa_writebacks_state_valid")),
        sa.CheckConstraint("status_change IN ('verified', 'did_not_verify', 'skipped')",
                           name=op.f("ck_psa_writebacks_status_change_valid")),
        _fk("psa_writebacks", "account_id", "accounts", "CASCADE"),
        sa.ForeignKeyConstraint(["session_id"], ["ai_sessions.id"],
                                name=op.f("fk_psa_writebacks_session_id_ai_sessions"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["connection_id"], ["psa_connections.id"],
                                name=op.f("fk_psa_writebacks_connection_id_psa_connections"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["posted_by_user_id"], ["users.id"],
                                name=op.f("fk_psa_writebacks_posted_by_user_id_users"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_psa_writebacks")),
    )
    op.create_index(op.f("ix_psa_writebacks_account_id"), "psa_writebacks", ["account_id"])
    op.create_index("ix_psa_writebacks_session_created", "psa_writebacks", ["session_id", "created_at"])
    op.create_index("uq_psa_writebacks_open", "psa_writebacks", ["session_id", "kind"], unique=True,
                    postgresql_where=sa.text("state <> 'completed'"))


def downgrade() -> None:
    op.drop_index("uq_psa_writebacks_open", table_name="psa_writebacks")
    op.drop_index("ix_psa_writebacks_session_created", table_name="psa_writebacks")
    op.drop_index(op.f("ix_psa_writebacks_account_id"), table_name="psa_writebacks")
    op.drop_table("psa_writebacks")
    op.drop_constraint(op.f("fk_ai_sessions_psa_connection_id_psa_connections"), "ai_sessions", type_="foreignkey")
    op.drop_index("uq_psa_connections_live_site", table_name="psa_connections")
    op.drop_index(op.f("ix_psa_connections_account_id"), table_name="psa_connections")
    op.drop_table("psa_connections")
