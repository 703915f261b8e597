"""Idempotency keys: claim a key for a request, store its first answer, replay it to retries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import IdempotencyRecord

ClaimOutcome = Literal["claimed", "replay", "mismatch", "in_flight"]


@dataclass(frozen=True)
class Claim:
    """What a request with a key may do: run (claimed), replay a stored answer, or be refused."""

    outcome: ClaimOutcome
    response_status: int | None = None
    response_body: Any = None


class IdempotencyRepository:
    """Rows of `idempotency_keys`, one per (account, user, key); the caller commits."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(
        self, account_id: uuid.UUID, user_id: uuid.UUID, key: str, *, fingerprint: str, method: str, path: str,
        now: datetime, lease: timedelta, ttl: timedelta,
    ) -> Claim:
        """Claim `key` for this request, or say why it may not run."""
        fresh = {"fingerprint": fingerprint, "method": method, "path": path, "state": "in_flight",
                 "response_status": None, "response_body": None, "created_at": now, "locked_until": now + lease,
                 "expires_at": now + ttl}
        inserted = await self.session.scalar(
            insert(IdempotencyRecord).values(account_id=account_id, user_id=user_id, key=key, **fresh)
            .on_conflict_do_nothing(index_elements=["account_id", "user_id", "key"]).returning(IdempotencyRecord.key)
        )
        if inserted is not None:
            return Claim("claimed")
        row = (await self.session.execute(
            select(IdempotencyRecord).where(*_row(account_id, user_id, key)).with_for_update()
        )).scalar_one()
        expired = row.expires_at <= now
        abandoned = row.state == "in_flight" and row.locked_until <= now and row.fingerprint == fingerprint
        if expired or abandoned:
            # An answer past its retention, or a claim whose API process died: this request takes the key.
            await self._set(account_id, user_id, key, fresh)
            return Claim("claimed")
        if row.fingerprint != fingerprint:
            return Claim("mismatch")
        if row.state == "done":
            return Claim("replay", row.response_status, row.response_body)
        return Claim("in_flight")

    async def complete(self, account_id: uuid.UUID, user_id: uuid.UUID, key: str, *, status: int,
                       body: Any) -> None:
        """Store the first answer for replay."""
        await self._set(account_id, user_id, key,
                        {"state": "done", "response_status": status, "response_body": body})

    async def release(self, account_id: uuid.UUID, user_id: uuid.UUID, key: str) -> None:
        """Forget an unanswered claim (the command failed in a way a retry may fix)."""
        await self.session.execute(delete(IdempotencyRecord).where(
            *_row(account_id, user_id, key), IdempotencyRecord.state == "in_flight"))

    async def purge_expired(self, now: datetime) -> int:
        """Delete every row past its retention; how many went."""
        result = await self.session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= now))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def _set(self, account_id: uuid.UUID, user_id: uuid.UUID, key: str, values: dict[str, Any]) -> None:
        await self.session.execute(update(IdempotencyRecord).where(*_row(account_id, user_id, key)).values(**values))


def _row(account_id: uuid.UUID, user_id: uuid.UUID, key: str) -> tuple[ColumnElement[bool], ...]:
    return (IdempotencyRecord.account_id == account_id, IdempotencyRecord.user_id == user_id,
            IdempotencyRecord.key == key)
