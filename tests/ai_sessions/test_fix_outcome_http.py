"""Seed 001 over HTTP: PATCH .../outcome state machine, apply, ai-outcome-proposal, state_version, preview cache.

Sessions and fixes are made through the API (POST /ai-sessions, POST .../suggested-fixes) and an AI outcome
proposal through the real path: the engineer tells the assistant how the active fix went.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import LlmUsage
from tests.ai_sessions.support import API, outcome_url, session_with_fix, state_version
from tests.helpers import make_user


@pytest.fixture
async def headers(client: AsyncClient, db: AsyncSession) -> dict[str, str]:
    """An engineer of a fresh, paying account."""
    user = await make_user(client, db, role="engineer")
    h: dict[str, str] = user["headers"]
    return h


async def _patch(client: AsyncClient, headers: dict[str, str], sid: str, fid: str, outcome: str,
                 notes: str | None = None) -> Any:
    body: dict[str, Any] = {"outcome": outcome}
    if notes is not None:
        body["notes"] = notes
    return await client.patch(outcome_url(sid, fid), headers=headers, json=body)


async def _session_with_fix_and_proposal(client: AsyncClient, headers: dict[str, str]) -> tuple[str, str]:
    """A session whose active fix carries the assistant's outcome proposal, made by telling it 'it worked'."""
    sid, fid = await session_with_fix(client, headers)
    said = await client.post(f"{API}/{sid}/messages", headers=headers,
                             json={"content": "I cleared the credentials and it worked"})
    assert said.status_code == 200, said.text
    assert said.json()["outcome_proposal"]["outcome"] == "applied_success"
    assert said.json()["outcome_fix_id"] == fid
    active = await client.get(f"{API}/{sid}/suggested-fixes/active", headers=headers)
    assert active.status_code == 200, active.text
    assert active.json()["id"] == fid
    proposal = active.json()["ai_outcome_proposal"]
    assert proposal is not None and proposal["outcome"] == "applied_success" and proposal["reason"]
    assert active.json()["status"] == "proposed"
    return sid, fid


async def test_patch_outcome_marks_success(client: AsyncClient, headers: dict[str, str]) -> None:
    sid, fid = await session_with_fix(client, headers)
    r = await _patch(client, headers, sid, fid, "applied_success")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "applied_success"
    assert r.json()["verified_at"] is not None


async def test_patch_outcome_partial_requires_notes(client: AsyncClient, headers: dict[str, str]) -> None:
    sid, fid = await session_with_fix(client, headers)
    r = await _patch(client, headers, sid, fid, "applied_partial")
    assert r.status_code == 400, r.text
    assert "notes" in r.text.lower()
    # Blank notes are no notes.
    blank = await _patch(client, headers, sid, fid, "applied_partial", "   ")
    assert blank.status_code == 400 and "notes" in blank.text.lower()
    still = await client.get(f"{API}/{sid}/suggested-fixes/{fid}", headers=headers)
    assert still.json()["status"] == "proposed"


async def test_partial_to_success_allowed(client: AsyncClient, headers: dict[str, str]) -> None:
    sid, fid = await session_with_fix(client, headers)
    r1 = await _patch(client, headers, sid, fid, "applied_partial", "ran cred clear only")
    assert r1.status_code == 200, r1.text
    r2 = await _patch(client, headers, sid, fid, "applied_success")
    assert r2.status_code == 200, r2.text
    assert r2.json()["status"] == "applied_success"


async def test_terminal_outcome_is_locked(client: AsyncClient, headers: dict[str, str], db: AsyncSession) -> None:
    sid, fid = await session_with_fix(client, headers)
    r1 = await _patch(client, headers, sid, fid, "applied_failed", "no change")
    assert r1.status_code == 200, r1.text
    version = await state_version(db, sid)
    r2 = await _patch(client, headers, sid, fid, "applied_success")
    assert r2.status_code == 409, r2.text
    got = await client.get(f"{API}/{sid}/suggested-fixes/{fid}", headers=headers)
    assert got.json()["status"] == "applied_failed"
    assert await state_version(db, sid) == version


async def test_partial_notes_can_be_updated(client: AsyncClient, headers: dict[str, str]) -> None:
    sid, fid = await session_with_fix(client, headers)
    r1 = await _patch(client, headers, sid, fid, "applied_partial", "ran cred clear only")
    assert r1.status_code == 200, r1.text
    assert r1.json()["partial_notes"] == "ran cred clear only"
    r2 = await _patch(client, headers, sid, fid, "applied_partial", "also finished the rebuild; not verified yet")
    assert r2.status_code == 200, r2.text
    assert r2.json()["partial_notes"] == "also finished the rebuild; not verified yet"


