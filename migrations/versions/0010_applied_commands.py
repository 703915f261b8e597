"""The applied-commands log: a replayed workflow command recognises its own committed write by its id

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 17:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "applied_commands",
        sa.Column("entity_id", sa.UUID(), nullable=False),
        sa.Column("command_id", sa.String(300), nullable=False),
        sa.Column("result", postgresql.JSONB(), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(["entity_id"], ["session_suggested_fixes.id"],
                                name=op.f("fk_applied_commands_entity_id_session_suggested_fixes"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("entity_id", "command_id", name=op.f("pk_applied_commands")),
    )


def downgrade() -> None:
    op.drop_table("applied_commands")
