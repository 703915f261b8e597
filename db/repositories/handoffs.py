"""Handoffs: created by the session workflow's activity, changed only by `HandoffWorkflow`'s, read by the API."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert

from db.models import AiSession, SessionHandoff, User
from db.repositories.base import AccountScopedRepository


class HandoffRepository(AccountScopedRepository[SessionHandoff]):
    """Reads handoffs (scoped to an account for the API) and applies the workflows' changes."""

    model = SessionHandoff

    async def insert_once(self, **values: Any) -> SessionHandoff:
        """Insert the handoff unless its id exists (a retried activity); the row as stored."""
        await self.session.execute(insert(SessionHandoff).values(**values)
                                   .on_conflict_do_nothing(index_elements=["id"]))
        row = await self.session.get(SessionHandoff, values["id"], populate_existing=True)
        assert row is not None
        return row

    async def open_for_session(self, session_id: uuid.UUID) -> SessionHandoff | None:
        """The session's unclaimed handoff, if any (there is at most one)."""
        found: SessionHandoff | None = await self.session.scalar(
            select(SessionHandoff).where(SessionHandoff.session_id == session_id,
                                         SessionHandoff.claimed_at.is_(None)))
        return found

    async def locked(self, handoff_id: uuid.UUID) -> SessionHandoff | None:
        """The handoff row, locked for this transaction and freshly read."""
        found: SessionHandoff | None = await self.session.scalar(
            select(SessionHandoff).where(SessionHandoff.id == handoff_id).with_for_update()
            .execution_options(populate_existing=True))
        return found

    async def change(self, handoff_id: uuid.UUID, **values: Any) -> None:
        """Write workflow-owned columns of one handoff."""
        await self.session.execute(update(SessionHandoff).where(SessionHandoff.id == handoff_id).values(**values)
                                   .execution_options(synchronize_session=False))

    async def for_session(self, session_id: uuid.UUID) -> Sequence[SessionHandoff]:
        """Every handoff of a session, oldest first."""
        return (await self.session.scalars(select(SessionHandoff).where(SessionHandoff.session_id == session_id)
                                           .order_by(SessionHandoff.created_at, SessionHandoff.id))).all()

    async def queue(self, account_id: uuid.UUID, *, limit: int, offset: int,
                    now: datetime) -> tuple[Sequence[Any], int]:
        """A page of the account's unclaimed escalations whose session is still escalated, oldest first, each
        with the session's problem summary, the escalator's name and its age in seconds; and how many there are."""
        conditions = [SessionHandoff.account_id == account_id, SessionHandoff.intent == "escalate",
                      SessionHandoff.claimed_at.is_(None), AiSession.status == "escalated"]
        age = func.extract("epoch", now - SessionHandoff.created_at)
        rows = (await self.session.execute(
            select(SessionHandoff, AiSession.problem_summary, User.name, age)
            .join(AiSession, AiSession.id == SessionHandoff.session_id)
            .outerjoin(User, User.id == SessionHandoff.created_by_user_id)
            .where(*conditions).order_by(SessionHandoff.created_at, SessionHandoff.id).limit(limit).offset(offset)
        )).all()
        total = await self.session.scalar(
            select(func.count()).select_from(SessionHandoff).join(AiSession, AiSession.id == SessionHandoff.session_id)
            .where(*conditions))
        return rows, int(total or 0)
