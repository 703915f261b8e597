"""L1 walk sessions: created by intake, changed only by their workflow (through persistence activities)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import L1WalkSession

# Columns the walk workflow owns; everything else is fixed at creation.
MUTABLE_COLUMNS = frozenset({
    "status", "walked_path", "walk_notes", "pending_node", "depth", "helpful", "resolution_notes",
    "escalation_reason_category", "escalation_reason", "last_step_at", "resolved_at", "escalated_at",
    "abandoned_at",
})


class WalkSessionRepository:
    """Reads walk sessions (scoped to an account for the API) and writes the workflow's state."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(
        self,
        *,
        account_id: uuid.UUID,
        created_by_user_id: uuid.UUID | None,
        session_kind: str,
        ticket_id: str,
        ticket_kind: str = "internal",
        category: str | None = None,
        problem_text: str = "",
        flow_id: uuid.UUID | None = None,
        started_at: datetime | None = None,
        last_step_at: datetime | None = None,
    ) -> L1WalkSession:
        """A new active session (its workflow starts on the first command)."""
        now = datetime.now(UTC)
        row = L1WalkSession(
            id=uuid.uuid4(), account_id=account_id, created_by_user_id=created_by_user_id, status="active",
            session_kind=session_kind, ticket_id=ticket_id, ticket_kind=ticket_kind, category=category,
            problem_text=problem_text, flow_id=flow_id, walked_path=[], walk_notes=[], depth=0,
            started_at=started_at or now, last_step_at=last_step_at or started_at or now,
        )
        self.session.add(row)
        await self.session.flush()
        return row

    async def get(self, session_id: uuid.UUID) -> L1WalkSession | None:
        """Any session by id (for the worker; the API uses `get_in_account`)."""
        return await self.session.get(L1WalkSession, session_id)

    async def get_in_account(self, account_id: uuid.UUID, session_id: uuid.UUID) -> L1WalkSession | None:
        """The session when it belongs to `account_id` (another account's id is simply not found)."""
        result = await self.session.execute(
            select(L1WalkSession).where(L1WalkSession.id == session_id, L1WalkSession.account_id == account_id)
        )
        return result.scalar_one_or_none()

    async def list_active_for_user(
        self, account_id: uuid.UUID, user_id: uuid.UUID, *, limit: int, offset: int
    ) -> Sequence[L1WalkSession]:
        """The user's active sessions, most recently stepped first."""
        result = await self.session.execute(
            select(L1WalkSession)
            .where(
                L1WalkSession.account_id == account_id,
                L1WalkSession.created_by_user_id == user_id,
                L1WalkSession.status == "active",
            )
            .order_by(L1WalkSession.last_step_at.desc(), L1WalkSession.id)
            .limit(limit)
            .offset(offset)
        )
        return result.scalars().all()

    async def list_escalated(self, account_id: uuid.UUID, *, limit: int, offset: int) -> Sequence[L1WalkSession]:
        """The account's escalated sessions, newest escalation first."""
        result = await self.session.execute(
            select(L1WalkSession)
            .where(L1WalkSession.account_id == account_id, L1WalkSession.status == "escalated")
            .order_by(L1WalkSession.escalated_at.desc(), L1WalkSession.id)
            .limit(limit)
            .offset(offset)
        )
        return result.scalars().all()

    async def write_state(self, session_id: uuid.UUID, values: dict[str, Any]) -> bool:
        """Overwrite the workflow-owned columns; False when the row is gone."""
        unknown = set(values) - MUTABLE_COLUMNS
        if unknown:
            raise ValueError(f"not workflow-owned columns: {sorted(unknown)}")
        # A Core UPDATE on the table: this runs on every step, and the ORM's bulk-update path costs more.
        table = cast(Table, L1WalkSession.__table__)
        result = await self.session.execute(update(table).where(table.c.id == session_id).values(**values))
        return bool(result.rowcount)  # type: ignore[attr-defined]
