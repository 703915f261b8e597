"""Auth and tenancy in one query: the caller, its subscription status and the entity a request's path names.

Every command route needs all three before it may send anything; read one after another they were three
pooled round trips and most of the API's CPU per command. Each `Lookup` outer-joins its entity on the
caller's own account, so another account's id reads as absent (a 404), never as someone else's row.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, join, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable
from sqlalchemy.sql.elements import Label

from db.models import AiSession, L1WalkSession, SessionHandoff, Subscription, SuggestedFix, User
from workflows.contracts.ai_session import FixFields

# What no command changes of a fix: its identity and its own fields (`FixFields`). With what a command answers
# (`FixView`, its changeable columns) that is the whole answer, so the API reads nothing after the command, and
# a field added to `FixFields` is read without naming it here.
FIX_READ_BEFORE = ("id", "session_id", "account_id", "source", "status", "created_at", *FixFields.model_fields)


def _caller_query() -> Select[User, str | None]:
    """The caller (`caller_id`) with its subscription status."""
    return (select(User, Subscription.status)
            .outerjoin(Subscription, Subscription.account_id == User.account_id)
            .where(User.id == bindparam("caller_id")))


@dataclass(frozen=True, eq=False)
class LookupShape:
    """One kind of entity a path names: the caller's query outer-joined to it on the caller's account, its
    columns (labelled `ref_<field>`). Built once per process: a statement reused with new ids is not built, nor
    its cache key computed, again on every request (~11 % of the API's CPU per walk step with one caller,
    measured with py-spy; docs/performance.md)."""

    query: Executable
    columns: Sequence[Label[Any]]

    @classmethod
    def of(cls, target: Any, on: ColumnElement[bool], columns: Sequence[Label[Any]]) -> LookupShape:
        """The caller's query joined to `target` on `on` (whose ids are bind parameters)."""
        return cls(_caller_query().outerjoin(target, on).add_columns(*columns), columns)


@dataclass(frozen=True)
class Lookup:
    """The entity a path names: its shape and the ids it is looked up by."""

    shape: LookupShape
    params: Mapping[str, uuid.UUID]


def _refs(*columns: Any) -> list[Label[Any]]:
    # A prefix, so that no entity column shadows the user's or the subscription's ("status") in the row.
    return [column.label(f"ref_{column.key}") for column in columns]


_CALLER = _caller_query()
_WALK = LookupShape.of(
    L1WalkSession, and_(L1WalkSession.id == bindparam("entity_id"), L1WalkSession.account_id == User.account_id),
    # Every column of the session summary: a step's answer is this row plus what the step changed, so the API
    # reads nothing after the command.
    _refs(*L1WalkSession.__table__.columns))
_AI_SESSION = LookupShape.of(
    AiSession, and_(AiSession.id == bindparam("entity_id"), AiSession.account_id == User.account_id),
    _refs(AiSession.id, AiSession.account_id, AiSession.status, AiSession.session_type, AiSession.state_version,
          AiSession.psa_ticket_id, AiSession.problem_summary))
_FIX = LookupShape.of(
    SuggestedFix, and_(SuggestedFix.id == bindparam("entity_id"), SuggestedFix.session_id == bindparam("parent_id"),
                       SuggestedFix.account_id == User.account_id),
    _refs(*(SuggestedFix.__table__.columns[key] for key in FIX_READ_BEFORE)))
_HANDOFF = LookupShape.of(
    join(SessionHandoff, AiSession, AiSession.id == SessionHandoff.session_id),
    and_(SessionHandoff.id == bindparam("entity_id"), SessionHandoff.session_id == bindparam("parent_id"),
         SessionHandoff.account_id == User.account_id),
    [*_refs(SessionHandoff.id, SessionHandoff.session_id, SessionHandoff.account_id, SessionHandoff.intent,
            SessionHandoff.created_by_user_id, SessionHandoff.claimed_by_user_id, SessionHandoff.claimed_by_name,
            SessionHandoff.claimed_at, SessionHandoff.engineer_notes, SessionHandoff.priority,
            SessionHandoff.target_user_id, SessionHandoff.snapshot, SessionHandoff.ai_assessment,
            SessionHandoff.ai_assessment_data, SessionHandoff.assessment_status, SessionHandoff.renotify_count,
            SessionHandoff.created_at, AiSession.session_type, AiSession.problem_summary),
     AiSession.status.label("ref_session_status")])


def walk_lookup(session_id: uuid.UUID) -> Lookup:
    """The walk session `session_id` in the caller's account (what a walk command needs)."""
    return Lookup(_WALK, {"entity_id": session_id})


def ai_session_lookup(session_id: uuid.UUID) -> Lookup:
    """The AI session `session_id` in the caller's account (what a session command needs)."""
    return Lookup(_AI_SESSION, {"entity_id": session_id})


def fix_lookup(session_id: uuid.UUID, fix_id: uuid.UUID) -> Lookup:
    """The fix `fix_id` of session `session_id` in the caller's account (another session's fix is absent)."""
    return Lookup(_FIX, {"entity_id": fix_id, "parent_id": session_id})


def handoff_lookup(session_id: uuid.UUID, handoff_id: uuid.UUID) -> Lookup:
    """The handoff `handoff_id` of session `session_id` in the caller's account, with what its session's workflow
    is started with; every column a claim answers besides the claim, so the API reads nothing after it."""
    return Lookup(_HANDOFF, {"entity_id": handoff_id, "parent_id": session_id})


@dataclass(frozen=True)
class Access:
    """The caller, its account's subscription status (None without one) and the looked-up entity (None: absent)."""

    user: User
    subscription_status: str | None
    entity: dict[str, Any] | None


class AccessRepository:
    """Reads who is calling, and what they named, in one statement."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def caller(self, user_id: uuid.UUID, lookup: Lookup | None = None) -> Access | None:
        """The user with its subscription status and, when asked, the entity in its account; None: no such user."""
        query = lookup.shape.query if lookup is not None else _CALLER
        params = {"caller_id": user_id, **(lookup.params if lookup is not None else {})}
        row = (await self.session.execute(query, params)).one_or_none()
        if row is None:
            return None
        found = row._mapping
        entity = ({c.name.removeprefix("ref_"): found[c.name] for c in lookup.shape.columns}
                  if lookup is not None and found["ref_id"] is not None else None)
        return Access(user=row[0], subscription_status=row[1], entity=entity)
