"""The account's AI usage: what the LLM calls cost, per day and operation."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import AdminUser, SessionDep
from api.errors import error_responses
from api.schemas.ai_usage import AiUsageOut, UsageBucketOut, UsageTotalsOut
from core.errors import RuleViolation
from db.repositories.llm_usage import LlmUsageRepository

router = APIRouter(prefix="/account", tags=["account"], responses=error_responses(401, 503))

DEFAULT_DAYS = 30
MAX_DAYS = 366
# Bounds keep `until + 1 day` and the default `since` inside what `date` can hold.
FIRST_DAY = date(2000, 1, 1)
LAST_DAY = date(9998, 12, 31)


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


@router.get("/ai-usage", response_model=AiUsageOut, responses=error_responses(
    403, described={400: "'since' is after 'until', or the range spans more than 366 days"}))
async def get_ai_usage(
    actor: AdminUser,
    session: SessionDep,
    since: Annotated[date | None, Query(ge=FIRST_DAY, le=LAST_DAY, description=(
        f"First UTC day, {FIRST_DAY} to {LAST_DAY} (default: 29 days before `until`)."))] = None,
    until: Annotated[date | None, Query(ge=FIRST_DAY, le=LAST_DAY, description=(
        f"Last UTC day, inclusive, {FIRST_DAY} to {LAST_DAY} (default: today)."))] = None,
) -> AiUsageOut:
    """LLM calls, tokens and estimated cost of the caller's account, by UTC day and operation."""
    until = until or datetime.now(UTC).date()
    since = since or until - timedelta(days=DEFAULT_DAYS - 1)
    if since > until:
        raise RuleViolation(f"'since' ({since}) must not be after 'until' ({until})")
    if (until - since).days + 1 > MAX_DAYS:
        raise RuleViolation(f"The range may span at most {MAX_DAYS} days; narrow 'since'/'until'")
    buckets = await LlmUsageRepository(session).summary(
        actor.account_id, start=_start_of(since), end=_start_of(until + timedelta(days=1))
    )
    totals = UsageTotalsOut()
    for b in buckets:
        totals.calls += b.calls
        totals.failed_calls += b.failed_calls
        totals.input_tokens += b.input_tokens
        totals.output_tokens += b.output_tokens
        totals.cache_read_tokens += b.cache_read_tokens
        totals.cache_write_tokens += b.cache_write_tokens
        totals.cost_usd += b.cost_usd
    return AiUsageOut(since=since, until=until, totals=totals,
                      by_day=[UsageBucketOut.model_validate(b) for b in buckets])
