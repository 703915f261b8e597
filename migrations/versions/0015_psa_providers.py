"""Autotask and HaloPSA beside ConnectWise: provider settings, a display name and target statuses on a connection

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 13:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("psa_connections", sa.Column("settings", postgresql.JSONB(astext_type=sa.Text()),
                                               server_default=sa.text("'{}'::jsonb"), nullable=False))
    op.add_column("psa_connections", sa.Column("display_name", sa.String(length=100), nullable=True))
    op.add_column("psa_connections", sa.Column("resolved_status_id", sa.Integer(), nullable=True))
    op.add_column("psa_connections", sa.Column("escalated_status_id", sa.Integer(), nullable=True))
    op.alter_column("psa_connections", "client_id", existing_type=sa.String(length=100), nullable=True)
    op.drop_constraint(op.f("ck_psa_connections_provider_valid"), "psa_connections", type_="check")
    op.create_check_constraint(op.f("ck_psa_connections_provider_valid"), "psa_connections",
                               "provider IN ('connectwise', 'autotask', 'halopsa')")
    op.add_column("psa_writebacks", sa.Column("time_minutes", sa.Integer(), nullable=True))
    op.add_column("psa_writebacks", sa.Column("time_entry_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("psa_writebacks", "time_entry_id")
    op.drop_column("psa_writebacks", "time_minutes")
    op.drop_constraint(op.f("ck_psa_connections_provider_valid"), "psa_connections", type_="check")
    op.execute("DELETE FROM psa_connections WHERE provider <> 'connectwise'")
    op.create_check_constraint(op.f("ck_psa_connections_provider_valid"), "psa_connections",
                               "provider = 'connectwise'")
    op.alter_column("psa_connections", "client_id", existing_type=sa.String(length=100), nullable=False)
    op.drop_column("psa_connections", "escalated_status_id")
    op.drop_column("psa_connections", "resolved_status_id")
    op.drop_column("psa_connections", "display_name")
    op.drop_column("psa_connections", "settings")
