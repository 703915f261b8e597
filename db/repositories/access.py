"""Auth and tenancy in one query: the caller, its subscription status and the entity a request's path names.

Every command route needs all three before it may send anything; read one after another they were three
pooled round trips and most of the API's CPU per command. Each `Lookup` outer-joins its entity on the
caller's own account, so another account's id reads as absent (a 404), never as someone else's row.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, join, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import Label

from db.models import AiSession, L1WalkSession, SessionHandoff, Subscription, SuggestedFix, User
from workflows.contracts.ai_session import FixFields

# What no command changes of a fix: its identity and its own fields (`FixFields`). With what a command answers
# (`FixView`, its changeable columns) that is the whole answer, so the API reads nothing after the command, and
# a field added to `FixFields` is read without naming it here.
FIX_READ_BEFORE = ("id", "session_id", "account_id", "source", "status", "created_at", *FixFields.model_fields)


@dataclass(frozen=True)
class Lookup:
    """The entity a path names: its columns (labelled `ref_<field>`) and its join to the caller's account."""

    target: Any
    on: ColumnElement[bool]
    columns: Sequence[Label[Any]]


def walk_lookup(session_id: uuid.UUID) -> Lookup:
    """The walk session `session_id` in the caller's account (what a walk command needs)."""
    on = and_(L1WalkSession.id == session_id, L1WalkSession.account_id == User.account_id)
    # Every column of the session summary: a step's answer is this row plus what the step changed, so the API
    # reads nothing after the command.
    return Lookup(L1WalkSession, on, _refs(*L1WalkSession.__table__.columns))


def ai_session_lookup(session_id: uuid.UUID) -> Lookup:
    """The AI session `session_id` in the caller's account (what a session command needs)."""
    on = and_(AiSession.id == session_id, AiSession.account_id == User.account_id)
    return Lookup(AiSession, on, _refs(AiSession.id, AiSession.account_id, AiSession.status, AiSession.session_type,
                                       AiSession.state_version, AiSession.psa_ticket_id, AiSession.problem_summary))


def fix_lookup(session_id: uuid.UUID, fix_id: uuid.UUID) -> Lookup:
    """The fix `fix_id` of session `session_id` in the caller's account (another session's fix is absent)."""
    on = and_(SuggestedFix.id == fix_id, SuggestedFix.session_id == session_id,
              SuggestedFix.account_id == User.account_id)
    return Lookup(SuggestedFix, on, _refs(*(SuggestedFix.__table__.columns[key] for key in FIX_READ_BEFORE)))


def handoff_lookup(session_id: uuid.UUID, handoff_id: uuid.UUID) -> Lookup:
    """The handoff `handoff_id` of session `session_id` in the caller's account, with what its session's workflow
    is started with; every column a claim answers besides the claim, so the API reads nothing after it."""
    on = and_(SessionHandoff.id == handoff_id, SessionHandoff.session_id == session_id,
              SessionHandoff.account_id == User.account_id)
    return Lookup(join(SessionHandoff, AiSession, AiSession.id == SessionHandoff.session_id), on, [
        *_refs(SessionHandoff.id, SessionHandoff.session_id, SessionHandoff.account_id, SessionHandoff.intent,
               SessionHandoff.created_by_user_id, SessionHandoff.claimed_by_user_id, SessionHandoff.claimed_by_name,
               SessionHandoff.claimed_at, SessionHandoff.engineer_notes, SessionHandoff.priority,
               SessionHandoff.target_user_id, SessionHandoff.snapshot, SessionHandoff.ai_assessment,
               SessionHandoff.ai_assessment_data, SessionHandoff.assessment_status, SessionHandoff.renotify_count,
               SessionHandoff.created_at, AiSession.session_type, AiSession.problem_summary),
        AiSession.status.label("ref_session_status"),
    ])


def _refs(*columns: Any) -> list[Label[Any]]:
    # A prefix, so that no entity column shadows the user's or the subscription's ("status") in the row.
    return [column.label(f"ref_{column.key}") for column in columns]


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
        query = (select(User, Subscription.status)
                 .outerjoin(Subscription, Subscription.account_id == User.account_id)
                 .where(User.id == user_id))
        if lookup is not None:
            query = query.outerjoin(lookup.target, lookup.on).add_columns(*lookup.columns)
        row = (await self.session.execute(query)).one_or_none()
        if row is None:
            return None
        found = row._mapping
        entity = ({c.name.removeprefix("ref_"): found[c.name] for c in lookup.columns}
                  if lookup is not None and found["ref_id"] is not None else None)
        return Access(user=row[0], subscription_status=row[1], entity=entity)
