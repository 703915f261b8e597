"""Bad input anywhere gets a 4xx that names what to fix, never a 500, and stores nothing (found by fuzzing)."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import error_responses
from api.schemas.common import FOLDED_NAME_MAX, MAX_OFFSET, FoldedName, unstorable
from tests.helpers import PASSWORD, add_member, make_user, unique_email

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
    bad_values: list[dict[str, Any]] = [
        {"cw_resolved_status_id": 10**22}, {"cw_escalated_status_id": 0},
        {"pending_verification_reminders": ["-PT5M"]}, {"pending_verification_reminders": [300]},
        {"verification_overdue_after": "soon"}, {"handoff_renotify_after": "P400D"},
        {"pending_verification_reminders": []},
    ]
    for bad in bad_values:
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
        if path in ("/healthz", "/livez", "/metrics"):  # unauthenticated probes; /healthz's 503 is its report
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


# --- lone surrogates, echoed secrets, folded lengths ---------------------------------------------------------

SURROGATE = "\ud800"  # json.loads accepts "\ud800"; no UTF-8 encoder (the response's, Postgres's) does


def _raw(body: Any) -> bytes:
    return json.dumps(body).encode("ascii")  # ensure_ascii: the surrogate travels as the escape \ud800


async def test_a_lone_surrogate_in_a_json_string_is_a_422_naming_where(client: AsyncClient) -> None:
    h = {"Content-Type": "application/json"}
    for body, where in (({"email": unique_email(), "password": PASSWORD, "name": f"Dana{SURROGATE}"}, "name"),
                        ({"email": f"{SURROGATE}@x.com", "password": PASSWORD, "name": "Dana"}, "email"),
                        ({"email": unique_email(), "password": PASSWORD + SURROGATE, "name": "D"}, "password")):
        resp = await client.post("/api/v1/auth/register", content=_raw(body), headers=h)
        assert resp.status_code == 422, resp.text
        assert f"{where} contains a lone UTF-16 surrogate" in _messages(resp), resp.text
    resp = await client.post("/api/v1/auth/register", content=b'{"name":"\\ud800"}', headers=h)
    assert resp.status_code == 422, resp.text


async def test_a_surrogate_in_a_free_form_key_is_a_422_that_renders(client: AsyncClient, db: AsyncSession) -> None:
    owner = await make_user(client, db)
    h = {**owner["headers"], "Content-Type": "application/json"}
    resp = await client.put("/api/v1/account/settings", headers=h, content=_raw({f"k{SURROGATE}": {"x": 1}}))
    assert resp.status_code == 422, resp.text
    assert "surrogate" in _messages(resp)
    assert "\\ud800" in _messages(resp)  # named as its escape, never as the raw code point


async def test_validation_errors_never_echo_the_input(client: AsyncClient) -> None:
    secret = "Hunter2-very-secret-" + "x" * 200  # too long: the password itself fails validation
    cases = [
        ("/api/v1/auth/register", {"email": unique_email(), "password": secret, "name": "D"}),
        ("/api/v1/auth/login/json", {"password": "Hunter2-very-secret"}),  # missing email: pydantic's input = body
        ("/api/v1/auth/register", {"email": "not-an-email", "password": "Hunter2-very-secret", "name": "D"}),
    ]
    for url, body in cases:
        resp = await client.post(url, json=body)
        assert resp.status_code == 422, resp.text
        assert "Hunter2" not in resp.text, resp.text
        assert all("input" not in error for error in resp.json()["detail"]), resp.text
    # The error still says which field and why.
    resp = await client.post("/api/v1/auth/register", json=cases[0][1])
    (error,) = resp.json()["detail"]
    assert error["loc"] == ["body", "password"] and "at most 200 characters" in error["msg"]


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _poison(value: Any) -> Any:
    if isinstance(value, str):
        return value + SURROGATE
    if isinstance(value, dict):
        return {key: _poison(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_poison(item) for item in value]
    return value


def _hostile_bodies(schema: dict[str, Any], components: dict[str, Any]) -> list[Any]:
    """Bodies with a lone surrogate: in every field, in a valid example's strings, and in a free-form key."""
    schema = _resolve(schema, components)
    if schema.get("type") == "array":
        return [[body] for body in _hostile_bodies(schema["items"], components)]
    bodies: list[Any] = [{name: SURROGATE for name in schema.get("properties", {})}, {SURROGATE: SURROGATE}]
    bodies += [_poison(example) for example in schema.get("examples", [])[:1]]
    return bodies


