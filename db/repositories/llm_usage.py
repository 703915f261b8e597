"""The LLM usage ledger: one row per provider call, summarized per day and operation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import Date, Integer, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import LlmUsage


@dataclass(frozen=True)
class UsageBucket:
    """Totals of one (UTC day, operation)."""

    day: date
    operation: str
    calls: int
    failed_calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: Decimal
    avg_latency_ms: int


class LlmUsageRepository:
    """Writes ledger rows and reads an account's usage."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(
        self, *, account_id: uuid.UUID, operation: str, provider: str, model: str, subject_id: str | None,
        input_tokens: int, output_tokens: int, cache_read_tokens: int, cache_write_tokens: int,
        latency_ms: int, cost_usd: Decimal, succeeded: bool, error: str | None,
    ) -> LlmUsage:
        """Insert one ledger row (the caller commits)."""
        row = LlmUsage(
            id=uuid.uuid4(), account_id=account_id, operation=operation, provider=provider, model=model,
            subject_id=subject_id, input_tokens=input_tokens, output_tokens=output_tokens,
            cache_read_tokens=cache_read_tokens, cache_write_tokens=cache_write_tokens, latency_ms=latency_ms,
            cost_usd=cost_usd, succeeded=succeeded, error=error,
        )
        self.session.add(row)
        await self.session.flush()
        return row

    async def summary(self, account_id: uuid.UUID, *, start: datetime, end: datetime) -> list[UsageBucket]:
        """Per UTC day and operation for rows with start <= created_at < end, oldest day first."""
        day = cast(func.timezone("UTC", LlmUsage.created_at), Date).label("day")
        failed = func.count().filter(LlmUsage.succeeded.is_(False))
        stmt = (
            select(
                day, LlmUsage.operation, func.count(), failed,
                func.coalesce(func.sum(LlmUsage.input_tokens), 0),
                func.coalesce(func.sum(LlmUsage.output_tokens), 0),
                func.coalesce(func.sum(LlmUsage.cache_read_tokens), 0),
                func.coalesce(func.sum(LlmUsage.cache_write_tokens), 0),
                func.coalesce(func.sum(LlmUsage.cost_usd), 0),
                cast(func.round(func.avg(LlmUsage.latency_ms)), Integer),
            )
            .where(LlmUsage.account_id == account_id, LlmUsage.created_at >= start, LlmUsage.created_at < end)
            .group_by(day, LlmUsage.operation)
            .order_by(day, LlmUsage.operation)
        )
        rows = await self.session.execute(stmt)
        return [
            UsageBucket(day=r[0], operation=r[1], calls=r[2], failed_calls=r[3], input_tokens=int(r[4]),
                        output_tokens=int(r[5]), cache_read_tokens=int(r[6]), cache_write_tokens=int(r[7]),
                        cost_usd=Decimal(r[8]), avg_latency_ms=int(r[9] or 0))
            for r in rows
        ]
