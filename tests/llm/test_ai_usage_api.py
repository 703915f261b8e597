"""GET /api/v1/account/ai-usage: admin+, per day and operation, never another account's rows."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from httpx import AsyncClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import LlmUsage
from db.repositories.llm_usage import LlmUsageRepository
from tests.helpers import add_member, make_user

URL = "/api/v1/account/ai-usage"


def _today() -> date:
    # Read when a test starts, not at import: a suite that runs past midnight UTC would otherwise compare the
    # server's today with yesterday's.
    return datetime.now(UTC).date()


async def _usage(db: AsyncSession, account_id: str, operation: str, day: date, *, cost: str = "0.001000",
                 succeeded: bool = True, tokens: int = 100) -> None:
    row = await LlmUsageRepository(db).record(
        account_id=uuid.UUID(account_id), operation=operation, provider="anthropic", model="claude-haiku-4-5",
        subject_id=None, input_tokens=tokens, output_tokens=tokens // 10, cache_read_tokens=tokens // 2,
        cache_write_tokens=0, latency_ms=1000 if succeeded else 3000, cost_usd=Decimal(cost),
        succeeded=succeeded, error=None if succeeded else "LlmRetryableError: 429",
    )
    at = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)
    await db.execute(update(LlmUsage).where(LlmUsage.id == row.id).values(created_at=at))
    await db.commit()


async def test_summary_groups_by_day_and_operation_for_the_callers_account_only(
    client: AsyncClient, db: AsyncSession
) -> None:
    today = _today()
    owner = await make_user(client, db, role="owner")
    other = await make_user(client, db, role="owner")
    yesterday = today - timedelta(days=1)
    await _usage(db, owner["account_id"], "chat_reply", yesterday, cost="0.002000")
    await _usage(db, owner["account_id"], "chat_reply", yesterday, cost="0.000500", succeeded=False, tokens=0)
    await _usage(db, owner["account_id"], "resolution_note", yesterday, cost="0.010000", tokens=1000)
    await _usage(db, owner["account_id"], "chat_reply", today, cost="0.003000")
    await _usage(db, owner["account_id"], "chat_reply", today - timedelta(days=45))  # outside the default range
    await _usage(db, other["account_id"], "chat_reply", today, cost="9.000000", tokens=99999)

    resp = await client.get(URL, headers=owner["headers"])
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["until"] == today.isoformat() and body["since"] == (today - timedelta(days=29)).isoformat()
    keys = [(b["day"], b["operation"], b["calls"], b["failed_calls"]) for b in body["by_day"]]
    assert keys == [(yesterday.isoformat(), "chat_reply", 2, 1), (yesterday.isoformat(), "resolution_note", 1, 0),
                    (today.isoformat(), "chat_reply", 1, 0)]
    first = body["by_day"][0]
    assert Decimal(first["cost_usd"]) == Decimal("0.0025")
    assert (first["input_tokens"], first["avg_latency_ms"]) == (100, 2000)
    totals = body["totals"]
    assert (totals["calls"], totals["failed_calls"], totals["input_tokens"]) == (4, 1, 1200)
    assert Decimal(totals["cost_usd"]) == Decimal("0.0155")

    narrowed = await client.get(URL, headers=owner["headers"],
                                params={"since": today.isoformat(), "until": today.isoformat()})
    assert [b["day"] for b in narrowed.json()["by_day"]] == [today.isoformat()]


async def test_admin_may_read_engineer_may_not(client: AsyncClient, db: AsyncSession) -> None:
    today = _today()
    owner = await make_user(client, db, role="owner")
    await _usage(db, owner["account_id"], "classify_intake", today)
    admin = await add_member(client, owner["headers"], role="admin")
    engineer = await add_member(client, owner["headers"], role="engineer")

    resp = await client.get(URL, headers=admin["headers"])
    assert resp.status_code == 200 and resp.json()["totals"]["calls"] == 1
    resp = await client.get(URL, headers=engineer["headers"])
    assert resp.status_code == 403 and "admin" in resp.json()["detail"]
    assert (await client.get(URL)).status_code == 401


async def test_bad_ranges_are_client_errors(client: AsyncClient, db: AsyncSession) -> None:
    owner = await make_user(client, db, role="owner")
    backwards = await client.get(URL, headers=owner["headers"], params={"since": "2026-03-02", "until": "2026-03-01"})
    assert backwards.status_code == 400 and "since" in backwards.json()["detail"]
    too_long = await client.get(URL, headers=owner["headers"], params={"since": "2024-01-01", "until": "2026-01-01"})
    assert too_long.status_code == 400 and "366" in too_long.json()["detail"]
    garbled = await client.get(URL, headers=owner["headers"], params={"since": "last tuesday"})
    assert garbled.status_code == 422
    # Days at the edge of what `date` holds used to overflow `until + 1 day` / the default `since` (500).
    for params in ({"since": "9999-12-31", "until": "9999-12-31"}, {"until": "0001-01-05"}):
        edge = await client.get(URL, headers=owner["headers"], params=params)
        assert edge.status_code == 422, (params, edge.text)
        assert edge.json()["detail"][0]["loc"][:1] == ["query"]
