"""Concurrent commands on one fix or session, and Idempotency-Key replays (api/idempotency.py: the first answer
is replayed for a retry with the same body, another body is a 422, a retry while the first runs is a 409)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AiSessionMessage
from tests.ai_sessions.support import API, open_session, outcome_url, session_with_fix, state_version
from tests.helpers import make_user


@pytest.fixture
async def headers(client: AsyncClient, db: AsyncSession) -> dict[str, str]:
    """An engineer of a fresh, paying account."""
    user = await make_user(client, db, role="engineer")
    h: dict[str, str] = user["headers"]
    return h


def keyed(headers: dict[str, str], key: str | None = None) -> dict[str, str]:
    """`headers` plus a fresh (or the given) Idempotency-Key."""
    return {**headers, "Idempotency-Key": key or f"k-{uuid.uuid4()}"}


async def test_concurrent_pending_outcomes_all_apply_one_at_a_time(
    client: AsyncClient, headers: dict[str, str], db: AsyncSession
) -> None:
    sid, fid = await session_with_fix(client, headers)
    before = await state_version(db, sid)
    notes = [f"waiting on check {i}" for i in range(8)]
    answers = await asyncio.gather(*(
        client.patch(outcome_url(sid, fid), headers=headers, json={"outcome": "applied_pending", "notes": n})
        for n in notes))
    assert [a.status_code for a in answers] == [200] * 8, [a.text for a in answers if a.status_code != 200]
    assert all(a.json()["status"] == "applied_pending" for a in answers)
    assert await state_version(db, sid) == before + 8
    fix = (await client.get(f"{API}/{sid}/suggested-fixes/{fid}", headers=headers)).json()
    assert fix["status"] == "applied_pending" and fix["pending_reason"] in notes
    assert fix["next_reminder_at"] is not None
    # One of the eight answered last and saw the reason that stuck.
    assert fix["pending_reason"] in {a.json()["pending_reason"] for a in answers}


async def test_concurrent_outcomes_after_a_final_one_are_refused(
    client: AsyncClient, headers: dict[str, str], db: AsyncSession
) -> None:
    sid, fid = await session_with_fix(client, headers)
    before = await state_version(db, sid)
    bodies = [{"outcome": "applied_success"}, {"outcome": "applied_failed", "notes": "no change"},
              {"outcome": "dismissed"}, {"outcome": "applied_success"}]
    answers = await asyncio.gather(*(client.patch(outcome_url(sid, fid), headers=headers, json=b) for b in bodies))
    codes = [a.status_code for a in answers]
    assert codes.count(200) == 1 and codes.count(409) == 3, [a.text for a in answers]
    winner = next(a.json() for a in answers if a.status_code == 200)
    stored = (await client.get(f"{API}/{sid}/suggested-fixes/{fid}", headers=headers)).json()
    assert stored["status"] == winner["status"]
    assert await state_version(db, sid) == before + 1


async def _messages_with(db: AsyncSession, sid: str, content: str) -> int:
    count = await db.scalar(select(func.count()).select_from(AiSessionMessage).where(
        AiSessionMessage.session_id == uuid.UUID(sid), AiSessionMessage.content == content))
    await db.commit()
    return int(count or 0)


async def test_concurrent_duplicate_messages_with_one_key_store_one_turn(
    client: AsyncClient, headers: dict[str, str], db: AsyncSession
) -> None:
    sid = (await open_session(client, headers, text="Outlook keeps prompting for a password"))["id"]
    h = keyed(headers)
    content = "It started after the password change"
    answers = await asyncio.gather(*(client.post(f"{API}/{sid}/messages", headers=h, json={"content": content})
                                     for _ in range(2)))
    codes = sorted(a.status_code for a in answers)
    assert codes in ([200, 200], [200, 409]), [a.text for a in answers]
    ok = [a for a in answers if a.status_code == 200]
    assert all(a.json() == ok[0].json() for a in ok)  # a second 200 is the first answer replayed
    assert all("still being processed" in a.json()["detail"] for a in answers if a.status_code == 409)
    session = (await client.get(f"{API}/{sid}", headers=headers)).json()
    assert session["message_count"] == 3 and session["state_version"] == 1
    assert await _messages_with(db, sid, content) == 1
    # Once done, a retry replays the stored answer and stores nothing.
    retry = await client.post(f"{API}/{sid}/messages", headers=h, json={"content": content})
    assert retry.status_code == 200 and retry.headers.get("Idempotent-Replayed") == "true"
    assert retry.json() == ok[0].json()
    assert (await client.get(f"{API}/{sid}", headers=headers)).json()["message_count"] == 3


async def test_a_retried_outcome_replays_even_after_a_later_outcome(
    client: AsyncClient, headers: dict[str, str], db: AsyncSession
) -> None:
    sid, fid = await session_with_fix(client, headers)
    h = keyed(headers)
    body = {"outcome": "applied_pending", "notes": "waiting on AD replication"}
    first = await client.patch(outcome_url(sid, fid), headers=h, json=body)
    assert first.status_code == 200, first.text
    assert "Idempotent-Replayed" not in first.headers
    later = await client.patch(outcome_url(sid, fid), headers=headers, json={"outcome": "applied_success"})
    assert later.status_code == 200, later.text
    version = await state_version(db, sid)

    retry = await client.patch(outcome_url(sid, fid), headers=h, json=body)
    assert retry.status_code == 200, retry.text  # not the 409 a final fix gives a new request
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert retry.json() == first.json() and retry.json()["status"] == "applied_pending"
    # Same body, keys in another order: still the same request.
    reordered = await client.patch(outcome_url(sid, fid), headers={**h, "Content-Type": "application/json"},
                                   content='{"notes": "waiting on AD replication", "outcome": "applied_pending"}')
    assert reordered.status_code == 200 and reordered.headers.get("Idempotent-Replayed") == "true"

    other = await client.patch(outcome_url(sid, fid), headers=h,
                               json={"outcome": "applied_pending", "notes": "waiting on something else"})
    assert other.status_code == 422, other.text
    assert "Idempotency-Key" in other.json()["detail"]
    elsewhere = await client.post(f"{API}/{sid}/suggested-fixes/{fid}/apply", headers=h)
    assert elsewhere.status_code == 422, elsewhere.text

    stored = (await client.get(f"{API}/{sid}/suggested-fixes/{fid}", headers=headers)).json()
    assert stored["status"] == "applied_success"
    assert await state_version(db, sid) == version


async def test_a_refused_outcome_is_replayed_as_refused(client: AsyncClient, headers: dict[str, str]) -> None:
    sid, fid = await session_with_fix(client, headers)
    h = keyed(headers)
    no_notes = await client.patch(outcome_url(sid, fid), headers=h, json={"outcome": "applied_partial"})
    assert no_notes.status_code == 400, no_notes.text
    again = await client.patch(outcome_url(sid, fid), headers=h, json={"outcome": "applied_partial"})
    assert again.status_code == 400 and again.json() == no_notes.json()
    assert again.headers.get("Idempotent-Replayed") == "true"


async def test_a_retried_create_reaches_the_same_session_and_fix(client: AsyncClient, headers: dict[str, str]) -> None:
    h = keyed(headers)
    body = {"session_type": "chat", "intake_type": "free_text", "intake_content": {"text": "VPN drops hourly"}}
    first = await client.post(API, headers=h, json=body)
    again = await client.post(API, headers=h, json=body)
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.json()["id"] == first.json()["id"]
    assert (await client.get(API, headers=headers)).json()["total"] == 1
    sid = first.json()["id"]
    fh = keyed(headers)
    fix = {"title": "Update the VPN client", "description": "", "confidence_pct": 40}
    made = await client.post(f"{API}/{sid}/suggested-fixes", headers=fh, json=fix)
    remade = await client.post(f"{API}/{sid}/suggested-fixes", headers=fh, json=fix)
    assert made.status_code == remade.status_code == 201
    assert remade.json()["id"] == made.json()["id"]
    listed = (await client.get(f"{API}/{sid}/suggested-fixes", headers=headers)).json()
    assert listed["total"] == 1 and listed["items"][0]["superseded_at"] is None


async def test_concurrent_applies_stamp_once(client: AsyncClient, headers: dict[str, str], db: AsyncSession) -> None:
    sid, fid = await session_with_fix(client, headers)
    before = await state_version(db, sid)
    answers = await asyncio.gather(*(client.post(f"{API}/{sid}/suggested-fixes/{fid}/apply", headers=headers)
                                     for _ in range(6)))
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
    stamps = {a.json()["applied_at"] for a in answers}
    assert len(stamps) == 1 and None not in stamps
    assert await state_version(db, sid) == before + 1


async def test_concurrent_resolution_posts_resolve_once(client: AsyncClient, headers: dict[str, str]) -> None:
    sid = (await open_session(client, headers))["id"]
    notes = ["## Resolution\nfirst", "## Resolution\nsecond", "## Resolution\nthird"]
    answers = await asyncio.gather(*(client.post(f"{API}/{sid}/resolution-note/post", headers=headers,
                                                 json={"markdown": m}) for m in notes))
    codes = [a.status_code for a in answers]
    assert codes.count(200) == 1 and codes.count(409) == 2, [a.text for a in answers]
    winner = notes[codes.index(200)]
    got = (await client.get(f"{API}/{sid}", headers=headers)).json()
    assert got["status"] == "resolved" and got["resolution_note_markdown"] == winner


async def test_a_proposal_racing_a_final_outcome_never_outlives_it(
    client: AsyncClient, headers: dict[str, str]
) -> None:
    # The turn that proposes an outcome and the engineer's final verdict land in either order; a final fix must
    # never keep a proposal (rejecting it on a final fix is a no-op, so it could never be cleared).
    for _ in range(3):
        sid, fid = await session_with_fix(client, headers)
        said, patched = await asyncio.gather(
            client.post(f"{API}/{sid}/messages", headers=headers, json={"content": "it worked"}),
            client.patch(outcome_url(sid, fid), headers=headers, json={"outcome": "applied_success"}),
        )
        assert said.status_code == 200 and patched.status_code == 200, (said.text, patched.text)
        fix = (await client.get(f"{API}/{sid}/suggested-fixes/{fid}", headers=headers)).json()
        assert fix["status"] == "applied_success"
        assert fix["ai_outcome_proposal"] is None
