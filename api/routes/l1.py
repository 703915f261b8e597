"""The L1 workspace: flows, categories, intake, and walk sessions driven through their workflows."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, status
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import ActiveSubscription, AdminUser, EngineerUser, L1User, SessionDep, SettingsDep, TemporalDep
from api.errors import error_responses
from api.schemas.common import Limit, Offset
from api.schemas.l1 import (
    CategoryOut,
    CategoryPatch,
    EscalateRequest,
    EscalateResponse,
    EscalateWithoutWalkRequest,
    EscalateWithoutWalkResponse,
    FlowCreate,
    FlowOut,
    IntakeRequest,
    IntakeResponse,
    NotesRequest,
    NotesResponse,
    ResolveRequest,
    ResolveResponse,
    SessionOut,
    StepRequest,
    StepResponse,
)
from api.temporal import TemporalGateway
from core.config import Settings
from core.errors import NotFound, RuleViolation
from db.models import L1WalkSession, User
from db.repositories.l1_catalog import CategoryRepository, FlowRepository
from db.repositories.l1_sessions import WalkSessionRepository
from db.repositories.users import UserRepository
from services.l1_intake import escalate_without_walk, run_intake
from services.walks import WalkCommands
from workflows.contracts.walk import WalkState

router = APIRouter(prefix="/l1", tags=["l1"], responses=error_responses(401, 403, 503))

IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", max_length=200, pattern=r"^[A-Za-z0-9._:-]+$",
    description="Send the same key when retrying: the command is applied once and its first answer returned. "
                "Letters, digits and . _ : - only (a UUID is ideal).",
    examples=["5f0c6d1e-8a4b-4f1e-9c3a-2b7d0e6f1a90"],
)]
WALK_ERRORS = error_responses(402, 502, described={
    400: "A rule was broken (e.g. stepping an adhoc session), or the body is not valid JSON",
    404: "No such session in your account",
    409: "The session is not active, or the node is not the pending one",
    503: "The workflow engine or its workers did not answer in time",
})


async def _walks(temporal: TemporalGateway, settings: Settings) -> WalkCommands:
    return WalkCommands(await temporal.client(), settings)


async def _own_session(session: AsyncSession, user: User, session_id: uuid.UUID) -> L1WalkSession:
    row = await WalkSessionRepository(session).get_in_account(user.account_id, session_id)
    if row is None:
        raise NotFound("Walk session not found")
    # End the read transaction: the pooled connection must not wait on the workflow with us.
    await session.commit()
    return row


def _session_out(state: WalkState) -> SessionOut:
    return SessionOut.model_validate(state.model_dump())


# --- flows and categories -----------------------------------------------------------------------


@router.post("/flows", status_code=status.HTTP_201_CREATED, response_model=FlowOut, responses=error_responses(400))
async def create_flow(body: FlowCreate, user: AdminUser, session: SessionDep) -> FlowOut:
    """Author a decision tree (admin+)."""
    flow = await FlowRepository(session).create(
        account_id=user.account_id, title=body.title, category=body.category.lower(),
        keywords=[k.lower() for k in body.keywords], tree=body.tree.model_dump(mode="json", exclude_none=True),
        created_by_user_id=user.id,
    )
    await session.commit()
    return FlowOut.model_validate(flow)


@router.get("/flows", response_model=list[FlowOut])
async def list_flows(user: L1User, session: SessionDep, limit: Limit = 50, offset: Offset = 0) -> list[FlowOut]:
    """The account's flows, newest first."""
    rows = await FlowRepository(session).list_for_account(user.account_id, limit=limit, offset=offset)
    return [FlowOut.model_validate(f) for f in rows]


@router.get("/categories", response_model=list[CategoryOut])
async def list_categories(user: AdminUser, session: SessionDep) -> list[CategoryOut]:
    """The account's categories (the defaults are created on first use)."""
    repo = CategoryRepository(session)
    await repo.ensure_defaults(user.account_id)
    await session.commit()
    return [CategoryOut.model_validate(c) for c in await repo.list_for_account(user.account_id)]


@router.patch("/categories", response_model=list[CategoryOut], responses=error_responses(400))
async def patch_categories(body: list[CategoryPatch], user: AdminUser, session: SessionDep) -> list[CategoryOut]:
    """Create categories or change their scope and escalation recipients (matched by name)."""
    repo = CategoryRepository(session)
    await repo.ensure_defaults(user.account_id)
    for patch in body:
        recipients = None
        if patch.escalation_recipient_ids is not None:
            live = await UserRepository(session).active_in_account(user.account_id, patch.escalation_recipient_ids)
            missing = set(patch.escalation_recipient_ids) - {u.id for u in live}
            if missing:
                raise RuleViolation(f"escalation_recipient_ids must be active users of your account: "
                                    f"{', '.join(sorted(map(str, missing)))}")
            recipients = [str(u) for u in patch.escalation_recipient_ids]
        await repo.upsert(user.account_id, patch.name, in_scope=patch.in_scope, recipient_ids=recipients)
    await session.commit()
    return [CategoryOut.model_validate(c) for c in await repo.list_for_account(user.account_id)]


# --- intake and sessions ------------------------------------------------------------------------