async def _path_values(client: AsyncClient, owner: dict[str, Any]) -> dict[str, str]:
    values = {"user_id": owner["user"]["id"]}
    resp = await client.post("/api/v1/l1/intake", headers=owner["headers"],
                             json={"problem_statement": "The printer is jammed", "adhoc": True})
    if resp.status_code == 200 and resp.json().get("session_id"):
        values["session_id"] = resp.json()["session_id"]
    return values


async def test_no_write_route_answers_a_lone_surrogate_with_a_500(app: FastAPI, db: AsyncSession) -> None:
    # Our own client: a 500 must come back as a response here, not as an exception raised into the test.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
        owner = await make_user(client, db)
        known = await _path_values(client, owner)
        schema = app.openapi()
        components = schema["components"]["schemas"]
        failures, tried = [], 0
        for path, operations in schema["paths"].items():
            for method, op in operations.items():
                if method not in ("post", "put", "patch"):
                    continue
                url = re.sub(r"\{(\w+)\}", lambda m: known.get(m.group(1), str(uuid.uuid4())), path)
                content = op.get("requestBody", {}).get("content", {})
                if "application/json" in content:
                    bodies = [_raw(b) for b in _hostile_bodies(content["application/json"]["schema"], components)]
                    kind = "application/json"
                else:  # a form: the surrogate's UTF-8-ish bytes, percent-encoded
                    bodies = [b"username=%ED%A0%80&password=%ED%A0%80", b"username=\xed\xa0\x80&password=x"]
                    kind = "application/x-www-form-urlencoded"
                for raw in bodies:
                    tried += 1
                    resp = await client.request(method, url, content=raw,
                                                headers={**owner["headers"], "Content-Type": kind})
                    if resp.status_code >= 500:  # a 2xx is fine: e.g. an unknown key is ignored
                        failures.append((method.upper(), path, raw[:80], resp.status_code, resp.text[:200]))
        assert tried >= 30
        assert not failures, "\n".join(map(str, failures))


def test_folded_name_checks_its_bound_after_lower_casing() -> None:
    adapter = TypeAdapter(FoldedName)
    assert adapter.validate_python("  Printing ") == "printing"
    assert adapter.validate_python("İ" * 30) == "i̇" * 30  # 60 code points once folded: at the bound
    with pytest.raises(ValidationError) as info:
        adapter.validate_python("İ" * 60)  # 60 given, 120 once folded: would overflow varchar(60)
    (error,) = info.value.errors()
    assert error["type"] == "string_too_long" and "60" in error["msg"] and "lower-cas" in error["msg"]
    with pytest.raises(ValidationError):
        adapter.validate_python("   ")
    with pytest.raises(ValidationError):
        adapter.validate_python("x" * 61)
    assert adapter.json_schema()["maxLength"] == FOLDED_NAME_MAX


async def test_a_category_name_that_grows_when_lower_cased_is_a_client_error(
    client: AsyncClient, db: AsyncSession
) -> None:
    owner = await make_user(client, db)
    resp = await client.patch("/api/v1/l1/categories", headers=owner["headers"],
                              json=[{"name": "İ" * 60, "in_scope": True}])
    assert resp.status_code in (400, 422), resp.text
    assert "60" in resp.text


