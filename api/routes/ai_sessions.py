"""AI troubleshooting sessions: open, converse, preview and post the closing documents.

Every change goes through the session's workflow (`session-{id}`); reads come from Postgres.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.deps import (
    ActiveSubscription,
    AiSessionReader,
    EngineerUser,
    OwnedAiSession,
    SessionCommandsDep,
    SessionDep,
    SessionFactoryDep,
    SettingsDep,
)
from api.errors import error_responses
from api.idempotency import Idempotent
from api.schemas.ai_sessions import (
    AiOutcomeProposalOut,
    AiSessionCreate,
    AiSessionListOut,
    AiSessionOut,
    AiSessionSummaryOut,
    FixOut,
    MessageOut,
    MessageRequest,
    MessageResponse,
    PostDocumentOut,
    PostDocumentRequest,
    PreviewOut,
)
from api.schemas.common import Limit, Offset
from api.schemas.psa import WritebackListOut, WritebackOut
from core.errors import NotFound, UnprocessableRequest
from db.repositories.ai_sessions import AiSessionRepository, SessionDocumentRepository
from db.repositories.psa import PsaConnectionRepository, PsaWritebackRepository
from db.repositories.suggested_fixes import SuggestedFixRepository
from db.session import unit_of_work
from integrations.psa.factory import ticket_id_problem
from services.ai_sessions import AiSessionRef
from workflows.contracts.ai_session import (
    CloseInput,
    DocumentKind,
    MessageInput,
    SessionCreate,
    SessionStatus,
    summary_of,
)

router = APIRouter(prefix="/ai-sessions", tags=["ai-sessions"], responses=error_responses(401, 403, 503))

SESSION_ERRORS = error_responses(402, 422, described={
    400: "A rule was broken (the detail says which), or the body is not valid JSON",
    404: "No such AI session in your account",
    409: "The session is not in a state that allows this (e.g. already resolved)",
    502: "The AI or the PSA failed, or a PSA status change did not verify (the detail says which); "
         "send the same request again",
    503: "The workflow engine or its workers did not answer in time",
})
NO_TICKET = "This session has no PSA ticket: the document is stored on the session only"


async def session_out(session: AsyncSession, account_id: uuid.UUID, session_id: uuid.UUID) -> AiSessionOut:
    """The session with its transcript, read after a command (the workflow persisted it before answering)."""
    repo = AiSessionRepository(session)
    row = await repo.get_in_account(account_id, session_id)
    if row is None:
        raise NotFound("AI session not found")
    await session.refresh(row)
    messages = [MessageOut.model_validate(m) for m in await repo.messages(row.id)]
    return AiSessionOut.model_validate({**AiSessionSummaryOut.model_validate(row).model_dump(),
                                        "intake_content": row.intake_content, "messages": messages,
                                        "resolution_note_markdown": row.resolution_note_markdown,
                                        "escalation_package_markdown": row.escalation_package_markdown})


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AiSessionOut, responses=SESSION_ERRORS)
async def create_session(
    body: AiSessionCreate, user: EngineerUser, session: SessionDep, sessions: SessionFactoryDep,
    commands: SessionCommandsDep, idem: Idempotent, _paid: None = ActiveSubscription,
) -> Response:
    """Open a session from the engineer's description of the problem, or from a PSA ticket's summary."""
    if body.psa_connection_id is not None:
        async with unit_of_work(sessions) as read:  # ended: no pooled connection waits on the workflow with us
            connection = await PsaConnectionRepository(read).get_in_account(user.account_id, body.psa_connection_id)
        if connection is None:
            raise NotFound("PSA connection not found")
        problem = ticket_id_problem(connection.provider, body.psa_ticket_id or "")
        if problem is not None:  # the PSA could never take it: the caller's mistake, not an upstream failure
            raise UnprocessableRequest(problem)

    async def command() -> AiSessionOut:
        text = body.intake_content.text if body.intake_content else ""
        created = SessionCreate(
            session_id=idem.entity_id("ai_session"), account_id=user.account_id, user_id=user.id,
            session_type=body.session_type, intake_type=body.intake_type, intake_text=text,
            problem_summary=summary_of(text), psa_connection_id=body.psa_connection_id,
            psa_ticket_id=body.psa_ticket_id,
        )
        await commands.create(created, idem.key)
        return await session_out(session, user.account_id, created.session_id)

    return await idem.run(command, status_code=status.HTTP_201_CREATED)


StatusFilter = Annotated[SessionStatus | None, Query(alias="status", description="Only sessions with this status.")]


@router.get("", response_model=AiSessionListOut, responses=error_responses(422))
async def list_sessions(
    user: AiSessionReader, session: SessionDep, status_: StatusFilter = None, limit: Limit = 50, offset: Offset = 0,
) -> AiSessionListOut:
    """The account's sessions, newest first."""
    rows, total = await AiSessionRepository(session).list_for_account(user.account_id, status=status_,
                                                                      limit=limit, offset=offset)
    return AiSessionListOut(items=[AiSessionSummaryOut.model_validate(r) for r in rows], total=total)


@router.get("/{session_id}", response_model=AiSessionOut,
            responses=error_responses(422, described={404: "No such AI session in your account"}))
async def get_session(owned: OwnedAiSession, _: AiSessionReader, session: SessionDep) -> AiSessionOut:
    """One session with its transcript."""
    return await session_out(session, owned.account_id, owned.id)


@router.get("/{session_id}/writebacks", response_model=WritebackListOut,
            responses=error_responses(422, described={404: "No such AI session in your account"}))
