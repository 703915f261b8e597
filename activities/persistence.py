"""Postgres writes on behalf of workflows: the `persistence.*` activities."""

from __future__ import annotations

import re
import uuid
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from db.models import L1WalkSession, User
from db.repositories.accounts import AccountRepository
from db.repositories.l1_catalog import CategoryRepository, FlowRepository
from db.repositories.l1_proposals import FlowProposalRepository
from db.repositories.l1_sessions import WalkSessionRepository
from db.repositories.l1_tickets import InternalTicketRepository
from db.repositories.users import UserRepository
from workflows.contracts.walk import (
    ACT_ESCALATE_WALK,
    ACT_LOAD_WALK,
    ACT_RESOLVE_WALK,
    ACT_SAVE_WALK,
    REJECT_NOT_FOUND,
    REJECT_RULE,
    EscalateWalkResult,
    FlowTree,
    LoadWalkInput,
    LoadWalkResult,
    Recipient,
    ResolveWalkResult,
    SaveWalkInput,
    WalkState,
)

_STOPWORDS = frozenset({
    "that", "this", "with", "from", "have", "when", "will", "does", "what", "after", "before", "into",
    "their", "there", "they", "been", "were", "your", "cannot", "can't", "won't", "doesn't", "isn't",
    "about", "again", "still", "just", "only", "some", "very",
})


def row_to_state(row: L1WalkSession) -> WalkState:
    """The workflow's view of a session row."""
    return WalkState.model_validate({
        "id": str(row.id),
        "account_id": str(row.account_id),
        "created_by_user_id": str(row.created_by_user_id) if row.created_by_user_id else None,
        "status": row.status,
        "session_kind": row.session_kind,
        "ticket_id": row.ticket_id,
        "ticket_kind": row.ticket_kind,
        "category": row.category,
        "problem_text": row.problem_text,
        "flow_id": str(row.flow_id) if row.flow_id else None,
        "walked_path": row.walked_path,
        "walk_notes": row.walk_notes,
        "pending_node": row.pending_node,
        "depth": row.depth,
        "helpful": row.helpful,
        "resolution_notes": row.resolution_notes,
        "escalation_reason_category": row.escalation_reason_category,
        "escalation_reason": row.escalation_reason,
        "started_at": row.started_at,
        "last_step_at": row.last_step_at,
        "resolved_at": row.resolved_at,
        "escalated_at": row.escalated_at,
        "abandoned_at": row.abandoned_at,
    })


def state_columns(state: WalkState) -> dict[str, Any]:
    """The workflow-owned column values of `state` (JSON columns as plain JSON)."""
    as_json = state.model_dump(mode="json", include={"walked_path", "walk_notes", "pending_node"})
    scalars = state.model_dump(include={
        "status", "depth", "helpful", "resolution_notes", "escalation_reason_category", "escalation_reason",
        "last_step_at", "resolved_at", "escalated_at", "abandoned_at",
    })
    return {**as_json, **scalars}


def proposal_tree(state: WalkState) -> dict[str, Any]:
    """An authored-flow tree that replays the walked path and ends in its resolution."""
    pending = state.pending_node
    if pending is not None and pending.kind == "resolution" and pending.resolution:
        final = pending.resolution
    else:
        final = state.resolution_notes or "Resolved; see the original walk's notes."
    nodes: dict[str, Any] = {}
    steps = state.walked_path
    for i, step in enumerate(steps):
        option: dict[str, Any] = {"label": step.answer}
        if i + 1 < len(steps):
            option["next"] = f"q{i + 2}"
        else:
            option["resolution"] = final
        nodes[f"q{i + 1}"] = {"question": step.question, "options": [option]}
    return {"root": "q1", "nodes": nodes}


def keywords_of(text: str, limit: int = 8) -> list[str]:
    """Distinctive lowercase words of a problem statement, in order of appearance."""
    seen: list[str] = []
    for word in re.findall(r"[a-z][a-z0-9'-]{3,}", text.lower()):
        if word not in _STOPWORDS and word not in seen:
            seen.append(word)
    return seen[:limit]


