"""Escalation events are numbered per account (`account_seq`): stream ids tell nothing of other accounts

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("escalation_events", sa.Column("account_seq", sa.BigInteger(), nullable=True))
    # Existing events keep their order: numbered by id within each account. Browsers holding an old (global)
    # id resume from their account's newest number (a cursor above it is clamped).
    op.execute("""
        UPDATE escalation_events e SET account_seq = n.seq
        FROM (SELECT id, row_number() OVER (PARTITION BY account_id ORDER BY id) AS seq
              FROM escalation_events) n
        WHERE e.id = n.id
    """)
    op.alter_column("escalation_events", "account_seq", nullable=False)
    op.create_index("uq_escalation_events_account_seq", "escalation_events", ["account_id", "account_seq"],
                    unique=True)
    op.drop_index("ix_escalation_events_account_id_id", table_name="escalation_events")


def downgrade() -> None:
    op.create_index("ix_escalation_events_account_id_id", "escalation_events", ["account_id", "id"])
    op.drop_index("uq_escalation_events_account_seq", table_name="escalation_events")
    op.drop_column("escalation_events", "account_seq")
