"""Flow proposals learned from resolved AI-built walks."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from db.models import FlowProposal
from db.repositories.base import AccountScopedRepository


class FlowProposalRepository(AccountScopedRepository[FlowProposal]):
    """Creates one proposal per walk (idempotently) and records reviews."""

    model = FlowProposal

    async def create_once(
        self,
        *,
        account_id: uuid.UUID,
        l1_session_id: uuid.UUID,
        title: str,
        category: str,
        keywords: list[str],
        tree: dict[str, Any],
        validated_by_outcome: bool,
    ) -> uuid.UUID:
        """The proposal of this walk: created now, or the one an earlier (retried) call created."""
        await self.session.execute(
            insert(FlowProposal)
            .values(
                id=uuid.uuid4(), account_id=account_id, l1_session_id=l1_session_id, title=title,
                category=category, keywords=keywords, tree=tree, validated_by_outcome=validated_by_outcome,
                status="pending",
            )
            .on_conflict_do_nothing(index_elements=["l1_session_id"])
        )
        existing = await self.session.scalar(
            select(FlowProposal.id).where(FlowProposal.l1_session_id == l1_session_id)
        )
        assert existing is not None
        return existing

    async def list_for_account(
        self, account_id: uuid.UUID, *, status: str | None, limit: int, offset: int
    ) -> Sequence[FlowProposal]:
        """The account's proposals (optionally of one status), newest first."""
        query = select(FlowProposal).where(FlowProposal.account_id == account_id)
        if status is not None:
            query = query.where(FlowProposal.status == status)
        result = await self.session.execute(
            query.order_by(FlowProposal.created_at.desc(), FlowProposal.id).limit(limit).offset(offset)
        )
        return result.scalars().all()

    async def mark_reviewed(
        self, proposal: FlowProposal, *, status: str, reviewer_id: uuid.UUID, flow_id: uuid.UUID | None
    ) -> FlowProposal:
        """Record the review outcome (and the flow an approval created)."""
        proposal.status = status
        proposal.reviewed_by_user_id = reviewer_id
        proposal.reviewed_at = datetime.now(UTC)
        proposal.flow_id = flow_id
        await self.session.flush()
        await self.session.refresh(proposal)
        return proposal
