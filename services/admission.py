"""Admission: how many workflow commands one API process lets in at once, and how many of them one account may hold.

Without a bound, a burst is accepted whole, queues in the engine past every timeout and ends in 503s, while every
other account's commands wait behind it. With one, a command is served or refused at once with a 429 and a
`Retry-After` (`Overloaded`), and a retry with the same Idempotency-Key is the same command. The per-account cap
keeps the rest of the capacity for the other accounts, so one account's rush is refused before theirs is; the
engine's fairness keys then share the workers between the commands let in (docs/fairness.md).
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from core.errors import Overloaded

log = logging.getLogger(__name__)


class Admission:
    """Counts the commands in flight, in all and per account, and refuses past either bound."""

    def __init__(self, capacity: int, *, account_share: float, retry_after_s: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        # At least one: an account is never locked out by a small capacity.
        self.account_cap = max(1, math.floor(capacity * account_share))
        self.retry_after_s = retry_after_s
        self._in_flight = 0
        self._by_account: dict[str, int] = {}
        self.refused = 0  # since start, for the log and the tests

    @property
    def in_flight(self) -> int:
        """Commands let in and not yet answered."""
        return self._in_flight

    def held_by(self, account: object) -> int:
        """Commands of `account` in flight."""
        return self._by_account.get(str(account), 0)

    @asynccontextmanager
    async def admit(self, account: object, what: str) -> AsyncIterator[None]:
        """Hold one slot of `account` while the command runs, or raise `Overloaded` at once."""
        key = str(account)
        held = self._by_account.get(key, 0)
        if held >= self.account_cap:
            self._refuse(f"Your account has {held} {what} commands in progress, the most one account may have at "
                         "once on this server")
        if self._in_flight >= self.capacity:
            self._refuse(f"The server has {self._in_flight} commands in progress, as many as its workers can take")
        self._in_flight += 1
        self._by_account[key] = held + 1
        try:
            yield
        finally:
            self._in_flight -= 1
            left = self._by_account[key] - 1
            if left:
                self._by_account[key] = left
            else:
                del self._by_account[key]

    def _refuse(self, why: str) -> None:
        self.refused += 1
        if self.refused == 1 or self.refused % 100 == 0:  # a burst refuses hundreds: a line now and then
            log.warning("admission: refused %d command(s) so far (%s)", self.refused, why)
        raise Overloaded(f"{why}; nothing was done. Retry in {self.retry_after_s} s with the same Idempotency-Key",
                         retry_after_s=self.retry_after_s)
