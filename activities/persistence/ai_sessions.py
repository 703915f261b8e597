"""The session workflow's `persistence.*` activities: each call is one transaction and safe to retry."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.persistence.guard import refused_values_rejected
from activities.persistence.handoffs import latest_handoff_of
from activities.persistence.writebacks import pending_recheck
from db.models import AiSession
from db.repositories.ai_sessions import AiSessionRepository
from db.repositories.handoffs import HandoffRepository
from db.repositories.psa import PsaWritebackRepository
from db.repositories.suggested_fixes import SuggestedFixRepository
from workflows.contracts.ai_session import (
    ADD_FIX,
    CLOSE_SESSION,
    CREATE_SESSION,
    LOAD_SESSION,
    RECORD_TURN,
    SUMMARY_CHARS,
    AddFixInput,
    AddFixResult,
    CloseResult,
    CloseSessionInput,
    LoadSessionResult,
    RecordTurnInput,
    RecordTurnResult,
    SessionControl,
    SessionCreate,
    SessionRef,
)
from workflows.contracts.common import REJECT_CONFLICT, REJECT_NOT_FOUND, reject
from workflows.contracts.fix import TERMINAL_STATUSES


def session_control(row: AiSession) -> SessionControl:
    """The workflow's view of a session row."""
    return SessionControl(
        id=row.id, account_id=row.account_id, user_id=row.user_id, status=row.status,
        session_type=row.session_type,
        problem_summary=row.problem_summary[:SUMMARY_CHARS], message_count=row.message_count,
        confidence=row.confidence, confidence_tier=row.confidence_tier,
        has_psa_ticket=row.psa_ticket_id is not None, last_activity_at=row.last_activity_at,
    )


