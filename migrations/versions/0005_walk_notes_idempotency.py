"""walk notes as rows, note_count; idempotency keys

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 19:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "l1_walk_notes",
        sa.Column("session_id", sa.UUID(), nullable=False),
        sa.Column("batch_id", sa.String(length=300), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.UUID(), nullable=False),
        sa.ForeignKeyConstraint(["session_id"], ["l1_walk_sessions.id"],
                                name=op.f("fk_l1_walk_notes_session_id_l1_walk_sessions"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_l1_walk_notes")),
        sa.UniqueConstraint("session_id", "batch_id", "position", name="uq_l1_walk_notes_batch"),
    )
    op.create_index("ix_l1_walk_notes_session_order", "l1_walk_notes", ["session_id", "created_at", "position"])
    op.add_column("l1_walk_sessions", sa.Column("note_count", sa.Integer(), server_default="0", nullable=False))
    # Existing notes move from the JSONB column to rows, in their order.
    op.execute("""
        INSERT INTO l1_walk_notes (id, session_id, batch_id, position, text, ts, created_at)
        SELECT gen_random_uuid(), s.id, 'migrated', n.ordinality::int, n.value->>'text',
               (n.value->>'ts')::timestamptz, s.last_step_at
        FROM l1_walk_sessions s, jsonb_array_elements(s.walk_notes) WITH ORDINALITY AS n(value, ordinality)
    """)
    op.execute("UPDATE l1_walk_sessions SET note_count = jsonb_array_length(walk_notes)")
    op.drop_column("l1_walk_sessions", "walk_notes")

    op.create_table(
        "idempotency_keys",
        sa.Column("account_id", sa.UUID(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("path", sa.String(length=2000), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("state IN ('in_flight', 'done')", name=op.f("ck_idempotency_keys_state_valid")),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"],
                                name=op.f("fk_idempotency_keys_account_id_accounts"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("account_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index("ix_idempotency_keys_expires_at", "idempotency_keys", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_expires_at", table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.add_column("l1_walk_sessions", sa.Column("walk_notes", postgresql.JSONB(astext_type=sa.Text()),
                                                server_default=sa.text("'[]'::jsonb"), nullable=False))
    op.execute("""
        UPDATE l1_walk_sessions s SET walk_notes = COALESCE((
            SELECT jsonb_agg(jsonb_build_object('text', n.text, 'ts', n.ts) ORDER BY n.created_at, n.position)
            FROM l1_walk_notes n WHERE n.session_id = s.id), '[]'::jsonb)
    """)
    op.drop_column("l1_walk_sessions", "note_count")
    op.drop_index("ix_l1_walk_notes_session_order", table_name="l1_walk_notes")
    op.drop_table("l1_walk_notes")
