"""Failed-login counters in PostgreSQL, so every API process sees the same counts."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import case, delete, func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import LoginThrottle


@dataclass(frozen=True)
class Attempt:
    """A key's count in its current window, this attempt included, and when that window ends."""

    failures: int
    retry_after_s: int


class LoginThrottleRepository:
    """Counts login attempts per key in fixed windows: counted before the password is checked, so concurrent
    guesses cannot all slip under the limit; an attempt that turns out not to be a failure is given back."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def count_attempt(self, key: str, *, window_s: int) -> Attempt:
        """Add one attempt to `key` (starting a new window when the last one ended); the updated count."""
        window = func.make_interval(0, 0, 0, 0, 0, 0, float(window_s))
        row = LoginThrottle
        expired = row.window_started_at <= func.now() - window
        stmt = (
            insert(row)
            .values(key=key, failures=1, window_started_at=func.now())
            .on_conflict_do_update(
                index_elements=[row.key],
                set_={
                    "failures": case((expired, 1), else_=row.failures + 1),
                    "window_started_at": case((expired, func.now()), else_=row.window_started_at),
                },
            )
            .returning(row.failures, func.extract("epoch", row.window_started_at + window - func.now()))
        )
        failures, remaining = (await self.session.execute(stmt)).one()
        return Attempt(failures=int(failures), retry_after_s=max(1, math.ceil(float(remaining))))

    async def give_back(self, key: str) -> None:
        """Undo one counted attempt (it was refused without a check, or it succeeded)."""
        await self.session.execute(
            update(LoginThrottle)
            .where(LoginThrottle.key == key)
            .values(failures=func.greatest(LoginThrottle.failures - 1, 0))
        )

    async def reset(self, key: str) -> None:
        """Forget every failure of `key` (a successful login resets its email)."""
        await self.session.execute(delete(LoginThrottle).where(LoginThrottle.key == key))

    async def purge_expired(self, *, window_s: int) -> None:
        """Drop counters whose window ended (guesses at many unknown emails would otherwise pile up)."""
        cutoff = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, float(window_s))
        await self.session.execute(delete(LoginThrottle).where(LoginThrottle.window_started_at <= cutoff))