def _uuid_or_none(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


class PersistenceActivities:
    """Loads and saves walk state; each call is one transaction and safe to retry."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory

    @activity.defn(name=ACT_LOAD_WALK)
    async def load_walk(self, inp: LoadWalkInput) -> LoadWalkResult:
        """The session's state with its flow's tree, or `state=None` when the row does not exist."""
        session_id = _uuid_or_none(inp.session_id)
        if session_id is None:
            return LoadWalkResult(state=None)
        async with self._session_factory() as session:
            row = await WalkSessionRepository(session).get(session_id)
            if row is None:
                return LoadWalkResult(state=None)
            tree = None
            if row.flow_id is not None:
                flow = await FlowRepository(session).get(row.flow_id)
                tree = FlowTree.model_validate(flow.tree) if flow else None
            return LoadWalkResult(state=row_to_state(row), flow_tree=tree)

    @activity.defn(name=ACT_SAVE_WALK)
    async def save_walk(self, inp: SaveWalkInput) -> None:
        """Write the state to its row."""
        async with self._session_factory() as session, session.begin():
            await self._write(session, inp.state)

    @activity.defn(name=ACT_RESOLVE_WALK)
    async def resolve_walk(self, inp: SaveWalkInput) -> ResolveWalkResult:
        """Write the resolved state; a helpful AI-built walk also becomes a flow proposal."""
        state = inp.state
        async with self._session_factory() as session, session.begin():
            await self._write(session, state)
            if not (state.session_kind == "ai_build" and state.helpful and state.walked_path):
                return ResolveWalkResult()
            proposal_id = await FlowProposalRepository(session).create_once(
                account_id=uuid.UUID(state.account_id),
                l1_session_id=uuid.UUID(state.id),
                title=state.problem_text[:200] or "Learned flow",
                category=state.category or "general",
                keywords=keywords_of(state.problem_text),
                tree=proposal_tree(state),
                validated_by_outcome=True,
            )
            return ResolveWalkResult(proposal_id=str(proposal_id))

    @activity.defn(name=ACT_ESCALATE_WALK)
    async def escalate_walk(self, inp: SaveWalkInput) -> EscalateWalkResult:
        """Write the escalated state and name the live recipients (category's, else the account's)."""
        state = inp.state
        account_id = uuid.UUID(state.account_id)
        async with self._session_factory() as session, session.begin():
            await self._write(session, state)
            users = UserRepository(session)
            category = await CategoryRepository(session).get(account_id, state.category) if state.category else None
            if category is not None and category.escalation_recipient_ids:
                ids = [u for u in map(_uuid_or_none, category.escalation_recipient_ids) if u]
                live = await users.active_in_account(account_id, ids)
                if live:
                    return EscalateWalkResult(recipients=[_recipient(u) for u in live], source="category")
            prefs = await AccountRepository(session).get_preferences(account_id)
            ids = [u for u in map(_uuid_or_none, prefs.get("default_escalation_recipient_ids") or []) if u]
            live = await users.active_in_account(account_id, ids)
            if live:
                return EscalateWalkResult(recipients=[_recipient(u) for u in live], source="default")
            return EscalateWalkResult(source="none")

    async def _write(self, session: AsyncSession, state: WalkState) -> None:
        try:
            found = await WalkSessionRepository(session).write_state(uuid.UUID(state.id), state_columns(state))
        except DBAPIError as exc:
            if not _refused_values(exc):
                raise  # connection trouble and the like: Temporal retries
            # Postgres refused the values themselves: retrying cannot help, and retrying forever would
            # wedge the walk. Fail this one change; the workflow keeps its previous state.
            raise ApplicationError(
                f"The change could not be stored: {exc.orig}", type=REJECT_RULE, non_retryable=True
            ) from exc
        if not found:
            raise ApplicationError(f"Walk session {state.id} no longer exists", type=REJECT_NOT_FOUND,
                                   non_retryable=True)
        ticket_id = _uuid_or_none(state.ticket_id)
        if state.status != "active" and state.ticket_kind == "internal" and ticket_id is not None:
            await InternalTicketRepository(session).set_status(ticket_id, state.status)


def _refused_values(exc: DBAPIError) -> bool:
    """True for SQLSTATE classes 22 (data exception) and 23 (integrity violation)."""
    cause: BaseException | None = exc
    while cause is not None:
        sqlstate = getattr(cause, "sqlstate", None)
        if isinstance(sqlstate, str):
            return sqlstate[:2] in {"22", "23"}
        cause = cause.__cause__
    return False


def _recipient(user: User) -> Recipient:
    return Recipient(user_id=str(user.id), email=user.email, name=user.name)
