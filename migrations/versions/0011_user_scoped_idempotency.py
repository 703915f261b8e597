"""Idempotency keys belong to the user who sent them: (account, user, key)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 17:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Stored answers are a 24 h retry cache and do not say whose they were: a key cannot be attributed to a
    # user, so they go (a retry in flight across the upgrade runs as a new request).
    op.execute("DELETE FROM idempotency_keys")
    op.add_column("idempotency_keys", sa.Column("user_id", sa.UUID(), nullable=False))
    op.create_foreign_key(op.f("fk_idempotency_keys_user_id_users"), "idempotency_keys", "users", ["user_id"],
                          ["id"], ondelete="CASCADE")
    op.drop_constraint(op.f("pk_idempotency_keys"), "idempotency_keys", type_="primary")
    op.create_primary_key(op.f("pk_idempotency_keys"), "idempotency_keys", ["account_id", "user_id", "key"])


def downgrade() -> None:
    op.execute("DELETE FROM idempotency_keys")
    op.drop_constraint(op.f("pk_idempotency_keys"), "idempotency_keys", type_="primary")
    op.create_primary_key(op.f("pk_idempotency_keys"), "idempotency_keys", ["account_id", "key"])
    op.drop_constraint(op.f("fk_idempotency_keys_user_id_users"), "idempotency_keys", type_="foreignkey")
    op.drop_column("idempotency_keys", "user_id")
