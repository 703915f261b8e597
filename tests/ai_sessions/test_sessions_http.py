"""AI sessions over HTTP: open, list, read, converse (the offline assistant), local close, apply and the AI's
outcome proposal. Bad input, tenancy and roles are in test_sessions_access_http.py; concurrency and
Idempotency-Key in test_sessions_concurrency_http.py."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from tests.ai_sessions.support import API, add_fix, open_session, outcome_url, session_with_fix, state_version
from tests.helpers import make_user

OUTLOOK = "Outlook keeps prompting for a password after the M365 migration"
AI_FIX_TITLE = "Clear cached Office credentials and sign in again"


@pytest.fixture
async def headers(client: AsyncClient, db: AsyncSession) -> dict[str, str]:
    """An engineer of a fresh, paying account."""
    user = await make_user(client, db, role="engineer")
    h: dict[str, str] = user["headers"]
    return h


async def say(client: AsyncClient, headers: dict[str, str], sid: str, content: str) -> dict[str, Any]:
    """POST .../messages; the 200 body."""
    resp = await client.post(f"{API}/{sid}/messages", headers=headers, json={"content": content})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def get_fix(client: AsyncClient, headers: dict[str, str], sid: str, fid: str) -> dict[str, Any]:
    resp = await client.get(f"{API}/{sid}/suggested-fixes/{fid}", headers=headers)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


# --- open, read, list ---------------------------------------------------------------------------------


async def test_create_returns_an_active_session_whose_intake_is_the_first_message(
    client: AsyncClient, headers: dict[str, str]
) -> None:
    text = f"{OUTLOOK}\nUser: dana@example.com, since Monday"
    created = await open_session(client, headers, text=text)
    assert created["status"] == "active"
    assert created["session_type"] == "chat"
    assert created["state_version"] == 0
    assert created["confidence_tier"] == "discovery"
    assert created["problem_summary"] == OUTLOOK  # the first line
    assert created["message_count"] == 1
    got = await client.get(f"{API}/{created['id']}", headers=headers)
    assert got.status_code == 200, got.text
    one = got.json()
    assert one["id"] == created["id"] and one["status"] == "active"
    assert one["intake_content"] == {"text": text}
    assert [(m["seq"], m["role"], m["content"]) for m in one["messages"]] == [(1, "user", text)]
    assert one["resolution_note_markdown"] is None and one["escalation_package_markdown"] is None
    assert one["resolved_at"] is None and one["escalated_at"] is None


async def test_create_rejects_an_unknown_session_type(client: AsyncClient, headers: dict[str, str]) -> None:
    resp = await client.post(API, headers=headers, json={"session_type": "voice", "intake_type": "free_text",
                                                         "intake_content": {"text": OUTLOOK}})
    assert resp.status_code == 422, resp.text
    assert (await client.get(API, headers=headers)).json()["total"] == 0


async def test_list_is_paginated_newest_first_filtered_and_own_account_only(
    client: AsyncClient, db: AsyncSession, headers: dict[str, str]
) -> None:
    ids = [(await open_session(client, headers, text=t))["id"] for t in ("first", "second", "third")]
    stranger = (await make_user(client, db, role="engineer"))["headers"]
    theirs = (await open_session(client, stranger, text="someone else's"))["id"]

    page = await client.get(API, headers=headers, params={"limit": 2})
    assert page.status_code == 200, page.text
    assert page.json()["total"] == 3
    assert [s["id"] for s in page.json()["items"]] == [ids[2], ids[1]]
    assert "messages" not in page.json()["items"][0]
    rest = (await client.get(API, headers=headers, params={"limit": 2, "offset": 2})).json()
    assert [s["id"] for s in rest["items"]] == [ids[0]] and rest["total"] == 3

    posted = await client.post(f"{API}/{ids[1]}/resolution-note/post", headers=headers, json={"markdown": "done"})
    assert posted.status_code == 200, posted.text
    resolved = (await client.get(API, headers=headers, params={"status": "resolved"})).json()
    assert [s["id"] for s in resolved["items"]] == [ids[1]] and resolved["total"] == 1
    active = (await client.get(API, headers=headers, params={"status": "active"})).json()
    assert [s["id"] for s in active["items"]] == [ids[2], ids[0]] and active["total"] == 2
    assert (await client.get(API, headers=headers, params={"status": "bogus"})).status_code == 422

    everything = (await client.get(API, headers=headers, params={"limit": 200})).json()
    assert theirs not in {s["id"] for s in everything["items"]}
    own = (await client.get(API, headers=stranger)).json()
    assert [s["id"] for s in own["items"]] == [theirs] and own["total"] == 1


# --- conversation with the offline assistant ---------------------------------------------------------


async def test_a_message_gets_a_reply_and_updates_the_session(client: AsyncClient, headers: dict[str, str]) -> None:
    sid = (await open_session(client, headers, text=OUTLOOK))["id"]
    answer = await say(client, headers, sid, "It started after the password change")
    assert answer["reply"] and "Outlook" in answer["reply"]
    assert answer["confidence_tier"] in ("discovery", "exploring", "guided")
    assert answer["suggested_fix"] is None and answer["outcome_proposal"] is None
    session = (await client.get(f"{API}/{sid}", headers=headers)).json()
    assert session["message_count"] == 3
    assert session["state_version"] == answer["state_version"] == 1
    assert session["confidence_tier"] == answer["confidence_tier"]
    assert [(m["seq"], m["role"]) for m in session["messages"]] == [(1, "user"), (2, "user"), (3, "assistant")]
    assert session["messages"][1]["content"] == "It started after the password change"
    assert session["messages"][2]["content"] == answer["reply"]


async def test_the_assistants_fix_becomes_active_and_supersedes_the_engineers(
    client: AsyncClient, headers: dict[str, str]
) -> None:
    sid = (await open_session(client, headers, text=OUTLOOK))["id"]
    mine = await add_fix(client, headers, sid, title="Re-register the Outlook profile")
    assert mine["source"] == "engineer" and mine["superseded_at"] is None
    # An open fix is what the assistant asks about; once it is closed the assistant works the problem again.
    closed = await client.patch(outcome_url(sid, mine["id"]), headers=headers,
                                json={"outcome": "applied_failed", "notes": "new profile prompts too"})
    assert closed.status_code == 200, closed.text

    proposed = None
    for answer_text in ("Checking", "Yes", "Keeps asking for the password", "Yes", "Yes", "Yes"):
        answer = await say(client, headers, sid, answer_text)
        assert answer["outcome_proposal"] is None  # nothing open to judge
        if answer["suggested_fix"] is not None:
            proposed = answer["suggested_fix"]
            break
    assert proposed is not None, "the offline assistant never proposed its fix"
    assert proposed["source"] == "ai" and proposed["status"] == "proposed"
    assert proposed["title"] == AI_FIX_TITLE and proposed["superseded_at"] is None
    assert proposed["session_id"] == sid

    active = await client.get(f"{API}/{sid}/suggested-fixes/active", headers=headers)
    assert active.status_code == 200 and active.json()["id"] == proposed["id"]
    old = await get_fix(client, headers, sid, mine["id"])
    assert old["superseded_at"] is not None
    assert old["status"] == "applied_failed" and old["failure_reason"] == "new profile prompts too"
    listed = (await client.get(f"{API}/{sid}/suggested-fixes", headers=headers)).json()
    assert [f["id"] for f in listed["items"]] == [proposed["id"], mine["id"]] and listed["total"] == 2

    # An engineer's fix in turn supersedes the assistant's.
    later = await add_fix(client, headers, sid, title="Rebuild the Outlook profile")
    assert (await client.get(f"{API}/{sid}/suggested-fixes/active", headers=headers)).json()["id"] == later["id"]
    assert (await get_fix(client, headers, sid, proposed["id"]))["superseded_at"] is not None


async def test_without_any_fix_there_is_no_active_one(client: AsyncClient, headers: dict[str, str]) -> None:
    sid = (await open_session(client, headers, text=OUTLOOK))["id"]
    assert (await client.get(f"{API}/{sid}/suggested-fixes/active", headers=headers)).status_code == 404
    listed = (await client.get(f"{API}/{sid}/suggested-fixes", headers=headers)).json()
    assert listed == {"items": [], "total": 0}


@pytest.mark.parametrize(("said", "outcome"), [
    ("it worked, thanks", "applied_success"),
    ("still failing, same prompt as before", "applied_failed"),
    ("waiting on the user to log in tomorrow", "applied_pending"),
])
async def test_an_outcome_proposal_changes_nothing_but_the_proposal(
    client: AsyncClient, headers: dict[str, str], db: AsyncSession, said: str, outcome: str
) -> None:
    sid, fid = await session_with_fix(client, headers)
    before = await get_fix(client, headers, sid, fid)
    answer = await say(client, headers, sid, said)
    assert answer["outcome_proposal"]["outcome"] == outcome
    assert answer["outcome_fix_id"] == fid
    assert answer["suggested_fix"] is None
    after = await get_fix(client, headers, sid, fid)
    assert after["ai_outcome_proposal"]["outcome"] == outcome
    assert after["ai_outcome_proposal"]["reason"] == answer["outcome_proposal"]["reason"]
    ignored = {"ai_outcome_proposal", "updated_at"}
    assert {k: v for k, v in after.items() if k not in ignored} == {k: v for k, v in before.items()
                                                                    if k not in ignored}
    assert (await client.get(f"{API}/{sid}/suggested-fixes/active", headers=headers)).json()["id"] == fid
    # The fix still takes the engineer's verdict (its version was not moved by the proposal).
    confirmed = await client.patch(outcome_url(sid, fid), headers=headers, json={"outcome": "dismissed"})
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["ai_outcome_proposal"] is None
    assert await state_version(db, sid) == answer["state_version"] + 1


# --- local close -------------------------------------------------------------------------------------


async def test_posting_the_resolution_note_resolves_the_session_once(client: AsyncClient, headers: dict[str, str]
                                                                     ) -> None:
    sid, fid = await session_with_fix(client, headers)
    markdown = "## Problem\nOutlook prompts\n\n## Resolution\nCleared the cached credentials."
    posted = await client.post(f"{API}/{sid}/resolution-note/post", headers=headers, json={"markdown": markdown})
    assert posted.status_code == 200, posted.text
    assert posted.json()["outcome"] == "resolved_local"
    assert posted.json()["session_status"] == "resolved"
    assert posted.json()["external_id"] is None
    got = (await client.get(f"{API}/{sid}", headers=headers)).json()
    assert got["status"] == "resolved" and got["resolution_note_markdown"] == markdown
    assert got["resolved_at"] is not None and got["state_version"] == posted.json()["state_version"]

    again = await client.post(f"{API}/{sid}/resolution-note/post", headers=headers, json={"markdown": "other"})
    assert again.status_code == 409, again.text
    late = await client.post(f"{API}/{sid}/messages", headers=headers, json={"content": "one more thing"})
    assert late.status_code == 409, late.text
    fix = await client.post(f"{API}/{sid}/suggested-fixes", headers=headers,
                            json={"title": "Too late", "description": "", "confidence_pct": 10})
    assert fix.status_code == 409, fix.text
    escalate = await client.post(f"{API}/{sid}/escalation-package/post", headers=headers, json={"markdown": "x"})
    assert escalate.status_code == 409, escalate.text
    final = (await client.get(f"{API}/{sid}", headers=headers)).json()
    assert final["resolution_note_markdown"] == markdown and final["message_count"] == 1
    assert final["escalation_package_markdown"] is None
    listed = (await client.get(f"{API}/{sid}/suggested-fixes", headers=headers)).json()
    assert [f["id"] for f in listed["items"]] == [fid]


async def test_an_escalated_session_can_still_be_resolved(client: AsyncClient, headers: dict[str, str]) -> None:
    sid = (await open_session(client, headers, text=OUTLOOK))["id"]
    package = "## Problem\nOutlook prompts\n\n## Next steps\nCheck the sign-in logs."
    esc = await client.post(f"{API}/{sid}/escalation-package/post", headers=headers, json={"markdown": package})
    assert esc.status_code == 200, esc.text
    assert esc.json()["outcome"] == "escalated_local" and esc.json()["session_status"] == "escalated"
    got = (await client.get(f"{API}/{sid}", headers=headers)).json()
    assert got["status"] == "escalated" and got["escalation_package_markdown"] == package
    assert got["escalated_at"] is not None
    twice = await client.post(f"{API}/{sid}/escalation-package/post", headers=headers, json={"markdown": package})
    assert twice.status_code == 409, twice.text

    note = "## Resolution\nThe senior reset the MFA method."
    res = await client.post(f"{API}/{sid}/resolution-note/post", headers=headers, json={"markdown": note})
    assert res.status_code == 200, res.text
    assert res.json()["outcome"] == "resolved_local" and res.json()["session_status"] == "resolved"
    assert res.json()["state_version"] > esc.json()["state_version"]
    final = (await client.get(f"{API}/{sid}", headers=headers)).json()
    assert final["status"] == "resolved"
    assert final["resolution_note_markdown"] == note and final["escalation_package_markdown"] == package


async def test_posted_markdown_is_bounded(client: AsyncClient, headers: dict[str, str]) -> None:
    sid = (await open_session(client, headers, text=OUTLOOK))["id"]
    url = f"{API}/{sid}/resolution-note/post"
    for bad in ("x" * 50_001, "   \n\t ", ""):
        resp = await client.post(url, headers=headers, json={"markdown": bad})
        assert resp.status_code == 422, (len(bad), resp.text)
    assert (await client.get(f"{API}/{sid}", headers=headers)).json()["status"] == "active"
    longest = "y" * 50_000
    ok = await client.post(url, headers=headers, json={"markdown": longest})
    assert ok.status_code == 200, ok.text
    assert (await client.get(f"{API}/{sid}", headers=headers)).json()["resolution_note_markdown"] == longest


# --- apply and the AI's proposal ---------------------------------------------------------------------


async def test_apply_is_refused_for_parked_and_partial_fixes_and_keeps_the_first_stamp(
    client: AsyncClient, headers: dict[str, str], db: AsyncSession
) -> None:
    sid, fid = await session_with_fix(client, headers)
    applied = await client.post(f"{API}/{sid}/suggested-fixes/{fid}/apply", headers=headers)
    assert applied.status_code == 200, applied.text
    stamp = applied.json()["applied_at"]
    parked = await client.patch(outcome_url(sid, fid), headers=headers,
                                json={"outcome": "applied_pending", "notes": "waiting on a reboot"})
    assert parked.status_code == 200 and parked.json()["applied_at"] == stamp  # not re-stamped
    version = await state_version(db, sid)
    refused = await client.post(f"{API}/{sid}/suggested-fixes/{fid}/apply", headers=headers)
    assert refused.status_code == 409, refused.text
    partial = await client.patch(outcome_url(sid, fid), headers=headers,
                                 json={"outcome": "applied_partial", "notes": "half the users are fine"})
    assert partial.status_code == 200, partial.text
    assert (await client.post(f"{API}/{sid}/suggested-fixes/{fid}/apply", headers=headers)).status_code == 409
    assert await state_version(db, sid) == version + 1  # only the partial outcome counted
    assert (await get_fix(client, headers, sid, fid))["applied_at"] == stamp


async def test_rejecting_the_proposal_is_idempotent_and_leaves_a_parked_fix_parked(
    client: AsyncClient, headers: dict[str, str]
) -> None:
    sid, fid = await session_with_fix(client, headers)
    parked = await client.patch(outcome_url(sid, fid), headers=headers,
                                json={"outcome": "applied_pending", "notes": "waiting on AD replication"})
    assert parked.status_code == 200, parked.text
    answer = await say(client, headers, sid, "it worked")
    assert answer["outcome_fix_id"] == fid
    with_proposal = await get_fix(client, headers, sid, fid)
    assert with_proposal["ai_outcome_proposal"]["outcome"] == "applied_success"
    assert with_proposal["status"] == "applied_pending"

    url = f"{API}/{sid}/suggested-fixes/{fid}/ai-outcome-proposal"
    for _ in range(2):
        resp = await client.delete(url, headers=headers)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["ai_outcome_proposal"] is None
        assert body["status"] == "applied_pending"
        assert body["pending_reason"] == "waiting on AD replication"
        assert body["next_reminder_at"] == parked.json()["next_reminder_at"] is not None
        assert body["verified_at"] is None
    # After a final outcome there is nothing to reject: still 200, still final.
    done = await client.patch(outcome_url(sid, fid), headers=headers, json={"outcome": "applied_success"})
    assert done.status_code == 200, done.text
    final = await client.delete(url, headers=headers)
    assert final.status_code == 200 and final.json()["status"] == "applied_success"
