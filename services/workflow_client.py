"""The one way the API talks to workflows, and the only module that knows Temporal's client errors.

A command is a plain update on the entity's running workflow, or update-with-start (`USE_EXISTING`)
when none runs (or it is the command that creates the entity), so it always finds one. It is bounded
twice: a short wait to be *accepted* by a worker (no worker is then a true 503) and
a per-command wait for the result (an AI turn may take 30 s, a walk step should not).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
    WorkflowUpdateHandle,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from core.errors import Conflict, DomainError, EngineUnavailable, NotFound, Overloaded, RuleViolation, UpstreamFailed
from core.temporal import POLLER_SEEN_WITHIN_S, workflow_poller_ages
from services.admission import Admission
from workflows.contracts.common import (
    REJECT_CONFLICT,
    REJECT_NOT_FOUND,
    REJECT_RULE,
    REJECT_STALE,
    REJECT_UPSTREAM,
    interactive_priority,
)

log = logging.getLogger(__name__)
ResultT = TypeVar("ResultT")
ParamT = TypeVar("ParamT")

_ERROR_BY_TYPE: dict[str, type[DomainError]] = {
    REJECT_RULE: RuleViolation,
    REJECT_NOT_FOUND: NotFound,
    REJECT_CONFLICT: Conflict,
    REJECT_STALE: Conflict,
    REJECT_UPSTREAM: UpstreamFailed,
}
_ENGINE_DOWN = frozenset({RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED,
                          RPCStatusCode.RESOURCE_EXHAUSTED, RPCStatusCode.UNKNOWN})


@dataclass(frozen=True)
class StartSpec:
    """How to start an entity's workflow when a command finds none running."""

    run: Callable[..., Awaitable[Any]]  # the workflow's @workflow.run method
    arg: Any
    id: str
    search_attributes: tuple[SearchAttributePair[Any], ...] = ()
    static_summary: str | None = None
    # A command that creates its entity goes straight to update-with-start: no workflow runs yet.
    creating: bool = False
    # Whose work it is: the workflow's fairness key, and whose share of the API's admission it counts against.
    account_id: object = None


def domain_error(exc: BaseException, *, what: str) -> DomainError | None:
    """The domain error a Temporal failure stands for, or None when it is a bug (let it be a 500)."""
    if isinstance(exc, WorkflowUpdateFailedError | WorkflowFailureError):
        cause: BaseException | None = exc.cause
        while cause is not None:
            if isinstance(cause, ApplicationError) and cause.type in _ERROR_BY_TYPE:
                return _ERROR_BY_TYPE[cause.type](_detail(cause))
            cause = cause.__cause__
        return None
    if isinstance(exc, RPCError):
        if exc.status == RPCStatusCode.NOT_FOUND:
            return NotFound(f"The workflow for this {what} was not found")
        if exc.status == RPCStatusCode.FAILED_PRECONDITION and "failed state" in exc.message.lower():
            return being_repaired(what, exc.message)
        if exc.status in _ENGINE_DOWN:
            return EngineUnavailable(f"The workflow engine is unreachable ({exc.message}); retry shortly")
    return None


def _detail(cause: ApplicationError) -> str | dict[str, Any]:
    # A rejection may carry structured facts (a lost claim names the winner): the client gets them beside the message.
    extra = cause.details[0] if cause.details else None
    return {"message": cause.message, **extra} if isinstance(extra, dict) else cause.message


def being_repaired(what: str, why: str) -> EngineUnavailable:
    """A workflow task keeps failing (a bug or a bad deploy): loud in the log, a retryable 503 outside."""
    log.error("workflow of %s is stuck on a failing workflow task: %s", what, why)
    return EngineUnavailable(f"This {what} is being repaired (its workflow hit an error); retry in a few "
                             "minutes with the same Idempotency-Key")


