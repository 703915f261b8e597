"""L1 walk sessions and their notes: created and changed only by their workflow's activities.

Every write is guarded by the state it expects (active, this pending node), so an activity retried
after its first attempt committed finds its work done instead of doing it twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, literal, null, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert

from db.models import InternalTicket, L1Flow, L1WalkNote, L1WalkSession
from db.repositories.base import AccountScopedRepository


class WalkSessionRepository(AccountScopedRepository[L1WalkSession]):
    """Reads walk sessions (scoped to an account for the API) and applies the workflow's changes."""

    model = L1WalkSession

    async def create_once(
        self,
        *,
        session_id: uuid.UUID,
        ticket_id: uuid.UUID,
        account_id: uuid.UUID,
        created_by_user_id: uuid.UUID | None,
        session_kind: str,
        category: str | None,
        problem_text: str,
        customer_name: str | None,
        customer_contact: str | None,
        flow_id: uuid.UUID | None,
        pending_node: dict[str, Any] | None,
        now: datetime,
    ) -> L1WalkSession:
        """Insert the ticket and the active session unless they exist (same ids); the session as stored."""
        await self.session.execute(insert(InternalTicket).values(
            id=ticket_id, account_id=account_id, created_by_user_id=created_by_user_id,
            problem_statement=problem_text, customer_name=customer_name, customer_contact=customer_contact,
            status="open",
        ).on_conflict_do_nothing(index_elements=["id"]))
        await self.session.execute(insert(L1WalkSession).values(
            id=session_id, account_id=account_id, created_by_user_id=created_by_user_id, status="active",
            session_kind=session_kind, ticket_id=str(ticket_id), ticket_kind="internal", category=category,
            # null(): a JSONB column stores Python None as the JSON value null, which `IS NULL` would miss.
            problem_text=problem_text, flow_id=flow_id, walked_path=[],
            pending_node=pending_node if pending_node is not None else null(), depth=0,
            note_count=0, started_at=now, last_step_at=now,
        ).on_conflict_do_nothing(index_elements=["id"]))
        row = await self.session.get(L1WalkSession, session_id, populate_existing=True)
        assert row is not None
        return row

    async def flow_tree_of(self, session_id: uuid.UUID) -> tuple[bool, dict[str, Any] | None]:
        """Whether the session exists, and its flow's tree (None without a flow or when the flow is gone).

        Two columns in one read: a step needs nothing else before its update, and the session row's walked
        path grows with every step."""
        row = (await self.session.execute(
            select(L1WalkSession.id, L1Flow.tree).outerjoin(L1Flow, L1Flow.id == L1WalkSession.flow_id)
            .where(L1WalkSession.id == session_id)
        )).one_or_none()
        return (False, None) if row is None else (True, row.tree)

    async def record_step(
        self, session_id: uuid.UUID, *, node_id: str, step: dict[str, Any], next_node: dict[str, Any], at: datetime
    ) -> int | None:
        """Append `step` and serve `next_node` if `node_id` is still pending: the new depth, or None when it is not."""
        depth = await self.session.scalar(
            update(L1WalkSession)
            .where(L1WalkSession.id == session_id, L1WalkSession.status == "active",
                   L1WalkSession.pending_node["id"].astext == node_id)
            .values(walked_path=L1WalkSession.walked_path.op("||")(literal([step], JSONB)),
                    pending_node=next_node, depth=L1WalkSession.depth + 1, last_step_at=at)
            .returning(L1WalkSession.depth)
            .execution_options(synchronize_session=False)
        )
        return int(depth) if depth is not None else None

    async def set_pending_node(self, session_id: uuid.UUID, node: dict[str, Any]) -> None:
        """Serve the first node of an AI-built walk (only while none is pending)."""
        await self.session.execute(
            update(L1WalkSession)
            .where(L1WalkSession.id == session_id,
                   func.coalesce(func.jsonb_typeof(L1WalkSession.pending_node), "null") == "null")
            .values(pending_node=node)
        )

    async def add_notes(
        self, session_id: uuid.UUID, *, batch_id: str, notes: Sequence[dict[str, Any]], at: datetime
    ) -> int:
        """Insert a batch of notes once (a retried batch adds nothing); the walk's note count after it."""
        rows = [{"id": uuid.uuid4(), "session_id": session_id, "batch_id": batch_id, "position": i,
                 "text": n["text"], "ts": n["ts"], "created_at": at} for i, n in enumerate(notes)]
        inserted = await self.session.execute(
            insert(L1WalkNote).values(rows).on_conflict_do_nothing(constraint="uq_l1_walk_notes_batch")
            .returning(L1WalkNote.id)
        )
        added = len(inserted.all())
        count = await self.session.scalar(
            update(L1WalkSession).where(L1WalkSession.id == session_id)
            .values(note_count=L1WalkSession.note_count + added, last_step_at=at)
            .returning(L1WalkSession.note_count)
        )
        return int(count or 0)

    async def close(self, session_id: uuid.UUID, status: str, values: dict[str, Any]) -> bool:
        """Move an active session to `status` (with `values`) and mirror it on its internal ticket.

        False when the session is not active any more (a retried close finds it already done)."""
        ticket_id = await self.session.scalar(
            update(L1WalkSession)
            .where(L1WalkSession.id == session_id, L1WalkSession.status == "active")
            .values(status=status, **values)
            .returning(L1WalkSession.ticket_id)
        )
        if ticket_id is None:
            return False
        try:
            ticket = uuid.UUID(ticket_id)
        except ValueError:
            return True  # a PSA ticket id: nothing internal to mirror
        await self.session.execute(
            update(InternalTicket).where(InternalTicket.id == ticket).values(status=status)
        )
        return True

    async def notes(self, session_id: uuid.UUID, *, last: int | None = None) -> Sequence[L1WalkNote]:
        """The session's notes in the order they were added (only the `last` ones when given)."""
        order = (L1WalkNote.created_at, L1WalkNote.position)
        query = select(L1WalkNote).where(L1WalkNote.session_id == session_id)
        if last is None:
            return (await self.session.execute(query.order_by(*order))).scalars().all()
        newest = (await self.session.execute(
            query.order_by(*(c.desc() for c in order)).limit(last))).scalars().all()
        return list(reversed(newest))

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
