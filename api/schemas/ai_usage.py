"""AI usage summary payloads."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field


class UsageBucketOut(BaseModel):
    """Calls, tokens, cost and latency of one operation on one UTC day."""

    model_config = ConfigDict(from_attributes=True)

    day: date
    operation: str = Field(description="classify_intake, next_walk_node, chat_reply, resolution_note, "
                                       "escalation_package or handoff_assessment.")
    calls: int
    failed_calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: Decimal = Field(description="Estimated from list prices; not an invoice.")
    avg_latency_ms: int


class UsageTotalsOut(BaseModel):
    """The same figures over the whole range."""

    calls: int = 0
    failed_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: Decimal = Decimal(0)


class AiUsageOut(BaseModel):
    """The caller's account's LLM usage between `since` and `until` (inclusive UTC days)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{
                "since": "2026-11-01", "until": "2026-11-30",
                "totals": {"calls": 3, "failed_calls": 1, "input_tokens": 5200, "output_tokens": 900,
                           "cache_read_tokens": 3000, "cache_write_tokens": 1400, "cost_usd": "0.030650"},
                "by_day": [{"day": "2026-11-21", "operation": "chat_reply", "calls": 3, "failed_calls": 1,
                            "input_tokens": 5200, "output_tokens": 900, "cache_read_tokens": 3000,
                            "cache_write_tokens": 1400, "cost_usd": "0.030650", "avg_latency_ms": 2140}],
            }]
        }
    )

    since: date
    until: date
    totals: UsageTotalsOut
    by_day: list[UsageBucketOut]