@router.post("/intake", response_model=IntakeResponse, responses=WALK_ERRORS)
async def intake(
    body: IntakeRequest, user: L1User, session: SessionDep, temporal: TemporalDep, settings: SettingsDep,
    _paid: None = ActiveSubscription,
) -> IntakeResponse:
    """Match a flow, build a walk with the AI, walk it ad hoc, or say it is out of L1 scope."""
    result = await run_intake(
        session, await _walks(temporal, settings), user, problem=body.problem_statement,
        customer_name=body.customer_name, customer_contact=body.customer_contact, flow_id=body.flow_id,
        adhoc=body.adhoc,
    )
    row = result.session
    return IntakeResponse(
        outcome=result.outcome, session_kind=row.session_kind if row else None,
        session_id=row.id if row else None, ticket_id=result.ticket_id, category=result.category,
        message=result.message, pending_node=result.pending_node,
    )


@router.get("/sessions/active", response_model=list[SessionOut])
async def active_sessions(user: L1User, session: SessionDep, limit: Limit = 50, offset: Offset = 0) -> list[SessionOut]:
    """The caller's active sessions, most recently stepped first."""
    rows = await WalkSessionRepository(session).list_active_for_user(
        user.account_id, user.id, limit=limit, offset=offset
    )
    return [SessionOut.model_validate(r) for r in rows]


@router.get("/escalations", response_model=list[SessionOut])
async def escalations(
    user: EngineerUser, session: SessionDep, limit: Limit = 50, offset: Offset = 0
) -> list[SessionOut]:
    """Escalated L1 sessions of the account with their walked paths (engineer+), newest first."""
    rows = await WalkSessionRepository(session).list_escalated(user.account_id, limit=limit, offset=offset)
    return [SessionOut.model_validate(r) for r in rows]


@router.get("/sessions/{session_id}", response_model=SessionOut,
            responses=error_responses(described={404: WALK_ERRORS[404]["description"]}))
async def get_session(session_id: uuid.UUID, user: L1User, session: SessionDep) -> SessionOut:
    """One session; re-opening it replays the pending node (no new AI call)."""
    row = await WalkSessionRepository(session).get_in_account(user.account_id, session_id)
    if row is None:
        raise NotFound("Walk session not found")
    return SessionOut.model_validate(row)


@router.post("/sessions/{session_id}/step", response_model=StepResponse, responses=WALK_ERRORS)
async def step(
    session_id: uuid.UUID, body: StepRequest, user: L1User, session: SessionDep, temporal: TemporalDep,
    settings: SettingsDep, idempotency_key: IdempotencyKey = None, _paid: None = ActiveSubscription,
) -> StepResponse:
    """Answer the pending question; returns the next question or the resolution reached."""
    row = await _own_session(session, user, session_id)
    result = await (await _walks(temporal, settings)).step(row, body, idempotency_key)
    return StepResponse(session=_session_out(result.state), next_node=result.next_node,
                        resolution=result.resolution)


@router.post("/sessions/{session_id}/notes", response_model=NotesResponse, responses=WALK_ERRORS)
async def add_notes(
    session_id: uuid.UUID, body: NotesRequest, user: L1User, session: SessionDep, temporal: TemporalDep,
    settings: SettingsDep, idempotency_key: IdempotencyKey = None, _paid: None = ActiveSubscription,
) -> NotesResponse:
    """Append notes (the only way to record an adhoc walk)."""
    row = await _own_session(session, user, session_id)
    state = await (await _walks(temporal, settings)).add_notes(row, body, idempotency_key)
    return NotesResponse(walk_notes=state.walk_notes)


@router.post("/sessions/{session_id}/resolve", response_model=ResolveResponse, responses=WALK_ERRORS)
async def resolve(
    session_id: uuid.UUID, body: ResolveRequest, user: L1User, session: SessionDep, temporal: TemporalDep,
    settings: SettingsDep, idempotency_key: IdempotencyKey = None, _paid: None = ActiveSubscription,
) -> ResolveResponse:
    """Close the walk as resolved; a helpful AI-built walk is proposed as a new flow."""
    row = await _own_session(session, user, session_id)
    result = await (await _walks(temporal, settings)).resolve(row, body, idempotency_key)
    proposal = uuid.UUID(result.proposal_id) if result.proposal_id else None
    return ResolveResponse(session=_session_out(result.state), proposal_id=proposal)


@router.post("/sessions/{session_id}/escalate", response_model=EscalateResponse, responses=WALK_ERRORS)
async def escalate(
    session_id: uuid.UUID, body: EscalateRequest, user: L1User, session: SessionDep, temporal: TemporalDep,
    settings: SettingsDep, idempotency_key: IdempotencyKey = None, _paid: None = ActiveSubscription,
) -> EscalateResponse:
    """Escalate to engineers: the category's recipients (else the account's defaults) are emailed."""
    row = await _own_session(session, user, session_id)
    result = await (await _walks(temporal, settings)).escalate(row, body, idempotency_key)
    return EscalateResponse(session=_session_out(result.state), notified=result.notified, warning=result.warning)


@router.post("/escalate-without-walk", response_model=EscalateWithoutWalkResponse, responses=WALK_ERRORS)
async def escalate_now(
    body: EscalateWithoutWalkRequest, user: L1User, session: SessionDep, temporal: TemporalDep,
    settings: SettingsDep, idempotency_key: IdempotencyKey = None, _paid: None = ActiveSubscription,
) -> EscalateWithoutWalkResponse:
    """Escalate without walking: one call creates the ticket and an already-escalated adhoc session."""
    row, result = await escalate_without_walk(
        session, await _walks(temporal, settings), user, problem=body.problem_statement,
        reason_category=body.reason_category, reason=body.reason,
        category=body.category.lower() if body.category else None, key=idempotency_key,
    )
    return EscalateWithoutWalkResponse(session_id=row.id, ticket_id=row.ticket_id, notified=result.notified,
                                       warning=result.warning)
