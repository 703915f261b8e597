"""Handoffs: created and claimed by the session workflow's activities, otherwise changed by `HandoffWorkflow`'s."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
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

    async def latest_for_session(self, session_id: uuid.UUID) -> SessionHandoff | None:
        """The session's newest handoff, if any."""
        found: SessionHandoff | None = await self.session.scalar(
            select(SessionHandoff).where(SessionHandoff.session_id == session_id)
            .order_by(SessionHandoff.created_at.desc(), SessionHandoff.id.desc()).limit(1))
        return found

    async def claim_unclaimed(self, handoff_id: uuid.UUID, session_id: uuid.UUID, *, user_id: uuid.UUID,
                              user_name: str, at: datetime) -> SessionHandoff | None:
        """Record the claim unless the handoff is claimed already (or the claimer escalated it): one guarded
        UPDATE … RETURNING. The row as claimed, or None when nothing was written."""
        found: SessionHandoff | None = await self.session.scalar(
            update(SessionHandoff)
            .where(SessionHandoff.id == handoff_id, SessionHandoff.session_id == session_id,
                   SessionHandoff.claimed_at.is_(None),  # the escalator never picks up their own escalation
                   or_(SessionHandoff.intent != "escalate",
                       SessionHandoff.created_by_user_id.is_distinct_from(user_id)))
            .values(claimed_by_user_id=user_id, claimed_by_name=user_name, claimed_at=at, next_renotify_at=None,
                    updated_at=at)
            .returning(SessionHandoff)
            .execution_options(populate_existing=True, synchronize_session=False))
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