async def list_writebacks(owned: OwnedAiSession, _: AiSessionReader, session: SessionDep) -> WritebackListOut:
    """What was posted to the session's PSA ticket: when, by whom, the PSA's ids, verification and later drift."""
    rows = await PsaWritebackRepository(session).for_session(owned.id)
    return WritebackListOut(items=[WritebackOut.model_validate(r) for r in rows], total=len(rows))


@router.post("/{session_id}/messages", response_model=MessageResponse, responses=SESSION_ERRORS)
async def send_message(
    owned: OwnedAiSession, _: EngineerUser, body: MessageRequest, session: SessionDep, commands: SessionCommandsDep,
    idem: Idempotent, _paid: None = ActiveSubscription,
) -> Response:
    """Talk to the assistant: its reply, confidence tier, and any fix or outcome it proposes."""

    async def command() -> MessageResponse:
        result = await commands.message(owned, MessageInput(content=body.content), idem.key)
        fix = None
        if result.suggested_fix_id is not None:
            row = await SuggestedFixRepository(session).in_session(owned.account_id, owned.id, result.suggested_fix_id)
            fix = FixOut.model_validate(row) if row is not None else None
        proposal = result.outcome_proposal
        return MessageResponse(
            reply=result.reply, confidence_tier=result.confidence_tier, suggested_fix=fix,
            outcome_proposal=AiOutcomeProposalOut(outcome=proposal.outcome, reason=proposal.reason)
            if proposal else None, outcome_fix_id=result.outcome_fix_id, state_version=result.state_version,
        )

    return await idem.run(command)


async def _preview(owned: AiSessionRef, kind: DocumentKind, sessions: async_sessionmaker[AsyncSession],
                   commands: SessionCommandsDep) -> PreviewOut:
    async with unit_of_work(sessions) as read:  # ended: no pooled connection waits on the model with us
        cached = await SessionDocumentRepository(read).get(owned.id, kind, owned.state_version)
    if cached is not None:  # an unchanged session costs no model call, whichever process wrote it
        return PreviewOut(markdown=cached.markdown, state_version=owned.state_version, from_cache=True)
    found = await commands.preview(owned, kind)
    return PreviewOut(markdown=found.markdown, state_version=found.state_version, from_cache=found.from_cache)


@router.post("/{session_id}/resolution-note/preview", response_model=PreviewOut, responses=SESSION_ERRORS)
async def preview_resolution_note(
    owned: OwnedAiSession, _: EngineerUser, sessions: SessionFactoryDep, commands: SessionCommandsDep,
    _paid: None = ActiveSubscription,
) -> PreviewOut:
    """The customer-facing resolution note for the session as it stands (cached until the session changes)."""
    return await _preview(owned, "resolution_note", sessions, commands)


@router.post("/{session_id}/escalation-package/preview", response_model=PreviewOut, responses=SESSION_ERRORS)
async def preview_escalation_package(
    owned: OwnedAiSession, _: EngineerUser, sessions: SessionFactoryDep, commands: SessionCommandsDep,
    _paid: None = ActiveSubscription,
) -> PreviewOut:
    """The internal escalation package for the next engineer (cached until the session changes)."""
    return await _preview(owned, "escalation_package", sessions, commands)


async def _post(owned: AiSessionRef, kind: DocumentKind, body: PostDocumentRequest, user_id: uuid.UUID,
                commands: SessionCommandsDep, idem: Idempotent, assessment_timeout_s: int = 120) -> Response:
    inp = CloseInput(kind=kind, markdown=body.markdown, by_user_id=user_id, time_minutes=body.time_minutes,
                     assessment_timeout_s=assessment_timeout_s)

    if body.time_minutes is not None and owned.psa_ticket_id is None:
        raise UnprocessableRequest("time_minutes: this session has no PSA ticket to log time on; post without it")

    async def command() -> PostDocumentOut:
        if owned.psa_ticket_id is not None:
            posted = await commands.post_to_psa(owned, inp, idem.key)
            return PostDocumentOut.model_validate(posted.model_dump())
        closed = await commands.close_local(owned, inp, idem.key)
        return PostDocumentOut(outcome=closed.outcome, session_status=closed.session_status,
                               state_version=closed.state_version, status_transition_skipped_reason=NO_TICKET)

    return await idem.run(command)


@router.post("/{session_id}/resolution-note/post", response_model=PostDocumentOut, responses=SESSION_ERRORS)
async def post_resolution_note(
    owned: OwnedAiSession, user: EngineerUser, body: PostDocumentRequest, commands: SessionCommandsDep,
    idem: Idempotent, _paid: None = ActiveSubscription,
) -> Response:
    """Resolve the session with the (edited) resolution note; a second post is a 409."""
    return await _post(owned, "resolution_note", body, user.id, commands, idem)


@router.post("/{session_id}/escalation-package/post", response_model=PostDocumentOut, responses=SESSION_ERRORS)
async def post_escalation_package(
    owned: OwnedAiSession, user: EngineerUser, body: PostDocumentRequest, commands: SessionCommandsDep,
    idem: Idempotent, settings: SettingsDep, _paid: None = ActiveSubscription,
) -> Response:
    """Escalate the session with the (edited) escalation package, as `POST .../handoff` escalates: a handoff in
    the queue (the package as its notes), the team told, a senior claims it. A second post is a 409."""
    return await _post(owned, "escalation_package", body, user.id, commands, idem,
                       assessment_timeout_s=settings.handoff_assessment_timeout_s)