async def test_dismissed_sets_no_timestamps(client: AsyncClient, headers: dict[str, str]) -> None:
    sid, fid = await session_with_fix(client, headers)
    r = await _patch(client, headers, sid, fid, "dismissed")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "dismissed"
    assert body["applied_at"] is None
    assert body["verified_at"] is None


async def test_applied_at_auto_stamped_on_first_outcome(client: AsyncClient, headers: dict[str, str]) -> None:
    sid, fid = await session_with_fix(client, headers)
    before = await client.get(f"{API}/{sid}/suggested-fixes/{fid}", headers=headers)
    assert before.json()["applied_at"] is None
    r = await _patch(client, headers, sid, fid, "applied_success")
    assert r.status_code == 200, r.text
    assert r.json()["applied_at"] is not None
    assert r.json()["verified_at"] is not None


async def test_pending_requires_notes(client: AsyncClient, headers: dict[str, str]) -> None:
    sid, fid = await session_with_fix(client, headers)
    r = await _patch(client, headers, sid, fid, "applied_pending")
    assert r.status_code == 400, r.text
    assert "notes" in r.text.lower()


async def test_pending_stores_reason_and_stamps_applied_at(client: AsyncClient, headers: dict[str, str]) -> None:
    sid, fid = await session_with_fix(client, headers)
    r = await _patch(client, headers, sid, fid, "applied_pending", "client power-cycling router")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "applied_pending"
    assert body["pending_reason"] == "client power-cycling router"
    assert body["applied_at"] is not None
    assert body["verified_at"] is None
    assert body["partial_notes"] is None
    assert body["failure_reason"] is None


async def test_pending_to_success_allowed(client: AsyncClient, headers: dict[str, str]) -> None:
    sid, fid = await session_with_fix(client, headers)
    r1 = await _patch(client, headers, sid, fid, "applied_pending", "waiting on AD replication")
    assert r1.status_code == 200, r1.text
    r2 = await _patch(client, headers, sid, fid, "applied_success")
    assert r2.status_code == 200, r2.text
    body = r2.json()
    assert body["status"] == "applied_success"
    assert body["verified_at"] is not None
    assert body["pending_reason"] == "waiting on AD replication"  # kept as the audit trail


async def test_pending_reason_can_be_updated(client: AsyncClient, headers: dict[str, str]) -> None:
    sid, fid = await session_with_fix(client, headers)
    r1 = await _patch(client, headers, sid, fid, "applied_pending", "waiting on AD replication")
    assert r1.status_code == 200, r1.text
    assert r1.json()["pending_reason"] == "waiting on AD replication"
    r2 = await _patch(client, headers, sid, fid, "applied_pending", "now waiting on client to confirm login")
    assert r2.status_code == 200, r2.text
    assert r2.json()["pending_reason"] == "now waiting on client to confirm login"


async def test_failed_outcome_stores_notes_as_failure_reason(client: AsyncClient, headers: dict[str, str]) -> None:
    sid, fid = await session_with_fix(client, headers)
    r = await _patch(client, headers, sid, fid, "applied_failed", "user reports no change")
    assert r.status_code == 200, r.text
    assert r.json()["failure_reason"] == "user reports no change"
    assert r.json()["partial_notes"] is None


async def test_outcome_patch_bumps_state_version(client: AsyncClient, headers: dict[str, str],
                                                 db: AsyncSession) -> None:
    sid, fid = await session_with_fix(client, headers)
    initial = await state_version(db, sid)
    r = await _patch(client, headers, sid, fid, "applied_success")
    assert r.status_code == 200, r.text
    assert await state_version(db, sid) == initial + 1
    session = await client.get(f"{API}/{sid}", headers=headers)
    assert session.json()["state_version"] == initial + 1


async def _resolution_note_calls(db: AsyncSession, account_id: str) -> int:
    count = await db.scalar(select(func.count()).select_from(LlmUsage).where(
        LlmUsage.account_id == uuid.UUID(account_id), LlmUsage.operation == "resolution_note"))
    await db.commit()  # end the snapshot so the next count sees new rows
    return int(count or 0)


