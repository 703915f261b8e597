"""Notification emails may be `retrying` (an outage is retried for a bounded window before `failed`)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 18:20:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_notifications_email_status_valid"), "notifications", type_="check")
    op.create_check_constraint(op.f("ck_notifications_email_status_valid"), "notifications",
                               "email_status IN ('sent', 'failed', 'skipped', 'retrying')")


def downgrade() -> None:
    op.execute("UPDATE notifications SET email_status = 'failed' WHERE email_status = 'retrying'")
    op.drop_constraint(op.f("ck_notifications_email_status_valid"), "notifications", type_="check")
    op.create_check_constraint(op.f("ck_notifications_email_status_valid"), "notifications",
                               "email_status IN ('sent', 'failed', 'skipped')")