async def test_default_escalation_recipients_must_be_active_users_of_the_account(
    client: AsyncClient, db: AsyncSession
) -> None:
    owner = await make_user(client, db)
    h, url = owner["headers"], "/api/v1/account/settings"
    member = (await add_member(client, h, role="engineer"))["user"]["id"]
    gone = (await add_member(client, h, role="l1_tech"))["user"]["id"]
    assert (await client.patch(f"/api/v1/account/users/{gone}", headers=h, json={"is_active": False})).is_success
    stranger = (await make_user(client, db))["user"]["id"]
    unknown = str(uuid.uuid4())

    ok = await client.put(url, headers=h, json={"default_escalation_recipient_ids": [member]})
    assert ok.status_code == 200, ok.text
    for bad in ([stranger], [member, gone], [unknown, member]):
        resp = await client.put(url, headers=h, json={"default_escalation_recipient_ids": bad})
        assert resp.status_code == 400, (bad, resp.text)
        detail = resp.json()["detail"]
        assert "default_escalation_recipient_ids" in detail and "active users of your account" in detail
        assert all(i in detail for i in bad if i != member) and member not in detail, detail
    stored = (await client.get(url, headers=h)).json()["preferences"]
    assert stored["default_escalation_recipient_ids"] == [member]
    cleared = await client.put(url, headers=h, json={"default_escalation_recipient_ids": None})
    assert cleared.status_code == 200 and "default_escalation_recipient_ids" not in cleared.json()["preferences"]


def test_error_responses_documents_a_422_in_both_of_its_shapes() -> None:
    documented = error_responses(400, 422)[422]["model"]
    for body in ({"detail": [{"loc": ["body", "x"], "msg": "Field required", "type": "missing"}]},
                 {"detail": "This Idempotency-Key was already used with a different request"}):
        documented.model_validate(body)


async def test_operations_taking_an_idempotency_key_document_its_422(app: FastAPI) -> None:
    schema = app.openapi()
    for path, operations in schema["paths"].items():
        for method, op in operations.items():
            if any(p["name"] == "Idempotency-Key" for p in op.get("parameters", [])):
                ref = op["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ValidationErrorOut"), (method, path, ref)


async def test_settings_are_bounded_per_request_and_in_total(client: AsyncClient, db: AsyncSession) -> None:
    owner = await make_user(client, db, role="owner")
    many = {f"k{i}": 1 for i in range(51)}
    resp = await client.put("/api/v1/account/settings", headers=owner["headers"], json=many)
    assert resp.status_code == 422 and "at most 50 preferences" in resp.text
    big = {"blob": "x" * 17_000}
    resp = await client.put("/api/v1/account/settings", headers=owner["headers"], json=big)
    assert resp.status_code == 422 and "at most 16,384" in resp.text
    for i in range(4):  # 15 KB each: fine alone, too much together
        resp = await client.put("/api/v1/account/settings", headers=owner["headers"], json={f"b{i}": "y" * 15_000})
        assert resp.status_code == 200, resp.text
    resp = await client.put("/api/v1/account/settings", headers=owner["headers"], json={"b4": "y" * 15_000})
    assert resp.status_code == 400 and "at most 65,536" in resp.json()["detail"]
    kept = (await client.get("/api/v1/account/settings", headers=owner["headers"])).json()["preferences"]
    assert "b4" not in kept and "b3" in kept


async def test_loose_coercions_that_hide_client_bugs_are_refused(client: AsyncClient, db: AsyncSession) -> None:
    tech = await make_user(client, db, role="l1_tech")
    resp = await client.post("/api/v1/l1/intake", headers=tech["headers"],
                             json={"problem_statement": "p", "adhoc": 0})
    assert resp.status_code == 422 and "adhoc" in resp.text
    ok = await client.post("/api/v1/l1/intake", headers=tech["headers"], json={"problem_statement": "p", "adhoc": True})
    sid = ok.json()["session_id"]
    resp = await client.post(f"/api/v1/l1/sessions/{sid}/notes", headers=tech["headers"],
                             json={"notes": [{"text": "x", "ts": 0}]})
    assert resp.status_code == 422 and "ISO 8601" in resp.text
    resp = await client.post(f"/api/v1/l1/sessions/{sid}/resolve", headers=tech["headers"], json={"helpful": "yes"})
    assert resp.status_code == 422