async def test_resolution_note_preview_reflects_outcome_after_patch(client: AsyncClient, db: AsyncSession) -> None:
    user = await make_user(client, db, role="engineer")
    headers, account = user["headers"], user["account_id"]
    sid, fid = await session_with_fix(client, headers)
    distinct = "DISTINCT-FAILURE-REASON-XYZZY-42"
    preview = f"{API}/{sid}/resolution-note/preview"

    r_a = await client.post(preview, headers=headers)
    assert r_a.status_code == 200, r_a.text
    a = r_a.json()
    assert a["from_cache"] is False
    assert a["state_version"] == await state_version(db, sid)
    assert await _resolution_note_calls(db, account) == 1

    r_a2 = await client.post(preview, headers=headers)
    assert r_a2.status_code == 200, r_a2.text
    a2 = r_a2.json()
    assert a2["from_cache"] is True
    assert a2["state_version"] == a["state_version"]
    assert a2["markdown"] == a["markdown"]
    assert await _resolution_note_calls(db, account) == 1, "a cached preview must not call the model"

    r_patch = await _patch(client, headers, sid, fid, "applied_failed", distinct)
    assert r_patch.status_code == 200, r_patch.text

    r_b = await client.post(preview, headers=headers)
    assert r_b.status_code == 200, r_b.text
    b = r_b.json()
    assert b["from_cache"] is False, "the outcome changed the session: the preview must be regenerated"
    assert b["state_version"] > a["state_version"]
    assert b["markdown"] != a["markdown"]
    assert "applied_failed" in b["markdown"]
    assert distinct in b["markdown"]
    assert distinct not in a["markdown"]
    assert await _resolution_note_calls(db, account) == 2


async def test_apply_stamps_applied_at(client: AsyncClient, headers: dict[str, str], db: AsyncSession) -> None:
    sid, fid = await session_with_fix(client, headers)
    initial = await state_version(db, sid)
    r = await client.post(f"{API}/{sid}/suggested-fixes/{fid}/apply", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["applied_at"] is not None
    assert r.json()["status"] == "proposed"
    assert await state_version(db, sid) == initial + 1


async def test_apply_is_idempotent(client: AsyncClient, headers: dict[str, str], db: AsyncSession) -> None:
    sid, fid = await session_with_fix(client, headers)
    r1 = await client.post(f"{API}/{sid}/suggested-fixes/{fid}/apply", headers=headers)
    assert r1.status_code == 200, r1.text
    first_applied_at = r1.json()["applied_at"]
    version = await state_version(db, sid)
    r2 = await client.post(f"{API}/{sid}/suggested-fixes/{fid}/apply", headers=headers)
    assert r2.status_code == 200, r2.text
    assert r2.json()["applied_at"] == first_applied_at
    assert await state_version(db, sid) == version


async def test_apply_rejects_non_proposed(client: AsyncClient, headers: dict[str, str]) -> None:
    sid, fid = await session_with_fix(client, headers)
    assert (await _patch(client, headers, sid, fid, "applied_success")).status_code == 200
    r = await client.post(f"{API}/{sid}/suggested-fixes/{fid}/apply", headers=headers)
    assert r.status_code == 409, r.text


async def test_apply_rejects_dismissed(client: AsyncClient, headers: dict[str, str]) -> None:
    sid, fid = await session_with_fix(client, headers)
    assert (await _patch(client, headers, sid, fid, "dismissed")).status_code == 200
    r = await client.post(f"{API}/{sid}/suggested-fixes/{fid}/apply", headers=headers)
    assert r.status_code == 409, r.text


async def test_outcome_patch_clears_ai_proposal(client: AsyncClient, headers: dict[str, str]) -> None:
    sid, fid = await _session_with_fix_and_proposal(client, headers)
    r = await _patch(client, headers, sid, fid, "applied_success")
    assert r.status_code == 200, r.text
    assert r.json()["ai_outcome_proposal"] is None
    again = await client.get(f"{API}/{sid}/suggested-fixes/{fid}", headers=headers)
    assert again.json()["ai_outcome_proposal"] is None
    assert again.json()["status"] == "applied_success"


async def test_delete_ai_proposal_clears_field(client: AsyncClient, headers: dict[str, str], db: AsyncSession) -> None:
    sid, fid = await _session_with_fix_and_proposal(client, headers)
    r = await client.delete(f"{API}/{sid}/suggested-fixes/{fid}/ai-outcome-proposal", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["ai_outcome_proposal"] is None
    assert r.json()["status"] == "proposed"
    assert r.json()["verified_at"] is None and r.json()["applied_at"] is None
    stored = await client.get(f"{API}/{sid}/suggested-fixes/active", headers=headers)
    assert stored.json()["ai_outcome_proposal"] is None


async def test_delete_ai_proposal_when_none_is_idempotent(client: AsyncClient, headers: dict[str, str]) -> None:
    sid, fid = await session_with_fix(client, headers)
    r = await client.delete(f"{API}/{sid}/suggested-fixes/{fid}/ai-outcome-proposal", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["ai_outcome_proposal"] is None
    assert r.json()["status"] == "proposed"
