"""The L1 workspace: flows, categories, intake, and walk sessions driven through their workflows."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import (
    ActiveSubscription,
    AdminUser,
    EngineerUser,
    L1User,
    OwnedWalk,
    ReadSessionDep,
    SessionDep,
    SessionFactoryDep,
    WalkCommandsDep,
)
from api.errors import error_responses
from api.idempotency import Idempotent
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
    SessionSummaryOut,
    StepRequest,
    StepResponse,
)
from core.errors import NotFound, RuleViolation
from db.repositories.l1_catalog import CategoryRepository, FlowRepository
from db.repositories.l1_sessions import WalkSessionRepository
from db.repositories.users import UserRepository
from services.l1_intake import escalate_without_walk, run_intake
from services.walks import WalkRef
from workflows.contracts.walk import StepResult, WalkNote

router = APIRouter(prefix="/l1", tags=["l1"], responses=error_responses(401, 403, 503))

WALK_ERRORS = error_responses(402, 422, 502, described={
    400: "A rule was broken (e.g. stepping an adhoc session), or the body is not valid JSON",
    404: "No such session in your account",
    409: "The session is not active, or the node is not the pending one",
    503: "The workflow engine or its workers did not answer in time",
})


async def _summary(session: AsyncSession, walk: WalkRef) -> SessionSummaryOut:
    # Read after the command: the workflow persisted the change before answering.
    row = await WalkSessionRepository(session).get_in_account(walk.account_id, walk.id)
    if row is None:
        raise NotFound("Walk session not found")
    return SessionSummaryOut.model_validate(row)


def _after_step(walk: WalkRef, result: StepResult) -> SessionSummaryOut | None:
    """The walk after the step from the row read before it and what the step wrote; None when that cannot be
    exact (a step of another request landed in between, or a run answered without what it wrote)."""
    row = walk.row
    if not row or result.step is None or result.depth is None or len(row["walked_path"]) + 1 != result.depth:
        return None
    return SessionSummaryOut.model_validate({
        **row, "walked_path": [*row["walked_path"], result.step.model_dump()], "depth": result.depth,
        "pending_node": result.next_node or result.resolution, "last_step_at": result.last_step_at,
    })


# --- flows and categories -----------------------------------------------------------------------


@router.post("/flows", status_code=status.HTTP_201_CREATED, response_model=FlowOut, responses=error_responses(400))
async def create_flow(body: FlowCreate, user: AdminUser, session: SessionDep, idem: Idempotent) -> Response:
    """Author a decision tree (admin+)."""

    async def command() -> FlowOut:
        flow = await FlowRepository(session).create(
            account_id=user.account_id, title=body.title, category=body.category.lower(),
            keywords=[k.lower() for k in body.keywords], tree=body.tree.model_dump(mode="json", exclude_none=True),
            created_by_user_id=user.id,
        )
        return FlowOut.model_validate(flow)

    return await idem.run(command, status_code=status.HTTP_201_CREATED)


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
    return [CategoryOut.model_validate(c) for c in await repo.list_for_account(user.account_id)]


@router.patch("/categories", response_model=list[CategoryOut], responses=error_responses(400))
async def patch_categories(
    body: list[CategoryPatch], user: AdminUser, session: SessionDep, idem: Idempotent
) -> Response:
    """Create categories or change their scope and escalation recipients (matched by name)."""

    async def command() -> list[CategoryOut]:
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
        return [CategoryOut.model_validate(c) for c in await repo.list_for_account(user.account_id)]

    return await idem.run(command)


# --- intake and sessions ------------------------------------------------------------------------


@router.post("/intake", response_model=IntakeResponse, responses=WALK_ERRORS)
async def intake(
    body: IntakeRequest, user: L1User, sessions: SessionFactoryDep, walks: WalkCommandsDep, idem: Idempotent,
    _paid: None = ActiveSubscription,
) -> Response:
    """Match a flow, build a walk with the AI, walk it ad hoc, or say it is out of L1 scope."""

    async def command() -> IntakeResponse:
        result = await run_intake(
            sessions, walks, user, idem, problem=body.problem_statement, customer_name=body.customer_name,
            customer_contact=body.customer_contact, flow_id=body.flow_id, adhoc=body.adhoc,
        )
        return IntakeResponse(
            outcome=result.outcome, session_kind=result.session_kind, session_id=result.session_id,
            ticket_id=result.ticket_id, category=result.category, message=result.message,
            pending_node=result.pending_node,
        )

    return await idem.run(command)


@router.get("/sessions/active", response_model=list[SessionSummaryOut])
async def active_sessions(
    user: L1User, session: SessionDep, limit: Limit = 50, offset: Offset = 0
) -> list[SessionSummaryOut]:
    """The caller's active sessions, most recently stepped first."""
    rows = await WalkSessionRepository(session).list_active_for_user(
        user.account_id, user.id, limit=limit, offset=offset
    )
    return [SessionSummaryOut.model_validate(r) for r in rows]


