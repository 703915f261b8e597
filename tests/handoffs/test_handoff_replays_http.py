"""Idempotency-Key replays on handoff claims belong to the user who sent the key (issue 20, item 9)."""

from __future__ import annotations

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from tests.handoffs.support import API, escalated, make_handoff_desk


async def test_a_claim_key_replayed_by_another_user_gets_that_users_own_answer(
    client: AsyncClient, db: AsyncSession
) -> None:
    desk = await make_handoff_desk(client, db)
    session_id, handoff = await escalated(client, desk.engineer.headers)
    url = f"{API}/{session_id}/handoffs/{handoff['id']}/claim"
    key = {"Idempotency-Key": "claim-from-the-queue-1"}

    won = await client.post(url, headers={**desk.senior.headers, **key})
    assert won.status_code == 200, won.text
    # The escalator's client re-sends the senior's key: the escalator may not claim, and is not told the
    # senior's 200 as if it were theirs.
    escalator = await client.post(url, headers={**desk.engineer.headers, **key})
    assert escalator.status_code == 409, escalator.text
    assert "Idempotent-Replayed" not in escalator.headers
    assert escalator.json()["detail"]["claimed_by_id"] == desk.senior.id
    admin = await client.post(url, headers={**desk.admin.headers, **key})
    assert admin.status_code == 409 and "Idempotent-Replayed" not in admin.headers
    again = await client.post(url, headers={**desk.senior.headers, **key})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"


async def test_the_same_key_from_two_users_on_an_unclaimed_handoff_is_two_claims(
    client: AsyncClient, db: AsyncSession
) -> None:
    desk = await make_handoff_desk(client, db)
    session_id, handoff = await escalated(client, desk.engineer.headers)
    url = f"{API}/{session_id}/handoffs/{handoff['id']}/claim"
    key = {"Idempotency-Key": "same-key-two-users"}

    escalator = await client.post(url, headers={**desk.engineer.headers, **key})
    assert escalator.status_code == 403, escalator.text
    senior = await client.post(url, headers={**desk.senior.headers, **key})
    assert senior.status_code == 200, senior.text
    assert senior.json()["claimed_by"] == desk.senior.id and "Idempotent-Replayed" not in senior.headers
