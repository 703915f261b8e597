"""Suggested fixes: inserted by the session workflow, changed by the fix's own workflow.

Every change of a fix is guarded by the `version` the workflow saw, so a retried activity whose first
attempt committed changes nothing the second time (and the session's `state_version` counts it once).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, null, select, update
from sqlalchemy.dialects.postgresql import insert

from db.models import SuggestedFix
from db.repositories.base import AccountScopedRepository


class SuggestedFixRepository(AccountScopedRepository[SuggestedFix]):
    """Reads a session's fixes for the API and applies the workflows' guarded changes."""

    model = SuggestedFix

    async def in_session(self, account_id: uuid.UUID, session_id: uuid.UUID, fix_id: uuid.UUID) -> SuggestedFix | None:
        """The fix when it belongs to this session of this account (another session's fix is not found)."""
        found: SuggestedFix | None = await self.session.scalar(select(SuggestedFix).where(
            SuggestedFix.id == fix_id, SuggestedFix.session_id == session_id, SuggestedFix.account_id == account_id,
        ).execution_options(populate_existing=True))
        return found

    async def list_for_session(self, session_id: uuid.UUID, *, limit: int = 100, offset: int = 0
                               ) -> tuple[Sequence[SuggestedFix], int]:
        """A page of the session's fixes (newest first) and how many it has."""
        rows = await self.session.scalars(
            select(SuggestedFix).where(SuggestedFix.session_id == session_id)
            .order_by(SuggestedFix.created_at.desc(), SuggestedFix.id.desc()).limit(limit).offset(offset)
        )
        total = await self.session.scalar(
            select(func.count()).select_from(SuggestedFix).where(SuggestedFix.session_id == session_id))
        return rows.all(), int(total or 0)

    async def all_for_session(self, session_id: uuid.UUID) -> Sequence[SuggestedFix]:
        """Every fix of the session, oldest first (what a note or package is written from)."""
        rows = await self.session.scalars(
            select(SuggestedFix).where(SuggestedFix.session_id == session_id)
            .order_by(SuggestedFix.created_at, SuggestedFix.id))
        return rows.all()

    async def active(self, session_id: uuid.UUID) -> SuggestedFix | None:
        """The session's one fix that is not superseded."""
        found: SuggestedFix | None = await self.session.scalar(select(SuggestedFix).where(
            SuggestedFix.session_id == session_id, SuggestedFix.superseded_at.is_(None),
        ).execution_options(populate_existing=True))
        return found

    async def insert_superseding(
        self, *, fix_id: uuid.UUID, session_id: uuid.UUID, account_id: uuid.UUID, source: str,
        fields: Mapping[str, Any], created_by_user_id: uuid.UUID | None, at: datetime,
    ) -> bool:
        """Insert the fix as the active one, superseding the previous; False when it existed (a retry). `fields`
        are what the fix says of itself (`FixFields.columns()`), stored as they come."""
        if await self.session.get(SuggestedFix, fix_id) is not None:
            return False
        await self.session.execute(
            update(SuggestedFix)
            .where(SuggestedFix.session_id == session_id, SuggestedFix.superseded_at.is_(None))
            .values(superseded_at=at).execution_options(synchronize_session=False)
        )
        await self.session.execute(insert(SuggestedFix).values(
            **fields, id=fix_id, session_id=session_id, account_id=account_id, source=source, status="proposed",
            version=0,
            created_by_user_id=created_by_user_id, reminder_schedule=[], notices_sent=0, created_at=at,
            updated_at=at,
        ))
        return True

    async def propose_outcome(self, fix_id: uuid.UUID, proposal: dict[str, Any]) -> None:
        """Store the AI's outcome proposal on the fix (nothing else changes)."""
        await self.session.execute(
            update(SuggestedFix).where(SuggestedFix.id == fix_id).values(ai_outcome_proposal=proposal)
            .execution_options(synchronize_session=False))

    async def clear_proposal(self, fix_id: uuid.UUID) -> bool:
        """Drop the AI's outcome proposal; whether there was one."""
        cleared = await self.session.scalar(
            update(SuggestedFix)
            .where(SuggestedFix.id == fix_id, func.coalesce(func.jsonb_typeof(SuggestedFix.ai_outcome_proposal),
                                                            "null") != "null")
            .values(ai_outcome_proposal=null()).returning(SuggestedFix.id)
            .execution_options(synchronize_session=False))
        return cleared is not None

    async def change(self, fix_id: uuid.UUID, expected_version: int, values: dict[str, Any]) -> SuggestedFix | None:
        """Apply `values` and bump the version if the fix is still at `expected_version`: the fix as changed
        (from RETURNING, no second read), or None when it had moved on."""
        changed: SuggestedFix | None = await self.session.scalar(
            update(SuggestedFix).where(SuggestedFix.id == fix_id, SuggestedFix.version == expected_version)
            .values(**values, version=SuggestedFix.version + 1, updated_at=func.now())
            .returning(SuggestedFix)
            .execution_options(synchronize_session=False, populate_existing=True))
        return changed

    async def stop_reminders(self, fix_id: uuid.UUID, *, version: int) -> bool:
        """Drop a parked fix's remaining notices (its status stays); False when the fix moved on meanwhile."""
        return await self._update_parked(fix_id, version, {"reminder_schedule": [], "next_reminder_at": None})

    async def record_notice(
        self, fix_id: uuid.UUID, *, version: int, sent: int, next_reminder_at: datetime | None,
        overdue_at: datetime | None,
    ) -> bool:
        """Count a notice of a parked fix (at least `sent` went out); False when the fix moved on (stale)."""
        values: dict[str, Any] = {"notices_sent": func.greatest(SuggestedFix.notices_sent, sent),
                                  "next_reminder_at": next_reminder_at}
        if overdue_at is not None:
            values["verification_overdue_at"] = func.coalesce(SuggestedFix.verification_overdue_at, overdue_at)
        return await self._update_parked(fix_id, version, values)

    async def _update_parked(self, fix_id: uuid.UUID, version: int, values: dict[str, Any]) -> bool:
        """Set `values` on a fix still parked at `version` (no version bump: notices are not outcomes)."""
        changed = await self.session.scalar(
            update(SuggestedFix)
            .where(SuggestedFix.id == fix_id, SuggestedFix.version == version,
                   SuggestedFix.status == "applied_pending")
            .values(**values).returning(SuggestedFix.id).execution_options(synchronize_session=False))
        return changed is not None
