"""Commands one workflow sends another through the one command path (update-with-start on the entity's id).

`HandoffWorkflow.claim` made its session active through these, asking the session's workflow (which owns the
row). Claims now go to the session's workflow itself (`claim_handoff`, one local activity); these stay registered
for that older update's runs in flight and recorded histories.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.persistence.handoffs import HandoffPersistence
from core.config import Settings
from core.errors import Conflict, DomainError, EngineUnavailable, NotFound
from db.repositories.ai_sessions import AiSessionRepository
from services.ai_sessions import AiSessionRef, SessionCommands
from services.workflow_client import WorkflowClient
from workflows.contracts.handoff import (
    SESSIONS_CLAIM_AND_RESUME,
    SESSIONS_RESUME_FROM_HANDOFF,
    ClaimAndResumeInput,
    ClaimedAndResumed,
    ResumeInput,
    ResumeResult,
    ResumeSessionInput,
)

log = logging.getLogger(__name__)


class WorkflowCommandActivities:
    """Sends commands to entity workflows on behalf of other workflows."""

    def __init__(self, client: Client, settings: Settings, session_factory: async_sessionmaker[AsyncSession],
                 *, task_queue: str) -> None:
        self._sessions = SessionCommands(
            WorkflowClient(client, task_queue=task_queue, accept_timeout_s=settings.workflow_call_timeout_s), settings)
        self._session_factory = session_factory
        self._handoffs = HandoffPersistence(session_factory)

    def all(self) -> list[Any]:
        """Every activity of this class, for the worker."""
        return [self.claim_and_resume, self.resume_from_handoff]

    @activity.defn(name=SESSIONS_CLAIM_AND_RESUME)
    async def claim_and_resume(self, inp: ClaimAndResumeInput) -> ClaimedAndResumed:
        """Record the claim (its failures fail the activity), then one `resume` whose outcome is returned, not
        raised: a resume still to do is the workflow's to retry on its own."""
        recorded = await self._handoffs.claim_handoff(inp.claim)
        try:
            resumed = await self.resume_from_handoff(inp.resume)
        except Exception as exc:  # the claim is committed: a refusal is final, anything else the retry's to fix
            if isinstance(exc, ApplicationError) and exc.non_retryable:
                return ClaimedAndResumed(recorded=recorded, resume_refused=str(exc)[:2_000])
            log.warning("handoff %s: resume to retry: %s", inp.claim.handoff_id, exc,
                        exc_info=not isinstance(exc, ApplicationError))
            return ClaimedAndResumed(recorded=recorded)
        return ClaimedAndResumed(recorded=recorded, resumed=resumed)

    @activity.defn(name=SESSIONS_RESUME_FROM_HANDOFF)
    async def resume_from_handoff(self, inp: ResumeSessionInput) -> ResumeResult:
        """`resume` on the session's workflow; the update id derives from the handoff, so a retry is answered once."""
        async with self._session_factory() as session:
            row = await AiSessionRepository(session).ref_in_account(inp.account_id, inp.session_id)
        if row is None:
            raise ApplicationError(f"AI session {inp.session_id} no longer exists", type="NotFound",
                                   non_retryable=True)
        ref = AiSessionRef(id=row.id, account_id=row.account_id, status=row.status, session_type=row.session_type,
                           state_version=row.state_version, psa_ticket_id=row.psa_ticket_id,
                           problem_summary=row.problem_summary)
        try:
            return await self._sessions.resume(ref, ResumeInput(handoff_id=inp.handoff_id, by_user_id=inp.by_user_id),
                                               f"handoff-{inp.handoff_id}")
        except (Conflict, NotFound) as exc:
            raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True) from exc
        except EngineUnavailable as exc:  # Temporal retries the activity
            raise ApplicationError(str(exc), type="EngineUnavailable") from exc
        except DomainError as exc:
            raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True) from exc
