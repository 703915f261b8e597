"""What every workflow shares: rejection codes, persistence policy, typed activity references.

Sandbox-safe: workflow code imports this module, and so do the activities and the API.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, TypeVar

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy
from temporalio.exceptions import ApplicationError

InT = TypeVar("InT")
OutT = TypeVar("OutT")

# A rejection carries one of these as ApplicationError.type; services/workflow_client.py maps each
# to a domain error (and api/errors.py that to an HTTP status).
REJECT_RULE = "RuleViolation"  # 400
REJECT_NOT_FOUND = "NotFound"  # 404
REJECT_CONFLICT = "Conflict"  # 409
REJECT_UPSTREAM = "UpstreamFailed"  # 502
# A versioned write found its row moved on (the workflow's copy is stale): the workflow reloads the row and
# re-checks the command; only when that keeps failing does the caller see it, as a 409.
REJECT_STALE = "Stale"

# Persistence is short Postgres work next to the worker: local activities, retried with backoff. A
# value Postgres refuses is raised non-retryable (REJECT_RULE), so it fails one change, not the workflow.
PERSIST_TIMEOUT = timedelta(seconds=20)
PERSIST_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10))


# Task-queue priority (Temporal runs a lower key first; unset is 3 of 1..5). Interactive work is what an HTTP
# request waits on: every entity workflow (its workflow tasks answer commands) and the activities they inherit
# the priority into. Background work (emails, assessments, drift re-reads) runs when no interactive task waits.
# The fairness key is the account: the server shares dispatch between accounts, so one account's burst queues
# behind itself, not in front of the others (docs/fairness.md says what this does and does not order).
PRIORITY_INTERACTIVE = 1
PRIORITY_BACKGROUND = 4
BACKGROUND = Priority(priority_key=PRIORITY_BACKGROUND)  # fields left unset (the fairness key) are inherited


def interactive_priority(account_id: object) -> Priority:
    """The priority a workflow serving `account_id`'s requests starts with."""
    return Priority(priority_key=PRIORITY_INTERACTIVE, fairness_key=None if account_id is None else str(account_id))


def reject(kind: str, message: str) -> ApplicationError:
    """A non-retryable rejection the API maps to a status (see REJECT_*)."""
    return ApplicationError(message, type=kind, non_retryable=True)


@dataclass(frozen=True)
class ActivityRef(Generic[InT, OutT]):
    """An activity by name with its result type and options, so no call site repeats them.

    `local=True` runs it as a local activity (persistence: no server round trip per write).
    """

    name: str
    result_type: type[OutT] | None
    start_to_close: timedelta
    retry: RetryPolicy
    local: bool = False
    schedule_to_close: timedelta | None = None
    # None inherits the workflow's; a local activity never goes through a task queue, so it has none.
    priority: Priority | None = None

    async def __call__(self, arg: InT, *, summary: str | None = None) -> OutT:
        """Run the activity from workflow code and return its typed result."""
        if self.local:
            result = await workflow.execute_local_activity(
                self.name, arg, result_type=self.result_type, start_to_close_timeout=self.start_to_close,
                schedule_to_close_timeout=self.schedule_to_close, retry_policy=self.retry, summary=summary,
            )
        else:
            result = await workflow.execute_activity(
                self.name, arg, result_type=self.result_type, start_to_close_timeout=self.start_to_close,
                schedule_to_close_timeout=self.schedule_to_close, retry_policy=self.retry, summary=summary,
                priority=self.priority or Priority.default,
            )
        return result

    def background(self) -> ActivityRef[InT, OutT]:
        """This activity dispatched behind interactive work (same account's fairness key)."""
        assert not self.local, "a local activity is not dispatched through a task queue"
        return dataclasses.replace(self, priority=BACKGROUND)


def persistence(name: str, inp: type[InT], out: type[OutT] | None) -> ActivityRef[InT, OutT]:
    """A `persistence.*` local activity with the shared persistence policy."""
    del inp  # only for the type checker: ActivityRef[InT, OutT] is inferred from it
    return ActivityRef(name=name, result_type=out, start_to_close=PERSIST_TIMEOUT, retry=PERSIST_RETRY, local=True)
