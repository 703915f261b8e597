"""Admission: how many workflow commands one API process has with the engine at once, shared fairly by account.

Without a bound, a burst is handed to the engine whole: it queues on the worker's sticky queue (first come, first
served: the server's fairness does not reach sticky queues, docs/fairness.md) past every timeout, ends in 503s, and
every other account's commands wait behind it. With one, at most `capacity` commands are with the engine; the rest
wait here, one queue per account, and a freed slot goes to the next account in turn, so an account that sends one
command waits for one slot, not for another account's burst. An account whose queue is full, or a command that
waited `max_wait_s`, is refused with a 429 (`Overloaded`) and a `Retry-After`; nothing was done, and a retry with
the same Idempotency-Key is the same command.

Turns decide who goes next, not how much of the engine one account's commands fill: a command let in shares two
busy cores with every other one in flight, so its latency grows with their number. `account_share` bounds that: while
another account has sent a command in the last `ACTIVE_WINDOW_S`, one account holds at most that many slots (alone,
it may fill them all, so a burst nobody else is waiting beside runs at full speed).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from core.errors import Overloaded

log = logging.getLogger(__name__)

ACTIVE_WINDOW_S = 5.0  # an account that sent a command this recently is "another account at work"


class Admission:
    """Slots for commands in flight, granted in turn across accounts' queues."""

    def __init__(self, capacity: int, *, max_queued_per_account: int, max_wait_s: float, retry_after_s: int,
                 reserve: int = 0, account_share: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if capacity < 1 or (account_share is not None and account_share < 1):
            raise ValueError("capacity and account_share must be at least 1")
        self.capacity = capacity
        self.reserve = reserve
        self.account_share = account_share if account_share is not None else capacity
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()  # account -> when it last sent a command, oldest first
        self.max_queued_per_account = max_queued_per_account
        self.max_wait_s = max_wait_s
        self.retry_after_s = retry_after_s
        self.in_flight = 0
        self.refused = 0  # since start, for the log and the tests
        self._held: dict[str, int] = {}
        self._queues: dict[str, deque[asyncio.Future[None]]] = {}
        self._turns: deque[str] = deque()  # accounts with a queue, in the order they are served next

    def queued(self, account: object) -> int:
        """Commands of `account` waiting for a slot."""
        return len(self._queues.get(str(account), ()))

    @asynccontextmanager
    async def admit(self, account: object, what: str) -> AsyncIterator[None]:
        """Hold a slot while the body runs: at once when one is free and nobody waits, else in `account`'s turn."""
        key = str(account)
        self._saw(key)
        # Whoever waits while a slot is free waits for its share (_grant fills every other free slot at once), so a
        # command of an account with nothing queued may take the slot; one with a queue goes behind it.
        free = self.in_flight < self.capacity and key not in self._queues and self._within_share(key)
        # An account with nothing in flight may go past a burst into the reserve: its one command does not wait
        # for a slot the burst holds (a technician's next step while another account's hundred walks run).
        reserved = key not in self._held and key not in self._queues and self.in_flight < self.capacity + self.reserve
        if free or reserved:
            self._take(key)
        else:
            await self._wait_turn(key, what)
        try:
            yield
        finally:
            self._give_back(key)

    def _saw(self, key: str) -> None:
        self._seen[key] = self._forget_quiet()
        self._seen.move_to_end(key)

    def _forget_quiet(self) -> float:
        """Drop accounts not seen within the window (oldest first, so it stops at the first recent one); now."""
        now = self._clock()
        while self._seen and now - next(iter(self._seen.values())) > ACTIVE_WINDOW_S:
            self._seen.popitem(last=False)
        return now

    def _within_share(self, key: str) -> bool:
        """May `key` take one more slot: under its share, or alone (no other account sent a command lately)?"""
        if self._held.get(key, 0) < self.account_share:
            return True
        self._forget_quiet()
        return len(self._seen) == (1 if key in self._seen else 0)

    def _take(self, key: str) -> None:
        self.in_flight += 1
        self._held[key] = self._held.get(key, 0) + 1

    def _give_back(self, key: str) -> None:
        self.in_flight -= 1
        left = self._held[key] - 1
        if left:
            self._held[key] = left
        else:
            del self._held[key]
        self._grant()

    async def _wait_turn(self, key: str, what: str) -> None:
        queue = self._queues.get(key)
        if queue is not None and len(queue) >= self.max_queued_per_account:
            self._refuse(f"Your account already has {len(queue)} {what} commands waiting for the workflow "
                         "workers, the most one account may queue on this server")
        if queue is None:
            queue = self._queues[key] = deque()
            self._turns.append(key)
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(granted)
        try:
            await asyncio.wait_for(asyncio.shield(granted), timeout=self.max_wait_s)
        except BaseException as exc:  # timed out, or the client went away
            if granted.done() and not granted.cancelled():
                self._give_back(key)  # granted in the same instant: hand the slot on
            else:
                self._withdraw(key, granted)
            if isinstance(exc, TimeoutError):
                self._refuse(f"This {what} command waited {self.max_wait_s:g} s for the workflow workers, who are "
                             "busy with other commands")
            raise

    def _withdraw(self, key: str, granted: asyncio.Future[None]) -> None:
        queue = self._queues.get(key)
        if queue is not None and granted in queue:
            queue.remove(granted)
            if not queue:
                del self._queues[key]
                self._turns.remove(key)

    def _grant(self) -> None:
        """Give free slots to the next waiting commands, one account after another (each within its share)."""
        passed = 0  # accounts passed over in a row for holding their share: a whole round of them ends the loop
        while self.in_flight < self.capacity and passed < len(self._turns):
            key = self._turns.popleft()
            if not self._within_share(key):
                self._turns.append(key)
                passed += 1
                continue
            passed = 0
            queue = self._queues[key]
            granted = queue.popleft()
            if queue:
                self._turns.append(key)  # its next command waits for the other accounts' turns
            else:
                del self._queues[key]
            self._take(key)
            granted.set_result(None)

    def _refuse(self, why: str) -> None:
        self.refused += 1
        if self.refused == 1 or self.refused % 100 == 0:  # a burst may refuse hundreds: a line now and then
            log.warning("admission: refused %d command(s) so far (%s)", self.refused, why)
        raise Overloaded(f"{why}; nothing was done. Retry in {self.retry_after_s} s with the same Idempotency-Key",
                         retry_after_s=self.retry_after_s)