@router.get("/escalations", response_model=list[SessionSummaryOut])
async def escalations(
    user: EngineerUser, session: SessionDep, limit: Limit = 50, offset: Offset = 0
) -> list[SessionSummaryOut]:
    """Escalated L1 sessions of the account with their walked paths (engineer+), newest first."""
    rows = await WalkSessionRepository(session).list_escalated(user.account_id, limit=limit, offset=offset)
    return [SessionSummaryOut.model_validate(r) for r in rows]


@router.get("/sessions/{session_id}", response_model=SessionOut,
            responses=error_responses(described={404: WALK_ERRORS[404]["description"]}))
async def get_session(session_id: uuid.UUID, user: L1User, session: SessionDep) -> SessionOut:
    """One session with its notes; re-opening it replays the pending node (no new AI call)."""
    repo = WalkSessionRepository(session)
    row = await repo.get_in_account(user.account_id, session_id)
    if row is None:
        raise NotFound("Walk session not found")
    notes = [WalkNote.model_validate(n, from_attributes=True) for n in await repo.notes(row.id)]
    return SessionOut.model_validate({**SessionSummaryOut.model_validate(row).model_dump(), "walk_notes": notes})


@router.post("/sessions/{session_id}/step", response_model=StepResponse, responses=WALK_ERRORS)
async def step(
    walk: OwnedWalk, _: L1User, body: StepRequest, session: ReadSessionDep, walks: WalkCommandsDep, idem: Idempotent,
    _paid: None = ActiveSubscription,
) -> Response:
    """Answer the pending question; returns the next question or the resolution reached."""

    async def command() -> StepResponse:
        result = await walks.step(walk, body, idem.key)
        return StepResponse(session=_after_step(walk, result) or await _summary(session, walk),
                            next_node=result.next_node, resolution=result.resolution)

    return await idem.run(command)


@router.post("/sessions/{session_id}/notes", response_model=NotesResponse, responses=WALK_ERRORS)
async def add_notes(
    walk: OwnedWalk, _: L1User, body: NotesRequest, session: ReadSessionDep, walks: WalkCommandsDep, idem: Idempotent,
    _paid: None = ActiveSubscription,
) -> Response:
    """Append notes (the only way to record an adhoc walk); answers with all of the walk's notes."""

    async def command() -> NotesResponse:
        await walks.add_notes(walk, body, idem.key)
        notes = await WalkSessionRepository(session).notes(walk.id)
        return NotesResponse(walk_notes=[WalkNote.model_validate(n, from_attributes=True) for n in notes])

    return await idem.run(command)


@router.post("/sessions/{session_id}/resolve", response_model=ResolveResponse, responses=WALK_ERRORS)
async def resolve(
    walk: OwnedWalk, _: L1User, body: ResolveRequest, session: ReadSessionDep, walks: WalkCommandsDep,
    idem: Idempotent, _paid: None = ActiveSubscription,
) -> Response:
    """Close the walk as resolved; a helpful AI-built walk is proposed as a new flow."""

    async def command() -> ResolveResponse:
        result = await walks.resolve(walk, body, idem.key)
        return ResolveResponse(session=await _summary(session, walk), proposal_id=result.proposal_id)

    return await idem.run(command)


@router.post("/sessions/{session_id}/escalate", response_model=EscalateResponse, responses=WALK_ERRORS)
async def escalate(
    walk: OwnedWalk, _: L1User, body: EscalateRequest, session: ReadSessionDep, walks: WalkCommandsDep,
    idem: Idempotent, _paid: None = ActiveSubscription,
) -> Response:
    """Escalate to engineers: the category's recipients (else the account's defaults) are emailed."""

    async def command() -> EscalateResponse:
        result = await walks.escalate(walk, body, idem.key)
        return EscalateResponse(session=await _summary(session, walk), notified=result.notified,
                                warning=result.warning)

    return await idem.run(command)


@router.post("/escalate-without-walk", response_model=EscalateWithoutWalkResponse, responses=WALK_ERRORS)
async def escalate_now(
    body: EscalateWithoutWalkRequest, user: L1User, walks: WalkCommandsDep, idem: Idempotent,
    _paid: None = ActiveSubscription,
) -> Response:
    """Escalate without walking: one call creates the ticket and an already-escalated adhoc session."""

    async def command() -> EscalateWithoutWalkResponse:
        walk, result = await escalate_without_walk(
            walks, user, idem, problem=body.problem_statement, reason_category=body.reason_category,
            reason=body.reason, category=body.category.lower() if body.category else None,
        )
        return EscalateWithoutWalkResponse(session_id=walk.session_id, ticket_id=str(walk.ticket_id),
                                           notified=result.notified, warning=result.warning)

    return await idem.run(command)
