"""What the `llm.session_*` activities read by id: a session's recent transcript, its fixes, its bundle.

Workflows pass ids; these reads keep transcripts and bundles out of every Temporal payload.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AiSession, SuggestedFix
from db.repositories.ai_sessions import AiSessionRepository
from db.repositories.suggested_fixes import SuggestedFixRepository
from workflows.contracts.ai_session import TRANSCRIPT_WINDOW
from workflows.contracts.fix import TERMINAL_STATUSES
from workflows.contracts.llm import ChatTurn, LlmCallContext, ProposedFix, SessionBundle


@dataclass(frozen=True)
class ChatContext:
    """The turns and facts the model answers from."""

    problem_summary: str
    transcript: list[ChatTurn]
    active_fix: ProposedFix | None


def fix_facts(fix: SuggestedFix) -> dict[str, str | int | None]:
    """One fix as a bundle entry: title, status, notes and stamps (what every document must show)."""
    return {
        "title": fix.title, "description": fix.description, "status": fix.status,
        "confidence_pct": fix.confidence_pct,
        "applied_at": fix.applied_at.isoformat() if fix.applied_at else None,
        "verified_at": fix.verified_at.isoformat() if fix.verified_at else None,
        "failure_reason": fix.failure_reason, "partial_notes": fix.partial_notes,
        "pending_reason": fix.pending_reason, "superseded": "yes" if fix.superseded_at else "no",
    }


async def read_session(session: AsyncSession, session_id: uuid.UUID) -> AiSession:
    """The session row (LookupError when it is gone)."""
    row = await AiSessionRepository(session).get(session_id)
    if row is None:
        raise LookupError(f"AI session {session_id} does not exist")
    return row


async def chat_context(session: AsyncSession, session_id: uuid.UUID) -> ChatContext:
    """The latest turns and the active fix (only while its outcome is still open)."""
    row = await read_session(session, session_id)
    messages = await AiSessionRepository(session).messages(session_id, last=TRANSCRIPT_WINDOW)
    active = await SuggestedFixRepository(session).active(session_id)
    open_fix = None
    if active is not None and active.status not in TERMINAL_STATUSES:
        open_fix = ProposedFix(title=active.title, description=active.description,
                               confidence_pct=active.confidence_pct)
    turns = [ChatTurn(role=m.role, content=m.content) for m in messages]
    return ChatContext(problem_summary=row.problem_summary, transcript=turns, active_fix=open_fix)


async def session_bundle(
    session: AsyncSession, session_id: uuid.UUID, context: LlmCallContext
) -> tuple[SessionBundle, int]:
    """The bundle a note or package is written from, and the `state_version` it reflects.

    Call inside a REPEATABLE READ transaction so the version and the facts are one snapshot."""
    row = await read_session(session, session_id)
    messages = await AiSessionRepository(session).messages(session_id, last=TRANSCRIPT_WINDOW)
    fixes = await SuggestedFixRepository(session).all_for_session(session_id)
    bundle = SessionBundle(
        context=context, problem_summary=row.problem_summary,
        transcript=[ChatTurn(role=m.role, content=m.content) for m in messages],
        fixes=[fix_facts(f) for f in fixes],
    )
    return bundle, row.state_version
