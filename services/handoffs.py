"""Commands on handoffs: the claim, sent as update-with-start on `handoff-{id}` (a finished run is reloaded)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio.common import SearchAttributePair

from core.config import Settings
from core.errors import Conflict, Forbidden
from services.workflow_client import StartSpec, WorkflowClient
from workflows.contracts.handoff import ClaimInput, ClaimResult, HandoffInput, claimed_conflict, handoff_workflow_id
from workflows.contracts.search_attributes import SA_ACCOUNT_ID, SA_STATUS
from workflows.handoff import HandoffWorkflow

# A claim writes Postgres and makes the session active through its workflow: well within this.
CLAIM_RESULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class HandoffRef:
    """What a claim needs to know of a handoff before sending it (a short read)."""

    id: uuid.UUID
    session_id: uuid.UUID
    account_id: uuid.UUID
    intent: str
    created_by_user_id: uuid.UUID | None
    claimed_by_user_id: uuid.UUID | None
    claimed_by_name: str | None
    claimed_at: datetime | None


class HandoffCommands:
    """Claims handoffs; the workflow decides the race, these checks only spare it requests that cannot win."""

    def __init__(self, workflows: WorkflowClient, settings: Settings) -> None:
        self._workflows = workflows
        self._settings = settings

    async def claim(self, ref: HandoffRef, user_id: uuid.UUID, user_name: str, key: str | None) -> ClaimResult:
        """Pick the handoff up: 200 for the first claimer (and again for them), 409 naming the winner otherwise."""
        if ref.claimed_at is not None and ref.claimed_by_user_id != user_id:
            conflict = claimed_conflict(ref.claimed_by_user_id, ref.claimed_by_name, ref.claimed_at, datetime.now(UTC))
            raise Conflict({"message": conflict.message, **conflict.details[0]})
        if ref.claimed_at is not None:
            # Already theirs: the row says so. Not sent to the workflow, whose cached state may not know (a park
            # closed by an escalation package's post) and would make the session active again.
            return ClaimResult(claimed_by_id=user_id, claimed_by_name=ref.claimed_by_name or user_name,
                               claimed_at=ref.claimed_at, changed=False)
        if ref.claimed_at is None and ref.intent == "escalate" and ref.created_by_user_id == user_id:
            raise Forbidden("You escalated this session, so another engineer picks it up; you cannot claim your "
                            "own escalation")
        start = StartSpec(
            run=HandoffWorkflow.run,
            arg=HandoffInput(handoff_id=ref.id, account_id=ref.account_id,
                             idle_timeout_s=self._settings.workflow_idle_unload_s,
                             assessment_timeout_s=self._settings.handoff_assessment_timeout_s),
            id=handoff_workflow_id(ref.id),
            search_attributes=(SearchAttributePair(SA_ACCOUNT_ID, str(ref.account_id)),
                               SearchAttributePair(SA_STATUS, "claimed" if ref.claimed_at else "unclaimed")),
            static_summary=f"{ref.intent.capitalize()} of AI session {ref.session_id}",
        )
        return await self._workflows.update(
            start, HandoffWorkflow.claim, ClaimInput(user_id=user_id, user_name=user_name[:200]), what="handoff",
            idempotency_key=key, result_timeout_s=max(CLAIM_RESULT_TIMEOUT_S, self._settings.workflow_call_timeout_s),
        )
