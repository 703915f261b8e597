"""AI sessions and their transcripts: created and changed only by the session workflow's activities.

Every write is guarded (a turn id stored once, a close only from an open status), so an activity
retried after its first attempt committed finds its work done instead of doing it twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert

from db.models import AiSession, AiSessionMessage, SessionDocument
from db.repositories.base import AccountScopedRepository

INTAKE_TURN = "intake"


class AiSessionRepository(AccountScopedRepository[AiSession]):
    """Reads sessions (scoped to an account for the API) and applies the workflow's changes."""

    model = AiSession

    async def create_once(
        self, *, session_id: uuid.UUID, account_id: uuid.UUID, user_id: uuid.UUID, session_type: str,
        intake_type: str, intake_text: str, problem_summary: str, psa_connection_id: uuid.UUID | None,
        psa_ticket_id: str | None, now: datetime,
    ) -> AiSession:
        """Insert the active session with the intake as its first message unless it exists; the row as stored."""
        inserted = await self.session.scalar(insert(AiSession).values(
            id=session_id, account_id=account_id, user_id=user_id, session_type=session_type,
            intake_type=intake_type, intake_content={"text": intake_text}, problem_summary=problem_summary,
            status="active", confidence=0.0, confidence_tier="discovery", state_version=0, message_count=1,
            handoff_count=0, psa_connection_id=psa_connection_id, psa_ticket_id=psa_ticket_id,
            last_activity_at=now, created_at=now, updated_at=now,
        ).on_conflict_do_nothing(index_elements=["id"]).returning(AiSession.id))
        if inserted is not None:
            self.session.add(AiSessionMessage(session_id=session_id, seq=1, turn_id=INTAKE_TURN, role="user",
                                              content=intake_text, created_at=now))
            await self.session.flush()
        row = await self.session.get(AiSession, session_id, populate_existing=True)
        assert row is not None
        return row

    async def ref_in_account(self, account_id: uuid.UUID, session_id: uuid.UUID) -> Any | None:
        """The few columns a command needs (id, account, status, type, version, ticket, summary), or None."""
        result = await self.session.execute(
            select(AiSession.id, AiSession.account_id, AiSession.status, AiSession.session_type,
                   AiSession.state_version, AiSession.psa_ticket_id, AiSession.problem_summary)
            .where(AiSession.id == session_id, AiSession.account_id == account_id)
        )
        return result.one_or_none()

    async def list_for_account(
        self, account_id: uuid.UUID, *, status: str | None, limit: int, offset: int
    ) -> tuple[Sequence[AiSession], int]:
        """A page of the account's sessions (newest first) and how many match."""
        conditions = [AiSession.account_id == account_id]
        if status is not None:
            conditions.append(AiSession.status == status)
        rows = await self.session.scalars(
            select(AiSession).where(*conditions).order_by(AiSession.created_at.desc(), AiSession.id.desc())
            .limit(limit).offset(offset)
        )
        total = await self.session.scalar(select(func.count()).select_from(AiSession).where(*conditions))
        return rows.all(), int(total or 0)

    async def messages(self, session_id: uuid.UUID, *, last: int | None = None) -> Sequence[AiSessionMessage]:
        """The transcript in order (only the latest `last` messages when given)."""
        query = select(AiSessionMessage).where(AiSessionMessage.session_id == session_id)
        if last is None:
            return (await self.session.scalars(query.order_by(AiSessionMessage.seq))).all()
        newest = (await self.session.scalars(query.order_by(AiSessionMessage.seq.desc()).limit(last))).all()
        return list(reversed(newest))

    async def turn_stored(self, session_id: uuid.UUID, turn_id: str) -> bool:
        """Whether this turn's messages are already in the transcript."""
        found = await self.session.scalar(select(AiSessionMessage.id).where(
            AiSessionMessage.session_id == session_id, AiSessionMessage.turn_id == turn_id).limit(1))
        return found is not None

    async def record_turn(
        self, session_id: uuid.UUID, *, turn_id: str, user_content: str, reply: str, confidence: float,
        confidence_tier: str, at: datetime,
    ) -> tuple[int, int]:
        """Append the engineer's message and the reply, bump the version: (message_count, state_version)."""
        counted = (await self.session.execute(
            update(AiSession).where(AiSession.id == session_id)
            .values(message_count=AiSession.message_count + 2, state_version=AiSession.state_version + 1,
                    confidence=confidence, confidence_tier=confidence_tier, last_activity_at=at)
            .returning(AiSession.message_count, AiSession.state_version)
            .execution_options(synchronize_session=False)
        )).one()
        count, version = int(counted[0]), int(counted[1])
        self.session.add_all([
            AiSessionMessage(session_id=session_id, seq=count - 1, turn_id=turn_id, role="user",
                             content=user_content, created_at=at),
            AiSessionMessage(session_id=session_id, seq=count, turn_id=turn_id, role="assistant", content=reply,
                             created_at=at),
        ])
        await self.session.flush()
        return count, version

    async def locked(self, session_id: uuid.UUID) -> AiSession | None:
        """The session row, locked for this transaction and freshly read."""
        found: AiSession | None = await self.session.scalar(
            select(AiSession).where(AiSession.id == session_id).with_for_update()
            .execution_options(populate_existing=True))
        return found

    async def change(self, session_id: uuid.UUID, **values: Any) -> None:
        """Write workflow-owned columns of one session (column expressions such as `count + 1` allowed)."""
        await self.session.execute(update(AiSession).where(AiSession.id == session_id).values(**values)
                                   .execution_options(synchronize_session=False))

    async def reopen(self, session_id: uuid.UUID, at: datetime) -> AiSession | None:
        """Make a parked or escalated session active again (guarded by its status, so the row is locked too); the
        row as changed, or None when it was neither."""
        found: AiSession | None = await self.session.scalar(
            update(AiSession).where(AiSession.id == session_id, AiSession.status.in_(("paused", "escalated")))
            .values(status="active", state_version=AiSession.state_version + 1, last_activity_at=at)
            .returning(AiSession)
            .execution_options(populate_existing=True, synchronize_session=False))
        return found

    async def bump_version(self, session_id: uuid.UUID, at: datetime) -> int:
        """Count one accepted change of the session (previews are cached by the version)."""
        version = await self.session.scalar(
            update(AiSession).where(AiSession.id == session_id)
            .values(state_version=AiSession.state_version + 1, last_activity_at=at)
            .returning(AiSession.state_version).execution_options(synchronize_session=False)
        )
        if version is None:
            raise LookupError(f"AI session {session_id} does not exist")
        return int(version)

    async def close(
        self, session_id: uuid.UUID, *, kind: str, markdown: str, by_user_id: uuid.UUID, at: datetime
    ) -> int | None:
        """Store the posted document and close the session; the new version, or None when it was closed already."""
        values: dict[str, Any]
        closable = ["active", "paused"]
        if kind == "resolution_note":
            values = {"status": "resolved", "resolution_note_markdown": markdown, "resolved_at": at}
            closable.append("escalated")  # a senior may resolve what was escalated
        else:
            values = {"status": "escalated", "escalation_package_markdown": markdown, "escalated_at": at}
        version = await self.session.scalar(
            update(AiSession).where(AiSession.id == session_id, AiSession.status.in_(closable))
            .values(**values, closed_by_user_id=by_user_id, state_version=AiSession.state_version + 1,
                    last_activity_at=at)
            .returning(AiSession.state_version).execution_options(synchronize_session=False)
        )
        return int(version) if version is not None else None


class SessionDocumentRepository:
    """Preview cache: one document per (session, kind, state_version), shared by every API process."""

    def __init__(self, session: Any) -> None:
        self.session = session

    async def get(self, session_id: uuid.UUID, kind: str, state_version: int) -> SessionDocument | None:
        """The cached document for exactly this version, if any."""
        found: SessionDocument | None = await self.session.get(SessionDocument, (session_id, kind, state_version))
        return found

    async def store(self, session_id: uuid.UUID, kind: str, state_version: int, markdown: str, provider: str) -> str:
        """Keep the document unless another process stored one first; the stored markdown."""
        await self.session.execute(insert(SessionDocument).values(
            session_id=session_id, kind=kind, state_version=state_version, markdown=markdown, provider=provider,
        ).on_conflict_do_nothing(index_elements=["session_id", "kind", "state_version"]))
        stored = await self.session.get(SessionDocument, (session_id, kind, state_version), populate_existing=True)
        return stored.markdown if stored is not None else markdown
