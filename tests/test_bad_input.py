"""Bad input anywhere gets a 4xx that names what to fix, never a 500, and stores nothing (found by fuzzing)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from api.schemas.common import MAX_OFFSET, unstorable
from tests.helpers import PASSWORD, make_user, unique_email

LISTS = ["/api/v1/account/users", "/api/v1/l1/flows", "/api/v1/l1/sessions/active", "/api/v1/l1/escalations",
         "/api/v1/flow-proposals"]


def _messages(resp: Any) -> str:
    return " ".join(str(e.get("msg", "")) for e in resp.json()["detail"])


async def test_a_nul_character_in_any_json_string_is_a_422_naming_where(client: AsyncClient) -> None:
    email = unique_email()
    resp = await client.post("/api/v1/auth/register",
                             json={"email": email, "password": PASSWORD, "name": "Dana\u0000"})
    assert resp.status_code == 422, resp.text
    assert "name contains a NUL character" in _messages(resp)
    # Nothing was created: the same email registers cleanly afterwards.
    ok = await client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Dana"})
    assert ok.status_code == 201, ok.text


async def test_nan_or_infinity_in_a_typed_field_is_a_422_not_a_500(client: AsyncClient) -> None:
    # json.loads accepts these; echoing them back in the 422 used to fail to render (500).
    raw = f'{{"email": "{unique_email()}", "password": Infinity, "name": NaN}}'
    resp = await client.post("/api/v1/auth/register", content=raw, headers={"Content-Type": "application/json"})
    assert resp.status_code == 422, resp.text
    assert "must be a finite number" in _messages(resp)
    assert "input" not in resp.json()["detail"][0]  # the body cannot be echoed back as JSON


async def test_settings_refuse_nul_and_non_finite_values_and_keep_what_was_stored(
    client: AsyncClient, db: AsyncSession
) -> None:
    owner = await make_user(client, db)
    h, url = owner["headers"], "/api/v1/account/settings"
    assert (await client.put(url, headers=h, json={"custom": "kept"})).status_code == 200
    bad_bodies = {
        '{"custom": "a\\u0000b"}': "custom contains a NUL",
        '{"a\\u0000": 1}': "contains a NUL",
        '{"nested": {"list": [1, "\\u0000"]}}': "nested.list[1] contains a NUL",
        # json parses these to inf/nan, which would otherwise be stored as null: the key silently deleted.
        '{"custom": 1e400}': "custom must be a finite number",
        '{"custom": NaN}': "custom must be a finite number",
    }
    for raw, expected in bad_bodies.items():
        resp = await client.put(url, headers={**h, "Content-Type": "application/json"}, content=raw)
        assert resp.status_code == 422, (raw, resp.text)
        assert expected in _messages(resp), (raw, resp.text)
    for bad in ({"cw_resolved_status_id": 10**22}, {"cw_escalated_status_id": 0},
                {"pending_verification_reminder_minutes": [-5]}):
        resp = await client.put(url, headers=h, json=bad)
        assert resp.status_code == 422, (bad, resp.text)
    assert (await client.get(url, headers=h)).json()["preferences"] == {"custom": "kept"}


async def test_huge_offsets_are_a_422_not_a_database_overflow(client: AsyncClient, db: AsyncSession) -> None:
    owner = await make_user(client, db)
    for path in LISTS:
        resp = await client.get(path, headers=owner["headers"], params={"offset": 6877324164060665610240})
        assert resp.status_code == 422, (path, resp.text)
        assert resp.json()["detail"][0]["loc"] == ["query", "offset"]
        at_max = await client.get(path, headers=owner["headers"], params={"offset": MAX_OFFSET})
        assert at_max.status_code == 200 and at_max.json() == [], (path, at_max.text)


async def test_a_body_that_is_not_utf8_is_a_400_that_says_so(client: AsyncClient, db: AsyncSession) -> None:
    owner = await make_user(client, db)
    resp = await client.put("/api/v1/account/subscription", content=b'{"plan": "\xff\xfe"}',
                            headers={**owner["headers"], "Content-Type": "application/json"})
    assert resp.status_code == 400
    assert "not valid UTF-8" in resp.json()["detail"]
    # Invalid JSON (valid UTF-8) stays FastAPI's 422.
    resp = await client.put("/api/v1/account/subscription", content=b"{plan",
                            headers={**owner["headers"], "Content-Type": "application/json"})
    assert resp.status_code == 422


async def test_every_authenticated_operation_documents_its_error_statuses(app: FastAPI) -> None:
    public = {"/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/auth/login/json"}
    schema = app.openapi()
    for path, operations in schema["paths"].items():
        if path == "/healthz":  # its 503 body is the health report, not an error
            continue
        for method, op in operations.items():
            codes = set(op["responses"])
            if path not in public:
                assert {"401", "503"} <= codes, (method, path, codes)
            if "requestBody" in op:
                assert "400" in codes, (method, path, codes)  # a body that cannot be decoded
            for code in codes - {"200", "201", "204", "422"}:
                content = op["responses"][code].get("content", {})
                assert content, (method, path, code)
                assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorOut"}
    account = schema["paths"]["/api/v1/account/users/{user_id}"]
    assert {"400", "403", "404"} <= set(account["delete"]["responses"])
    assert "409" in schema["paths"]["/api/v1/account/users"]["post"]["responses"]


async def test_deeply_nested_bodies_are_client_errors(client: AsyncClient, db: AsyncSession) -> None:
    owner = await make_user(client, db)
    h = {**owner["headers"], "Content-Type": "application/json"}
    # Free-form settings used to validate, then fail to serialize (500).
    resp = await client.put("/api/v1/account/settings", headers=h, content='{"x": ' + "[" * 900 + "]" * 900 + "}")
    assert resp.status_code == 422 and "levels deep" in resp.text
    resp = await client.put("/api/v1/account/settings", headers=h, content='{"x": ' + "[" * 5000 + "]" * 5000 + "}")
    assert resp.status_code == 400 and "nested too deeply" in resp.json()["detail"]
    ok = await client.put("/api/v1/account/settings", headers=h, content='{"x": ' + "[" * 30 + "]" * 30 + "}")
    assert ok.status_code == 200, ok.text


def test_unstorable_walks_deep_nesting_without_recursing() -> None:
    deep: Any = "\x00"
    for _ in range(5000):
        deep = [deep]
    assert "levels deep" in (unstorable(deep) or "")
    assert unstorable({"a": [1, 2.5, "ok", {"b": None}]}) is None


async def test_ignored_unknown_fields_are_not_checked(client: AsyncClient) -> None:
    raw = f'{{"email": "{unique_email()}", "password": "{PASSWORD}", "name": "Dana", "junk\\u0000": NaN}}'
    resp = await client.post("/api/v1/auth/register", content=raw, headers={"Content-Type": "application/json"})
    assert resp.status_code == 201, resp.text
