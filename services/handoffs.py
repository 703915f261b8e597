"""Commands on handoffs: the claim, sent to the session's workflow (`session-{id}`), which owns it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.config import Settings
from core.errors import Conflict, Forbidden
from services.ai_sessions import AiSessionRef, session_start
from services.workflow_client import WorkflowClient
from workflows.contracts.handoff import ClaimHandoffCommand, ClaimResult, claimed_conflict
from workflows.troubleshooting_session import TroubleshootingSessionWorkflow

# A claim is one transaction in the session's workflow: well within this.
CLAIM_RESULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class HandoffRef:
    """What a claim needs to know of a handoff and its session before sending it, and the handoff's columns the
    answer shows besides the claim (read with the caller, in one statement)."""

    id: uuid.UUID
    session_id: uuid.UUID
    account_id: uuid.UUID
    intent: str
    created_by_user_id: uuid.UUID | None
    claimed_by_user_id: uuid.UUID | None
    claimed_by_name: str | None
    claimed_at: datetime | None
    session_status: str
    session_type: str
    problem_summary: str = ""
    engineer_notes: str = ""
    priority: str = "normal"
    target_user_id: uuid.UUID | None = None
    snapshot: dict[str, Any] = field(default_factory=dict)
    ai_assessment: str | None = None
    ai_assessment_data: dict[str, Any] | None = None
    assessment_status: str = "pending"
    renotify_count: int = 0
    created_at: datetime | None = None

    def session(self) -> AiSessionRef:
        """The session the handoff belongs to, as its commands name it."""
        return AiSessionRef(id=self.session_id, account_id=self.account_id, status=self.session_status,
                            session_type=self.session_type, state_version=0, psa_ticket_id=None,
                            problem_summary=self.problem_summary)


class HandoffCommands:
    """Claims handoffs; the session's workflow decides the race, these checks only spare it requests that cannot
    win."""

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
        return await self._workflows.update(
            session_start(ref.session(), self._settings), TroubleshootingSessionWorkflow.claim_handoff,
            ClaimHandoffCommand(handoff_id=ref.id, user_id=user_id, user_name=user_name[:200]), what="AI session",
            idempotency_key=key,
            result_timeout_s=max(CLAIM_RESULT_TIMEOUT_S, self._settings.workflow_call_timeout_s),
        )
