"""The skeleton every entity workflow shares: one transition helper and a moveable deadline.

An entity workflow keeps its state in one small serializable model (so continue-as-new passes it
on as is), applies each accepted command as lock -> check -> change -> persist -> commit, and
waits on deadlines that move without a new timer per move. Sandbox-safe: only temporalio and the
standard library.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.contracts.common import REJECT_NOT_FOUND, REJECT_STALE, reject

StateT = TypeVar("StateT")
ResultT = TypeVar("ResultT")
# Continue as new well before Temporal's own suggestion: a shorter history replays faster after an eviction.
HISTORY_EVENTS_LIMIT = 2_000
# How often one command is re-checked against a reloaded row before its caller is told it conflicted.
STALE_ATTEMPTS = 3


def history_is_long() -> bool:
    """Time to continue as new (Temporal suggests it, or the history passed HISTORY_EVENTS_LIMIT)."""
    info = workflow.info()
    return info.is_continue_as_new_suggested() or info.get_current_history_length() > HISTORY_EVENTS_LIMIT


def command_id() -> str:
    """The running update's id (the Idempotency-Key's, when the caller sent one), else a fresh deterministic id."""
    update = workflow.current_update_info()
    return update.id if update else str(workflow.uuid4())


def _is_stale(exc: BaseException) -> bool:
    """True when a persistence activity refused a write because the row's version moved on."""
    cause = exc.cause if isinstance(exc, ActivityError) else exc
    return isinstance(cause, ApplicationError) and cause.type == REJECT_STALE


class EntityWorkflow(Generic[StateT]):
    """State, a lock, and `transition()`; subclasses supply `_on_commit` for search attributes and details."""

    _entity = "entity"  # how rejections name it ("Walk session not found")

    def __init__(self) -> None:
        self._state: StateT | None = None
        self._missing = False
        # Handlers await activities; the lock makes accepted commands apply one at a time, in order.
        self._lock = asyncio.Lock()

    @property
    def current(self) -> StateT:
        """The loaded state (only after `_ready()`)."""
        assert self._state is not None
        return self._state

    def _set_loaded(self, state: StateT | None) -> None:
        """Install the state the run loaded or was given; None means the entity does not exist."""
        if state is None:
            self._missing = True
        else:
            self._commit(state)

    async def _created_within(self, within: timedelta, load: Callable[[], Awaitable[StateT | None]]) -> None:
        """Wait for the `create` update this run was started for; if it never lands (refused, or lost before a
        worker accepted it), load the entity instead, so the run ends rather than waits forever."""
        try:
            await workflow.wait_condition(lambda: self._state is not None or self._missing, timeout=within,
                                          timeout_summary="waiting for the create command")
        except TimeoutError:
            loaded = await load()
            if self._state is None and not self._missing:  # a create may have landed while we loaded
                self._set_loaded(loaded)

    async def _create_once(self, create: Callable[[], Awaitable[StateT]]) -> None:
        """Run the `create` activity unless the state exists; if it fails, nothing exists and the run ends."""
        async with self._lock:
            if self._state is None:
                try:
                    self._commit(await create())
                except ActivityError:
                    self._set_loaded(None)  # nothing was created: the run ends instead of waiting
                    raise

    async def _exists(self) -> bool:
        """Wait until the state is loaded or created (True) or known not to exist (False)."""
        await workflow.wait_condition(lambda: self._state is not None or self._missing)
        return self._state is not None

    async def _ready(self) -> StateT:
        # An update can arrive with the start, before the state is loaded or created.
        if not await self._exists():
            raise reject(REJECT_NOT_FOUND, f"{self._entity.capitalize()} not found")
        return self.current

    async def transition(
        self,
        check: Callable[[StateT], None],
        change: Callable[[StateT], Awaitable[tuple[StateT, ResultT]]],
    ) -> ResultT:
        """Under the lock: re-check the rule (the state may have moved since the validator ran), run
        `change` (which persists through an activity and returns the new state and the update's
        result), then commit the new state. A failure leaves the state as it was; a stale write
        (the row moved on without this run) reloads the row and re-checks the command against it."""
        async with self._lock:
            state = await self._ready()
            for attempt in range(1, STALE_ATTEMPTS + 1):
                check(state)
                try:
                    new, result = await change(state)
                except (ActivityError, ApplicationError) as exc:
                    if not _is_stale(exc) or attempt == STALE_ATTEMPTS:
                        raise
                    # Never keep a version Postgres has left behind: every later command would conflict.
                    state = await self._reload()
                    self._commit(state)
                    continue
                self._commit(new)
                return result
            raise AssertionError("unreachable: the last attempt returns or raises")

    async def _reload(self) -> StateT:
        """Hook: read the entity's state as stored (entities with versioned writes override it)."""
        raise reject(REJECT_NOT_FOUND, f"{self._entity.capitalize()} cannot be reloaded")

    def _commit(self, new: StateT) -> None:
        old, self._state = self._state, new
        self._on_commit(old, new)

    def _on_commit(self, old: StateT | None, new: StateT) -> None:
        """Hook: upsert search attributes and set current details after a change."""

    async def _finish(self) -> None:
        """Let in-flight handlers complete before the run returns or continues as new."""
        await workflow.wait_condition(workflow.all_handlers_finished)


class Deadline:
    """A moment something is due (idle abandon, a reminder, "verification overdue", re-notify).

    Moving it later costs no new timer: a timer that fires early sleeps the rest. Moving it earlier
    (or clearing it) wakes the waiter at once. After samples-python's updatable_timer.
    """

    def __init__(self, at: datetime | None, summary: str) -> None:
        self.at = at
        self.summary = summary
        self._woken = False

    def move_to(self, at: datetime | None) -> None:
        """Set a new due time (None: nothing due)."""
        if at is None or self.at is None or at < self.at:
            self._woken = True
        self.at = at

    async def wait(self, interrupted: Callable[[], bool]) -> bool:
        """Sleep until due (True) or until `interrupted()` holds (False)."""
        while True:
            self._woken = False
            if self.at is None:
                await workflow.wait_condition(lambda: interrupted() or self._woken)
                if interrupted():
                    return False
                continue
            remaining = self.at - workflow.now()
            if remaining <= timedelta(0):
                return True
            try:
                await workflow.wait_condition(lambda: interrupted() or self._woken, timeout=remaining,
                                              timeout_summary=self.summary)
            except TimeoutError:
                continue  # due now, or moved later while we slept: the loop decides
            if interrupted():
                return False