def turn_fix_id(session_id: uuid.UUID, turn_id: str) -> uuid.UUID:
    """The id of the fix a turn proposes: derived from the turn, so a retried turn finds its fix."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"rflow:ai-session:{session_id}:turn:{turn_id}")


class SessionPersistence:
    """Creates, loads and changes AI sessions for `TroubleshootingSessionWorkflow`."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory

    def all(self) -> list[Any]:
        """Every activity of this class, for the worker."""
        return [self.create_session, self.load_session, self.record_turn, self.add_engineer_fix,
                self.close_session_local]

    @activity.defn(name=CREATE_SESSION.name)
    async def create_session(self, inp: SessionCreate) -> SessionControl:
        """Insert the session with its intake as the first message (nothing new when it exists)."""
        async with self._session_factory() as session, session.begin(), refused_values_rejected():
            row = await AiSessionRepository(session).create_once(
                session_id=inp.session_id, account_id=inp.account_id, user_id=inp.user_id,
                session_type=inp.session_type, intake_type=inp.intake_type, intake_text=inp.intake_text,
                problem_summary=inp.problem_summary, psa_connection_id=inp.psa_connection_id,
                psa_ticket_id=inp.psa_ticket_id, now=activity.info().current_attempt_scheduled_time,
            )
            return session_control(row)

    @activity.defn(name=LOAD_SESSION.name)
    async def load_session(self, inp: SessionRef) -> LoadSessionResult:
        """The session's control state, or none when the row does not exist."""
        async with self._session_factory() as session:
            row = await AiSessionRepository(session).get(inp.session_id)
            if row is None:
                return LoadSessionResult()
            due = await PsaWritebackRepository(session).due_recheck(row.id)
            recheck = pending_recheck(due) if due is not None else None
            latest = await HandoffRepository(session).latest_for_session(row.id)
            return LoadSessionResult(control=session_control(row).model_copy(update={
                "status_recheck": recheck, "handoff": latest_handoff_of(latest) if latest is not None else None}))

    @activity.defn(name=RECORD_TURN.name)
    async def record_turn(self, inp: RecordTurnInput) -> RecordTurnResult:
        """Store the exchange, the proposed fix (superseding the active one) and an outcome proposal, once."""
        async with self._session_factory() as session, session.begin(), refused_values_rejected():
            sessions, fixes = AiSessionRepository(session), SuggestedFixRepository(session)
            row = await _row(sessions, inp.session_id)
            fix_id = turn_fix_id(inp.session_id, inp.turn_id)
            if await sessions.turn_stored(inp.session_id, inp.turn_id):
                # A retry after the first attempt committed: report what it stored.
                return RecordTurnResult(
                    message_count=row.message_count, state_version=row.state_version,
                    suggested_fix_id=fix_id if inp.reply.proposed_fix else None,
                    outcome_fix_id=await _proposal_fix(fixes, inp.session_id, inp.turn_id),
                )
            reply = inp.reply
            count, version = await sessions.record_turn(
                inp.session_id, turn_id=inp.turn_id, user_content=inp.user_content, reply=reply.reply,
                confidence=reply.confidence, confidence_tier=reply.confidence_tier, at=inp.at,
            )
            # The outcome is about the fix that was active when the engineer spoke, not one proposed now.
            active = await fixes.active(inp.session_id)
            outcome_fix_id = None
            if reply.outcome_proposal is not None and active is not None and active.status not in TERMINAL_STATUSES:
                await fixes.propose_outcome(active.id, {
                    **reply.outcome_proposal.model_dump(mode="json"), "turn_id": inp.turn_id,
                    "proposed_at": inp.at.isoformat(),
                })
                outcome_fix_id = active.id
            suggested = None
            if reply.proposed_fix is not None:
                proposed = reply.proposed_fix
                await fixes.insert_superseding(
                    fix_id=fix_id, session_id=inp.session_id, account_id=row.account_id, source="ai",
                    fields={"title": proposed.title[:200], "description": proposed.description,
                            "confidence_pct": proposed.confidence_pct}, created_by_user_id=None, at=inp.at,
                )
                suggested = fix_id
            return RecordTurnResult(message_count=count, state_version=version, suggested_fix_id=suggested,
                                    outcome_fix_id=outcome_fix_id)

    @activity.defn(name=ADD_FIX.name)
    async def add_engineer_fix(self, inp: AddFixInput) -> AddFixResult:
        """Insert an engineer's own fix as the active one (once per id) and count the change."""
        async with self._session_factory() as session, session.begin(), refused_values_rejected():
            sessions = AiSessionRepository(session)
            row = await _row(sessions, inp.session_id)
            draft, fixes = inp.draft, SuggestedFixRepository(session)
            if await fixes.get(draft.fix_id) is not None:
                return AddFixResult(fix_id=draft.fix_id, state_version=row.state_version)  # a retry
            # The session row first, then the fixes: the order every writer takes, so none deadlock.
            version = await sessions.bump_version(inp.session_id, inp.at)
            await fixes.insert_superseding(
                fix_id=draft.fix_id, session_id=inp.session_id, account_id=row.account_id, source="engineer",
                fields=draft.columns(), created_by_user_id=draft.by_user_id, at=inp.at,
            )
            return AddFixResult(fix_id=draft.fix_id, state_version=version)

    @activity.defn(name=CLOSE_SESSION.name)
    async def close_session_local(self, inp: CloseSessionInput) -> CloseResult:
        """Store the posted note or package and resolve or escalate the session (once)."""
        async with self._session_factory() as session, session.begin(), refused_values_rejected():
            sessions = AiSessionRepository(session)
            version = await sessions.close(inp.session_id, kind=inp.kind, markdown=inp.markdown,
                                                 by_user_id=inp.by_user_id, at=inp.at)
            row = await _row(sessions, inp.session_id)
            status = "resolved" if inp.kind == "resolution_note" else "escalated"
            if version is None:
                stored = (row.resolution_note_markdown if inp.kind == "resolution_note"
                          else row.escalation_package_markdown)
                if not (row.status == status and stored == inp.markdown):  # else: a retry after the first commit
                    raise reject(REJECT_CONFLICT, f"This session is already {row.status}")
                version = row.state_version
            outcome = "resolved_local" if status == "resolved" else "escalated_local"
            return CloseResult(outcome=outcome, session_status=status, state_version=version)


async def _row(repo: AiSessionRepository, session_id: uuid.UUID) -> AiSession:
    row = await repo.get(session_id)
    if row is None:
        raise reject(REJECT_NOT_FOUND, f"AI session {session_id} no longer exists")
    return row


async def _proposal_fix(fixes: SuggestedFixRepository, session_id: uuid.UUID, turn_id: str) -> uuid.UUID | None:
    for fix in await fixes.all_for_session(session_id):
        if (fix.ai_outcome_proposal or {}).get("turn_id") == turn_id:
            return fix.id
    return None
