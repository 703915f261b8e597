"""The hostile look at AI sessions over HTTP: bad bodies, other tenants' ids, roles, unpaid accounts,
malformed ids. None of it may change anything or answer 500."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from tests.ai_sessions.support import API, open_session, outcome_url, session_with_fix, state_version
from tests.helpers import add_member, make_user, set_subscription

JSON = {"Content-Type": "application/json"}
Route = tuple[str, str, dict[str, Any] | None]


def read_routes(sid: str, fid: str) -> list[Route]:
    """Every read of one session and one of its fixes."""
    return [
        ("GET", f"{API}/{sid}", None),
        ("GET", f"{API}/{sid}/suggested-fixes", None),
        ("GET", f"{API}/{sid}/suggested-fixes/active", None),
        ("GET", f"{API}/{sid}/suggested-fixes/{fid}", None),
    ]


def fix_write_routes(sid: str, fid: str) -> list[Route]:
    """Every write on one fix."""
    return [
        ("POST", f"{API}/{sid}/suggested-fixes/{fid}/apply", None),
        ("PATCH", f"{API}/{sid}/suggested-fixes/{fid}/outcome", {"outcome": "applied_pending", "notes": "x"}),
        ("DELETE", f"{API}/{sid}/suggested-fixes/{fid}/ai-outcome-proposal", None),
    ]


def write_routes(sid: str, fid: str) -> list[Route]:
    """Every write on one session and one of its fixes (closing posts last: they would end the session)."""
    return [
        ("POST", f"{API}/{sid}/messages", {"content": "hello"}),
        ("POST", f"{API}/{sid}/suggested-fixes", {"title": "Mine", "description": "", "confidence_pct": 50}),
        *fix_write_routes(sid, fid),
        ("POST", f"{API}/{sid}/resolution-note/preview", None),
        ("POST", f"{API}/{sid}/escalation-package/preview", None),
        ("POST", f"{API}/{sid}/escalation-package/post", {"markdown": "escalating"}),
        ("POST", f"{API}/{sid}/resolution-note/post", {"markdown": "resolved"}),
    ]


CREATE: Route = ("POST", API, {"session_type": "chat", "intake_type": "free_text",
                               "intake_content": {"text": "Outlook keeps prompting for a password"}})


async def call(client: AsyncClient, headers: dict[str, str], route: Route) -> Any:
    method, url, body = route
    return await client.request(method, url, headers=headers, json=body)


async def snapshot(client: AsyncClient, headers: dict[str, str], sid: str, fid: str) -> list[Any]:
    """What the owner sees of the session and the fix (to prove a refused request changed nothing)."""
    session = (await client.get(f"{API}/{sid}", headers=headers)).json()
    fix = (await client.get(f"{API}/{sid}/suggested-fixes/{fid}", headers=headers)).json()
    return [session["status"], session["state_version"], session["message_count"], fix["status"],
            fix["applied_at"], fix["superseded_at"]]


@pytest.fixture
async def owner(client: AsyncClient, db: AsyncSession) -> dict[str, Any]:
    """The owner of a fresh, paying account."""
    return await make_user(client, db, role="owner")


# --- bad bodies -----------------------------------------------------------------------------------------


async def test_bad_outcome_bodies_are_422_and_change_nothing(client: AsyncClient, owner: dict[str, Any],
                                                             db: AsyncSession) -> None:
    h = owner["headers"]
    sid, fid = await session_with_fix(client, h)
    url = outcome_url(sid, fid)
    before = await state_version(db, sid)
    bodies: list[Any] = [{"outcome": "worked"}, {"outcome": "applied_partial", "notes": "n" * 4_001}, {},
                         {"notes": "no outcome"}, {"outcome": None}, [], "applied_success"]
    for body in bodies:
        resp = await client.patch(url, headers=h, json=body)
        assert resp.status_code == 422, (body, resp.text)
    for raw in ('{"outcome": "applied_partial", "notes": "bad \\ud800 char"}', '{"outcome": "applied_pending", '
                '"notes": "nul \\u0000 char"}', "{outcome", ""):
        resp = await client.patch(url, headers={**h, **JSON}, content=raw)
        assert resp.status_code == 422, (raw, resp.text)
    missing = await client.patch(url, headers=h)
    assert missing.status_code == 422, missing.text
    assert await state_version(db, sid) == before
    longest = await client.patch(url, headers=h, json={"outcome": "applied_partial", "notes": "n" * 4_000})
    assert longest.status_code == 200 and longest.json()["partial_notes"] == "n" * 4_000


async def test_bad_message_bodies_are_422_and_store_nothing(client: AsyncClient, owner: dict[str, Any]) -> None:
    h = owner["headers"]
    sid = (await open_session(client, h, text="Outlook keeps prompting for a password"))["id"]
    url = f"{API}/{sid}/messages"
    for body in ({"content": "m" * 8_001}, {"content": "   \n\t  "}, {"content": ""}, {}, {"content": None},
                 {"text": "wrong field"}):
        resp = await client.post(url, headers=h, json=body)
        assert resp.status_code == 422, (body, resp.text)
    surrogate = await client.post(url, headers={**h, **JSON}, content='{"content": "bad \\ud800 char"}')
    assert surrogate.status_code == 422, surrogate.text
    assert "surrogate" in surrogate.text
    for raw in ("{content", '{"content": "unterminated', ""):
        resp = await client.post(url, headers={**h, **JSON}, content=raw)
        assert resp.status_code == 422, (raw, resp.text)  # as everywhere in the app (tests/test_bad_input.py)
    assert (await client.post(url, headers=h)).status_code == 422
    assert (await client.get(f"{API}/{sid}", headers=h)).json()["message_count"] == 1
    longest = await client.post(url, headers=h, json={"content": "m" * 8_000})
    assert longest.status_code == 200, longest.text
    assert (await client.get(f"{API}/{sid}", headers=h)).json()["message_count"] == 3


async def test_bad_fix_and_session_bodies_are_422(client: AsyncClient, owner: dict[str, Any]) -> None:
    h = owner["headers"]
    sid = (await open_session(client, h))["id"]
    fixes: list[dict[str, Any]] = [
        {"title": "t", "description": "", "confidence_pct": 101}, {"title": " ", "confidence_pct": 5},
        {"title": "t" * 201, "confidence_pct": 5}, {"title": "t", "confidence_pct": -1}]
    for fix in fixes:
        resp = await client.post(f"{API}/{sid}/suggested-fixes", headers=h, json=fix)
        assert resp.status_code == 422, (fix, resp.text)
    assert (await client.get(f"{API}/{sid}/suggested-fixes", headers=h)).json()["total"] == 0
    sessions: list[dict[str, Any]] = [
        {"session_type": "chat", "intake_content": {"text": "  "}},
        # Separator controls only: str.strip() drops them, leaving no summary line (was an IndexError, a 500).
        {"session_type": "chat", "intake_content": {"text": " \x1c\x1f\n"}},
        {"session_type": "chat", "intake_content": {"text": "x" * 8_001}},
        {"session_type": "chat", "intake_type": "psa_ticket", "intake_content": {"text": "x"}}]
    for session in sessions:
        resp = await client.post(API, headers=h, json=session)
        assert resp.status_code == 422, (session, resp.text)
    assert (await client.get(API, headers=h)).json()["total"] == 1


async def test_paging_and_headers_out_of_range_are_422(client: AsyncClient, owner: dict[str, Any]) -> None:
    h = owner["headers"]
    sid, fid = await session_with_fix(client, h)
    for url in (API, f"{API}/{sid}/suggested-fixes"):
        for params in ({"limit": 0}, {"limit": 201}, {"offset": -1}, {"limit": "ten"}):
            resp = await client.get(url, headers=h, params=params)
            assert resp.status_code == 422, (url, params, resp.text)
    for key in ("has space", "x" * 201, "a/b", "semi;colon"):
        resp = await client.post(f"{API}/{sid}/suggested-fixes/{fid}/apply", headers={**h, "Idempotency-Key": key})
        assert resp.status_code == 422, (key, resp.text)
    assert (await client.get(f"{API}/{sid}/suggested-fixes/{fid}", headers=h)).json()["applied_at"] is None


async def test_malformed_ids_in_the_path_are_422(client: AsyncClient, owner: dict[str, Any]) -> None:
    h = owner["headers"]
    sid, fid = await session_with_fix(client, h)
    for route in [*read_routes("not-a-uuid", fid), *write_routes("not-a-uuid", fid)]:
        resp = await call(client, h, route)
        assert resp.status_code == 422, (route, resp.text)
    for route in [read_routes(sid, "12345")[3], *fix_write_routes(sid, "12345")]:
        resp = await call(client, h, route)
        assert resp.status_code == 422, (route, resp.text)


# --- other sessions, other accounts ---------------------------------------------------------------------


async def test_a_fix_of_another_session_is_404(client: AsyncClient, owner: dict[str, Any]) -> None:
    h = owner["headers"]
    sid_a, fid_a = await session_with_fix(client, h)
    sid_b, fid_b = await session_with_fix(client, h)
    for route in [read_routes(sid_a, fid_b)[3], *fix_write_routes(sid_a, fid_b)]:
        resp = await call(client, h, route)
        assert resp.status_code == 404, (route, resp.text)
    # The session itself is fine: its own fix is found.
    assert (await client.get(f"{API}/{sid_a}/suggested-fixes/active", headers=h)).json()["id"] == fid_a
    assert (await client.get(f"{API}/{sid_b}/suggested-fixes/{fid_b}", headers=h)).json()["status"] == "proposed"
    assert (await client.get(f"{API}/{sid_b}/suggested-fixes/{fid_b}", headers=h)).json()["applied_at"] is None


async def test_another_accounts_session_and_fix_are_404_on_every_route(
    client: AsyncClient, db: AsyncSession, owner: dict[str, Any]
) -> None:
    h = owner["headers"]
    sid, fid = await session_with_fix(client, h)
    before = await snapshot(client, h, sid, fid)
    stranger = (await make_user(client, db, role="owner"))["headers"]
    their_sid, their_fid = await session_with_fix(client, stranger)
    for route in [*read_routes(sid, fid), *write_routes(sid, fid)]:
        resp = await call(client, stranger, route)
        assert resp.status_code == 404, (route, resp.text)
    # Their own session with my fix id: still not found.
    for route in [read_routes(their_sid, fid)[3], *fix_write_routes(their_sid, fid)]:
        resp = await call(client, stranger, route)
        assert resp.status_code == 404, (route, resp.text)
    assert await snapshot(client, h, sid, fid) == before
    assert their_fid != fid


# --- roles and subscription ----------------------------------------------------------------------------


async def test_viewers_read_but_never_write(client: AsyncClient, owner: dict[str, Any]) -> None:
    h = owner["headers"]
    sid, fid = await session_with_fix(client, h)
    before = await snapshot(client, h, sid, fid)
    viewer = (await add_member(client, h, role="viewer"))["headers"]
    for route in read_routes(sid, fid):
        resp = await call(client, viewer, route)
        assert resp.status_code == 200, (route, resp.text)
    listed = await client.get(API, headers=viewer)
    assert listed.status_code == 200 and [s["id"] for s in listed.json()["items"]] == [sid]
    for route in [CREATE, *write_routes(sid, fid)]:
        resp = await call(client, viewer, route)
        assert resp.status_code == 403, (route, resp.text)
    assert await snapshot(client, h, sid, fid) == before
    assert (await client.get(API, headers=h)).json()["total"] == 1


async def test_l1_techs_are_refused_everywhere(client: AsyncClient, owner: dict[str, Any]) -> None:
    h = owner["headers"]
    sid, fid = await session_with_fix(client, h)
    before = await snapshot(client, h, sid, fid)
    tech = (await add_member(client, h, role="l1_tech"))["headers"]
    for route in [("GET", API, None), CREATE, *read_routes(sid, fid), *write_routes(sid, fid)]:
        resp = await call(client, tech, route)
        assert resp.status_code == 403, (route, resp.text)
    assert await snapshot(client, h, sid, fid) == before


@pytest.mark.parametrize("subscription", ["past_due", "canceled"])
async def test_an_unpaid_account_reads_but_does_not_write(
    client: AsyncClient, db: AsyncSession, owner: dict[str, Any], subscription: str
) -> None:
    h = owner["headers"]
    sid, fid = await session_with_fix(client, h)
    before = await snapshot(client, h, sid, fid)
    await set_subscription(db, owner["account_id"], subscription)
    for route in [CREATE, *write_routes(sid, fid)]:
        resp = await call(client, h, route)
        assert resp.status_code == 402, (route, resp.text)
    for route in [("GET", API, None), *read_routes(sid, fid)]:
        resp = await call(client, h, route)
        assert resp.status_code == 200, (route, resp.text)
    assert await snapshot(client, h, sid, fid) == before
    await set_subscription(db, owner["account_id"], "trialing")
    resumed = await client.post(f"{API}/{sid}/suggested-fixes/{fid}/apply", headers=h)
    assert resumed.status_code == 200, resumed.text