class WorkflowClient:
    """Sends typed commands to entity workflows and maps every failure a client can meet."""

    def __init__(self, client: Client, *, task_queue: str, accept_timeout_s: float,
                 admission: Admission | None = None) -> None:
        self._client = client
        self._task_queue = task_queue
        self._accept_timeout_s = accept_timeout_s
        self._admission = admission

    async def update(
        self,
        start: StartSpec,
        update: UpdateMethodMultiParam[[Any, ParamT], ResultT],
        arg: ParamT,
        *,
        what: str,
        result_timeout_s: float,
        idempotency_key: str | None = None,
    ) -> ResultT:
        """Run `update` (a method reference such as `WalkSessionWorkflow.step`) on `start.id`, starting it if needed.

        The Idempotency-Key becomes the update id, so a retry that reaches the workflow gets its first result.
        """
        # Our updates keep their method names, so the id reads "step:<key>" in the Web UI.
        update_id = f"{getattr(update, '__name__', 'update')}:{idempotency_key}" if idempotency_key else None
        # The slot is held until a worker accepts: that is the engine's work. What an accepted command then waits
        # for (a model's answer, a PSA) holds no slot.
        async with self._admitted(start.account_id, what):  # a refusal here reached no workflow: nothing to check
            try:
                handle = await self._accepted(start, update, arg, update_id, what)
            except (EngineUnavailable, Overloaded):
                await self._raise_if_failing(start.id, what)
                raise
        return await self._bounded(
            handle.result(), result_timeout_s, what,
            f"The command was accepted but did not finish within {result_timeout_s:g}s (a retry with the same "
            "Idempotency-Key gets its answer)",
        )

    async def _accepted(self, start: StartSpec, update: UpdateMethodMultiParam[[Any, ParamT], ResultT], arg: ParamT,
                        update_id: str | None, what: str) -> WorkflowUpdateHandle[ResultT]:
        no_worker = f"No workflow worker accepted the command within {self._accept_timeout_s:g}s"
        if not start.creating:
            # Most commands find their workflow running: a plain update costs the engine less than
            # update-with-start (measured in docs/performance.md); NOT_FOUND falls through to the start.
            running = self._client.get_workflow_handle(start.id)
            handle = await self._bounded(_none_if_not_running(running.start_update(
                update, arg, id=update_id, wait_for_stage=WorkflowUpdateStage.ACCEPTED,
            )), self._accept_timeout_s, what, no_worker)
            if handle is not None:
                return handle
        return await self._update_with_start(start, update, arg, update_id, what, no_worker)

    async def _update_with_start(self, start: StartSpec, update: UpdateMethodMultiParam[[Any, ParamT], ResultT],
                                 arg: ParamT, update_id: str | None, what: str,
                                 no_worker: str) -> WorkflowUpdateHandle[ResultT]:
        operation = WithStartWorkflowOperation(
            start.run, start.arg, id=start.id, task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=TypedSearchAttributes(list(start.search_attributes)),
            static_summary=start.static_summary, priority=interactive_priority(start.account_id),
        )
        try:
            return await self._bounded(
                self._client.start_update_with_start_workflow(
                    update, arg, start_workflow_operation=operation, id=update_id,
                    wait_for_stage=WorkflowUpdateStage.ACCEPTED,
                ),
                self._accept_timeout_s, what, no_worker,
            )
        finally:
            _retrieve_start_error(operation)

    async def execute(self, run: Callable[[Any, Any], Awaitable[ResultT]], arg: Any, *, id: str, what: str,
                      limit: timedelta, failed: str, account_id: object, share_running: bool = False) -> ResultT:
        """Run a short workflow to completion (e.g. intake classification) within `limit`.

        A workflow no worker has picked up within the accept bound is terminated and answered 503, so a
        missing worker costs the caller seconds, not the whole `limit`. A run that fails (its activity, a
        third party, gave up) is an `UpstreamFailed` saying `failed`. With `share_running`, a caller that
        finds a run with the same id running waits for that run instead of starting another.
        """
        conflict = WorkflowIDConflictPolicy.USE_EXISTING if share_running else WorkflowIDConflictPolicy.FAIL
        # Only the start holds a slot: the new workflow's first task waits on the engine's own (fair) queue.
        async with self._admitted(account_id, what):
            handle = await self._bounded(
                self._client.start_workflow(run, arg, id=id, task_queue=self._task_queue, execution_timeout=limit,
                                            id_conflict_policy=conflict, priority=interactive_priority(account_id)),
                self._accept_timeout_s, what, f"The workflow engine did not start the {what} in time",
            )
        result = asyncio.ensure_future(handle.result())
        try:
            return await asyncio.wait_for(asyncio.shield(result), timeout=self._accept_timeout_s)
        except TimeoutError:
            pass
        except WorkflowFailureError as exc:
            raise self._failed(exc, what, failed) from exc
        except RPCError as exc:
            raise self._mapped(exc, what) from exc
        try:
            if (await handle.describe()).history_length <= 2:  # started + scheduled: no worker took its first task
                await handle.terminate(reason="no worker picked it up")
                raise await self._timed_out(what, f"No workflow worker took the {what} within "
                                                  f"{self._accept_timeout_s:g}s, so it was cancelled")
            remaining = limit.total_seconds() - self._accept_timeout_s
            try:
                return await self._bounded(result, remaining, what,
                                           f"The {what} did not finish within {limit.total_seconds():g}s")
            except WorkflowFailureError as exc:  # not a rejection: _bounded let it through unmapped
                raise self._failed(exc, what, failed) from exc
        finally:
            if not result.done():
                result.cancel()  # we stopped waiting: do not leave a poll running

    def _admitted(self, account_id: object, what: str) -> AbstractAsyncContextManager[None]:
        # The API bounds what it has with the engine (services/admission.py); a workflow's own commands are not.
        return self._admission.admit(account_id, what) if self._admission is not None else nullcontext()

    async def _bounded(self, call: Awaitable[ResultT], timeout_s: float, what: str, timeout_detail: str) -> ResultT:
        try:
            return await asyncio.wait_for(call, timeout=timeout_s)
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as exc:
            raise await self._timed_out(what, timeout_detail) from exc
        except (WorkflowUpdateFailedError, WorkflowFailureError, RPCError) as exc:
            raise self._mapped(exc, what) from exc

    @staticmethod
    def _failed(exc: WorkflowFailureError, what: str, failed: str) -> DomainError:
        mapped = domain_error(exc, what=what)
        if mapped is not None:
            return mapped
        log.warning("%s failed: %s", what, exc.cause)
        return UpstreamFailed(failed)

    @staticmethod
    def _mapped(exc: Exception, what: str) -> Exception:
        mapped = domain_error(exc, what=what)
        if mapped is None:
            return exc  # a bug: the original error, a loud 500
        if isinstance(mapped, EngineUnavailable):
            log.warning("%s: %s", what, exc)
        return mapped


    async def _raise_if_failing(self, workflow_id: str, what: str) -> None:
        # Workers are up but nobody accepted: a workflow task that keeps failing (a bug, a payload the
        # server refuses) looks the same from outside. Its attempt count tells them apart.
        try:
            described = await asyncio.wait_for(self._client.get_workflow_handle(workflow_id).describe(), timeout=2)
        except Exception:  # no workflow, or the engine is down: the caller's error stands
            return
        attempt = described.raw_description.pending_workflow_task.attempt
        if attempt <= 1:
            return
        # A retried workflow task either failed (a bug: "being repaired") or timed out (workers too busy to
        # finish it in time: plain overload). The newest events say which.
        if await self._last_task_timed_out(workflow_id):
            log.warning("%s: workflow task of %s timed out (attempt %d): the workers are overloaded",
                        what, workflow_id, attempt)
            raise self._busy(f"The workflow workers are overloaded and did not take this {what}'s command in time")
        raise being_repaired(what, f"pending workflow task on attempt {attempt}")

    async def _last_task_timed_out(self, workflow_id: str) -> bool:
        try:
            newest = await asyncio.wait_for(self._client.workflow_service.get_workflow_execution_history_reverse(
                GetWorkflowExecutionHistoryReverseRequest(
                    namespace=self._client.namespace, execution=WorkflowExecution(workflow_id=workflow_id),
                    maximum_page_size=20,
                )), timeout=2)
        except Exception:  # cannot tell: the caller's "being repaired" stands
            return False
        for event in newest.history.events:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                return False
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                return True
        return False

    async def _timed_out(self, what: str, detail: str) -> DomainError:
        """What a bound that ran out means: the engine down or no worker (503), or workers too busy (429)."""
        # The SDK retries an unreachable frontend quietly until our bound: tell that apart from "no worker".
        if not await self._engine_answers():
            log.warning("%s: the workflow engine is unreachable", what)
            return EngineUnavailable("The workflow engine is unreachable; retry shortly")
        if not await self._workers_polling():
            log.warning("%s: %s, and no worker polls %s", what, detail, self._task_queue)
            return EngineUnavailable(f"{detail}: no workflow worker is running; retry later with the same "
                                     "Idempotency-Key")
        log.warning("%s: %s (workers busy)", what, detail)
        return self._busy(detail)

    def _busy(self, detail: str) -> Overloaded:
        retry_after_s = self._admission.retry_after_s if self._admission is not None else 1
        return Overloaded(f"{detail}: the workflow workers are busy. Retry in {retry_after_s} s with the same "
                          "Idempotency-Key", retry_after_s=retry_after_s)

    async def _workers_polling(self) -> bool:
        try:
            ages = await workflow_poller_ages(self._client, self._client.namespace, self._task_queue, timeout_s=2)
        except Exception:  # cannot tell: say busy rather than down, a retry will find out
            return True
        return any(age <= POLLER_SEEN_WITHIN_S for age in ages.values())

    async def _engine_answers(self) -> bool:
        try:
            return await asyncio.wait_for(self._client.service_client.check_health(), timeout=1.0)
        except Exception:  # any failure to answer a health check means unreachable
            return False


async def _none_if_not_running(call: Awaitable[ResultT]) -> ResultT | None:
    try:
        return await call
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:  # never started, or its run has ended
            return None
        raise


def _retrieve_start_error(start: WithStartWorkflowOperation[Any, Any]) -> None:
    # A failed call also fails the operation's workflow-handle future, which nobody awaits here;
    # retrieving it keeps asyncio from logging "Future exception was never retrieved".
    future = getattr(start, "_workflow_handle", None)
    if isinstance(future, asyncio.Future) and future.done() and not future.cancelled():
        future.exception()
