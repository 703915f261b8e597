"""Suggested fixes of an AI session: record one, apply it, report its outcome, reject the AI's reading of it.

A new fix goes through the session's workflow (it supersedes the active one); everything after goes
through the fix's own workflow (`fix-{id}`), which serializes changes and keeps the reminders of a
parked fix.
"""

from __future__ import annotations

from fastapi import APIRouter, status
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import (
    ActiveSubscription,
    AiSessionReader,
    EngineerUser,
    FixCommandsDep,
    OwnedAiSession,
    OwnedFix,
    ReadSessionDep,
    SessionCommandsDep,
    SessionDep,
)
from api.errors import error_responses
from api.idempotency import Idempotent
from api.schemas.ai_sessions import FixCreate, FixListOut, FixOut, OutcomeRequest
from api.schemas.common import Limit, Offset
from core.errors import NotFound
from db.repositories.suggested_fixes import SuggestedFixRepository
from services.ai_sessions import FixRef
from workflows.contracts.ai_session import FixDraft
from workflows.contracts.fix import FixCommandResult, OutcomeInput

router = APIRouter(prefix="/ai-sessions/{session_id}/suggested-fixes", tags=["suggested-fixes"],
                   responses=error_responses(401, 403, 503))

FIX_ERRORS = error_responses(402, 422, described={
    400: "A rule was broken: e.g. applied_partial and applied_pending need notes",
    404: "No such AI session in your account, or no such fix in this session",
    409: "The fix's outcome is final (applied_success, applied_failed, dismissed), or it is not proposed",
    503: "The workflow engine or its workers did not answer in time",
})
READ_ERRORS = error_responses(422, described={404: "No such AI session in your account, or no such fix in it"})


def answered(ref: FixRef, result: FixCommandResult) -> FixOut | None:
    """The fix after a command from what was read before it and what the command answered (no read after it);
    None when the command answered no view (unchanged, or a run from before views)."""
    if result.view is None or not ref.row:
        return None
    return FixOut.model_validate({**ref.row, **result.view.model_dump()})


async def fix_out(session: AsyncSession, ref: FixRef) -> FixOut:
    """The fix as stored (read after the command: its workflow persisted it before answering)."""
    row = await SuggestedFixRepository(session).in_session(ref.account_id, ref.session_id, ref.id)
    if row is None:
        raise NotFound("Suggested fix not found in this session")
    return FixOut.model_validate(row)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=FixOut, responses=FIX_ERRORS)
async def create_fix(
    owned: OwnedAiSession, user: EngineerUser, body: FixCreate, session: SessionDep, commands: SessionCommandsDep,
    idem: Idempotent, _paid: None = ActiveSubscription,
) -> Response:
    """Record an engineer's own candidate fix; it becomes the active fix and supersedes the previous one."""

    async def command() -> FixOut:
        draft = FixDraft(fix_id=idem.entity_id("suggested_fix"), by_user_id=user.id, **body.model_dump())
        added = await commands.add_fix(owned, draft, idem.key)
        return await fix_out(session, FixRef(id=added.fix_id, session_id=owned.id, account_id=owned.account_id,
                                             status="proposed", title=body.title))

    return await idem.run(command, status_code=status.HTTP_201_CREATED)


@router.get("", response_model=FixListOut, responses=READ_ERRORS)
async def list_fixes(
    owned: OwnedAiSession, _: AiSessionReader, session: SessionDep, limit: Limit = 100, offset: Offset = 0
) -> FixListOut:
    """Every fix of the session (superseded ones included), newest first."""
    rows, total = await SuggestedFixRepository(session).list_for_session(owned.id, limit=limit, offset=offset)
    return FixListOut(items=[FixOut.model_validate(r) for r in rows], total=total)


@router.get("/active", response_model=FixOut,
            responses=error_responses(422, described={404: "No such session, or it has no active fix"}))
async def active_fix(owned: OwnedAiSession, _: AiSessionReader, session: SessionDep) -> FixOut:
    """The session's active fix (the latest one not superseded)."""
    row = await SuggestedFixRepository(session).active(owned.id)
    if row is None:
        raise NotFound("This session has no active fix")
    return FixOut.model_validate(row)


@router.get("/{fix_id}", response_model=FixOut, responses=READ_ERRORS)
async def get_fix(fix: OwnedFix, _: AiSessionReader, session: ReadSessionDep) -> FixOut:
    """One fix with its verification state and next reminder."""
    return await fix_out(session, fix)


@router.post("/{fix_id}/apply", response_model=FixOut, responses=FIX_ERRORS)
async def apply_fix(
    fix: OwnedFix, _: EngineerUser, session: ReadSessionDep, commands: FixCommandsDep, idem: Idempotent,
    _paid: None = ActiveSubscription,
) -> Response:
    """Say the fix was applied: stamps `applied_at` once (again: 200, unchanged); the status stays proposed."""

    async def command() -> FixOut:
        return answered(fix, await commands.apply(fix, idem.key)) or await fix_out(session, fix)

    return await idem.run(command)


@router.patch("/{fix_id}/outcome", response_model=FixOut, responses=FIX_ERRORS)
async def record_outcome(
    fix: OwnedFix, user: EngineerUser, body: OutcomeRequest, session: ReadSessionDep, commands: FixCommandsDep,
    idem: Idempotent, _paid: None = ActiveSubscription,
) -> Response:
    """Report how the fix went; `applied_pending` parks it and schedules reminders to you."""

    async def command() -> FixOut:
        result = await commands.record_outcome(
            fix, OutcomeInput(outcome=body.outcome, notes=body.notes, by_user_id=user.id), idem.key)
        return answered(fix, result) or await fix_out(session, fix)

    return await idem.run(command)


@router.delete("/{fix_id}/ai-outcome-proposal", response_model=FixOut, responses=FIX_ERRORS)
async def reject_ai_outcome_proposal(
    fix: OwnedFix, _: EngineerUser, session: ReadSessionDep, commands: FixCommandsDep, idem: Idempotent,
    _paid: None = ActiveSubscription,
) -> Response:
    """Reject the assistant's outcome proposal for the fix (idempotent; the status does not change)."""

    async def command() -> FixOut:
        await commands.clear_ai_proposal(fix, idem.key)
        return await fix_out(session, fix)

    return await idem.run(command)

