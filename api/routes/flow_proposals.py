"""Flow proposals learned from resolved AI-built walks, and their review (admin+)."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.deps import AdminUser, SessionDep
from api.errors import error_responses
from api.idempotency import Idempotent
from api.schemas.common import Limit, Offset
from api.schemas.l1 import FlowOut, ProposalOut, ProposalReview, ProposalReviewResponse
from core.errors import Conflict, NotFound
from db.repositories.l1_catalog import FlowRepository
from db.repositories.l1_proposals import FlowProposalRepository

router = APIRouter(prefix="/flow-proposals", tags=["l1"], responses=error_responses(401, 403, 503))

StatusFilter = Annotated[Literal["pending", "approved", "rejected"] | None, Query(description="Only this status.")]


@router.get("", response_model=list[ProposalOut])
async def list_proposals(
    user: AdminUser, session: SessionDep, status: StatusFilter = None, limit: Limit = 50, offset: Offset = 0
) -> list[ProposalOut]:
    """The account's proposals, newest first."""
    rows = await FlowProposalRepository(session).list_for_account(
        user.account_id, status=status, limit=limit, offset=offset
    )
    return [ProposalOut.model_validate(p) for p in rows]


@router.post("/{proposal_id}/review", response_model=ProposalReviewResponse,
             responses=error_responses(400, described={404: "No such proposal in your account",
                                                       409: "Already reviewed"}))
async def review_proposal(
    proposal_id: uuid.UUID, body: ProposalReview, user: AdminUser, session: SessionDep, idem: Idempotent
) -> Response:
    """Approve (the proposal becomes an authored flow intake can match) or reject."""

    async def command() -> ProposalReviewResponse:
        repo = FlowProposalRepository(session)
        proposal = await repo.get_in_account(user.account_id, proposal_id, for_update=True)
        if proposal is None:
            raise NotFound("Flow proposal not found")
        if proposal.status != "pending":
            raise Conflict(f"This proposal was already {proposal.status}")
        flow = None
        if body.action == "approve":
            flow = await FlowRepository(session).create(
                account_id=user.account_id, title=proposal.title, category=proposal.category,
                keywords=list(proposal.keywords), tree=dict(proposal.tree), source="proposal",
                created_by_user_id=user.id,
            )
        status = "approved" if body.action == "approve" else "rejected"
        proposal = await repo.mark_reviewed(proposal, status=status, reviewer_id=user.id,
                                            flow_id=flow.id if flow else None)
        return ProposalReviewResponse(proposal=ProposalOut.model_validate(proposal),
                                      flow=FlowOut.model_validate(flow) if flow else None)


    return await idem.run(command)
