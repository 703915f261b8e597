"""Commands on L1 walk workflows over Temporal, with Temporal's errors mapped to domain errors in one place."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WithStartWorkflowOperation,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from core.config import Settings
from core.errors import Conflict, DomainError, EngineUnavailable, NotFound, RuleViolation, UpstreamFailed
from db.models import L1WalkSession
from workflows.contracts.llm import LLM_SCHEDULE_TO_CLOSE, ClassifyIntakeInput, IntakeClassification
from workflows.contracts.search_attributes import SA_ACCOUNT_ID, SA_CATEGORY, SA_SESSION_KIND, SA_STATUS
from workflows.contracts.walk import (
    REJECT_CONFLICT,
    REJECT_NOT_FOUND,
    REJECT_RULE,
    REJECT_UPSTREAM,
    UPDATE_ESCALATE,
    UPDATE_NOTES,
    UPDATE_OPEN,
    UPDATE_RESOLVE,
    UPDATE_STEP,
    EscalateInput,
    EscalateResult,
    NotesInput,
    OpenInput,
    OpenResult,
    ResolveInput,
    ResolveResult,
    StepInput,
    StepResult,
    WalkInput,
    WalkState,
    walk_workflow_id,
)
from workflows.l1_intake import L1IntakeWorkflow
from workflows.walk_session import WalkSessionWorkflow

log = logging.getLogger(__name__)
T = TypeVar("T")

_ERROR_BY_TYPE: dict[str, type[DomainError]] = {
    REJECT_RULE: RuleViolation,
    REJECT_NOT_FOUND: NotFound,
    REJECT_CONFLICT: Conflict,
    REJECT_UPSTREAM: UpstreamFailed,
}
_ENGINE_DOWN_CODES = frozenset({
    RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED,
    RPCStatusCode.RESOURCE_EXHAUSTED,
})


def domain_error(exc: BaseException, *, timeout_s: float) -> DomainError | None:
    """The domain error a Temporal failure stands for, or None when it is a bug (let it be a 500)."""
    if isinstance(exc, (WorkflowUpdateFailedError, WorkflowFailureError)):
        cause: BaseException | None = exc.cause
        while cause is not None:
            if isinstance(cause, ApplicationError) and cause.type in _ERROR_BY_TYPE:
                return _ERROR_BY_TYPE[cause.type](cause.message)
            cause = cause.__cause__
        return None
    if isinstance(exc, (TimeoutError, RPCTimeoutOrCancelledError)):
        return EngineUnavailable(
            f"No workflow worker answered within {timeout_s:g}s; retry later (with the same Idempotency-Key)"
        )
    if isinstance(exc, RPCError):
        if exc.status == RPCStatusCode.NOT_FOUND:
            return NotFound("The workflow for this session was not found")
        if exc.status in _ENGINE_DOWN_CODES:
            return EngineUnavailable(f"The workflow engine is unavailable: {exc.message}")
    return None


def _retrieve_start_error(start: WithStartWorkflowOperation[Any, Any]) -> None:
    # A failed call also fails the operation's workflow-handle future, which nobody awaits here;
    # retrieving it keeps asyncio from logging "Future exception was never retrieved".
    future = getattr(start, "_workflow_handle", None)
    if isinstance(future, asyncio.Future) and future.done() and not future.cancelled():
        future.exception()


class WalkCommands:
    """Sends each walk command as update-with-start on `walk-{id}`, so it always finds its workflow."""

    def __init__(self, client: Client, settings: Settings) -> None:
        self._client = client
        self._settings = settings

    async def open(self, row: L1WalkSession) -> OpenResult:
        """Start the walk's workflow if needed and get its pending node."""
        return await self._update(row, UPDATE_OPEN, OpenInput(), OpenResult, None)

    async def step(self, row: L1WalkSession, inp: StepInput, key: str | None) -> StepResult:
        """Answer the pending question."""
        return await self._update(row, UPDATE_STEP, inp, StepResult, key)

    async def add_notes(self, row: L1WalkSession, inp: NotesInput, key: str | None) -> WalkState:
        """Append notes."""
        return await self._update(row, UPDATE_NOTES, inp, WalkState, key)

    async def resolve(self, row: L1WalkSession, inp: ResolveInput, key: str | None) -> ResolveResult:
        """Close as resolved."""
        return await self._update(row, UPDATE_RESOLVE, inp, ResolveResult, key)

    async def escalate(self, row: L1WalkSession, inp: EscalateInput, key: str | None) -> EscalateResult:
        """Escalate to engineers."""
        return await self._update(row, UPDATE_ESCALATE, inp, EscalateResult, key)

    async def classify_intake(self, inp: ClassifyIntakeInput) -> IntakeClassification:
        """Run the intake classification workflow and wait for its answer."""
        try:
            return await self._bounded(self._client.execute_workflow(
                L1IntakeWorkflow.run, inp, id=f"l1-intake-{uuid.uuid4()}",
                task_queue=self._settings.temporal_task_queue,
                execution_timeout=LLM_SCHEDULE_TO_CLOSE + timedelta(minutes=1),
            ))
        except WorkflowFailureError as exc:
            log.warning("intake classification failed: %s", exc.cause)
            raise UpstreamFailed("The AI could not classify the problem; try again or walk it ad hoc") from exc

    async def _update(self, row: L1WalkSession, name: str, arg: Any, result_type: type[T], key: str | None) -> T:
        if row.status != "active":
            # Checked here too so a finished session never gets a fresh workflow run just to say no.
            raise Conflict(f"This walk session is {row.status}; only active sessions change")
        start = WithStartWorkflowOperation(
            WalkSessionWorkflow.run,
            WalkInput(session_id=str(row.id), account_id=str(row.account_id),
                      idle_timeout_s=self._settings.l1_idle_timeout_s, max_depth=self._settings.l1_max_depth),
            id=walk_workflow_id(str(row.id)),
            task_queue=self._settings.temporal_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=TypedSearchAttributes([
                SearchAttributePair(SA_ACCOUNT_ID, str(row.account_id)),
                SearchAttributePair(SA_STATUS, row.status),
                SearchAttributePair(SA_SESSION_KIND, row.session_kind),
                SearchAttributePair(SA_CATEGORY, row.category or "none"),
            ]),
        )
        # The Idempotency-Key becomes the update id: Temporal answers a retried update with its first result.
        update_id = f"{name}:{key}" if key else None
        try:
            result: T = await self._bounded(self._client.execute_update_with_start_workflow(
                name, arg, start_workflow_operation=start, id=update_id, result_type=result_type,
            ))
        finally:
            _retrieve_start_error(start)
        return result

    async def _bounded(self, call: Awaitable[T]) -> T:
        timeout = self._settings.workflow_call_timeout_s
        try:
            return await asyncio.wait_for(call, timeout=timeout)
        except (WorkflowUpdateFailedError, TimeoutError, RPCTimeoutOrCancelledError, RPCError) as exc:
            mapped = domain_error(exc, timeout_s=timeout)
            if mapped is None:
                raise
            if isinstance(mapped, EngineUnavailable):
                log.warning("workflow call failed: %s", exc)
            raise mapped from exc
