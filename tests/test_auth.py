"""Register, login and token handling (the 401 half of the auth matrix)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import jwt
from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from db.models import Subscription
from tests.helpers import PASSWORD, login, register, unique_email


async def test_register_creates_owner_of_new_trialing_account(client: AsyncClient, db: AsyncSession) -> None:
    email = unique_email("owner")
    body = await register(client, email=email, name="Dana")
    assert body["email"] == email
    assert body["account_role"] == "owner"
    assert body["name"] == "Dana"
    assert "hashed_password" not in body and "password" not in body
    sub = (await db.execute(select(Subscription).where(
        Subscription.account_id == uuid.UUID(body["account_id"])))).scalar_one()
    assert (sub.plan, sub.status) == ("pro", "trialing")


async def test_register_twice_with_same_email_any_case_is_409(client: AsyncClient) -> None:
    email = unique_email("dup")
    await register(client, email=email)
    resp = await client.post("/api/v1/auth/register",
                             json={"email": email.upper(), "password": PASSWORD, "name": "X"})
    assert resp.status_code == 409
    assert "email" in resp.json()["detail"]


async def test_register_rejects_malformed_email_and_short_password_naming_the_field(client: AsyncClient) -> None:
    bad_email = await client.post("/api/v1/auth/register",
                                  json={"email": "not-an-email", "password": PASSWORD, "name": "X"})
    assert bad_email.status_code == 422
    assert any(err["loc"][-1] == "email" for err in bad_email.json()["detail"])
    short = await client.post("/api/v1/auth/register",
                              json={"email": unique_email(), "password": "short", "name": "X"})
    assert short.status_code == 422
    assert any(err["loc"][-1] == "password" for err in short.json()["detail"])


async def test_login_json_and_form_return_bearer_token_usable_on_me(client: AsyncClient) -> None:
    email = unique_email()
    user = await register(client, email=email)
    headers = await login(client, email=email)
    me = await client.get("/api/v1/auth/me", headers=headers)
    assert me.status_code == 200 and me.json()["id"] == user["id"]
    form = await client.post("/api/v1/auth/login", data={"username": email, "password": PASSWORD})
    assert form.status_code == 200 and form.json()["token_type"] == "bearer"


async def test_login_form_with_a_nul_character_is_a_422_not_a_database_error(client: AsyncClient) -> None:
    email = unique_email()
    await register(client, email=email)
    resp = await client.post("/api/v1/auth/login", data={"username": f"{email}\x00", "password": PASSWORD})
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"][0]["loc"] == ["body", "username"]
    assert "NUL character" in resp.json()["detail"][0]["msg"]
    form = await client.post("/api/v1/auth/login", data={"username": email, "password": PASSWORD})
    assert form.status_code == 200


async def test_wrong_password_and_unknown_email_are_401(client: AsyncClient) -> None:
    email = unique_email()
    await register(client, email=email)
    wrong = await client.post("/api/v1/auth/login/json", json={"email": email, "password": "WrongPass123!"})
    unknown = await client.post("/api/v1/auth/login/json",
                                json={"email": unique_email(), "password": PASSWORD})
    assert wrong.status_code == 401 and unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]  # no account enumeration


async def test_missing_garbled_and_expired_tokens_are_401(client: AsyncClient, settings: Settings) -> None:
    user = await register(client)
    assert (await client.get("/api/v1/auth/me")).status_code == 401
    garbled = await client.get("/api/v1/auth/me", headers={"Authorization": "Bearer not.a.jwt"})
    assert garbled.status_code == 401
    past = datetime.now(UTC) - timedelta(hours=1)
    expired = jwt.encode({"sub": user["id"], "iat": past - timedelta(hours=1), "exp": past},
                         settings.jwt_secret, algorithm=settings.jwt_algorithm)
    resp = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {expired}"})
    assert resp.status_code == 401 and "expired" in resp.json()["detail"].lower()
    forged = jwt.encode({"sub": user["id"], "exp": datetime.now(UTC) + timedelta(hours=1)},
                        "another-secret-of-at-least-32-bytes!!", algorithm="HS256")
    resp = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {forged}"})
    assert resp.status_code == 401


async def test_inactive_and_deleted_users_are_refused(client: AsyncClient) -> None:
    owner_email = unique_email("owner")
    await register(client, email=owner_email)
    owner = await login(client, email=owner_email)
    for action in ("deactivate", "delete"):
        email = unique_email(action)
        created = await client.post("/api/v1/account/users", headers=owner, json={
            "email": email, "name": action, "password": PASSWORD, "account_role": "engineer"})
        assert created.status_code == 201, created.text
        token = await login(client, email=email)
        if action == "deactivate":
            r = await client.patch(f"/api/v1/account/users/{created.json()['id']}", headers=owner,
                                   json={"is_active": False})
            assert r.status_code == 200 and r.json()["is_active"] is False
        else:
            r = await client.delete(f"/api/v1/account/users/{created.json()['id']}", headers=owner)
            assert r.status_code == 204
        assert (await client.get("/api/v1/auth/me", headers=token)).status_code == 401
        relogin = await client.post("/api/v1/auth/login/json", json={"email": email, "password": PASSWORD})
        assert relogin.status_code == 401
