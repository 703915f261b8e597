"""The text a write-back attempt asked to post, kept on the row so activities read it by id

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 17:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Null on rows written before: readers fall back to `markdown`, which held the asked-for text until posted.
    op.add_column("psa_writebacks", sa.Column("requested_markdown", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("psa_writebacks", "requested_markdown")
