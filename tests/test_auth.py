"""Register, login and token handling (the 401 half of the auth matrix)."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from argon2 import PasswordHasher
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


def _token(settings: Settings, claims: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {jwt.encode(claims, settings.jwt_secret, algorithm=settings.jwt_algorithm)}"}


async def test_tokens_need_iat_and_may_not_outlive_the_configured_lifetime(client: AsyncClient,
                                                                           settings: Settings) -> None:
    user = await register(client)
    now = datetime.now(UTC)
    lifetime = timedelta(minutes=settings.jwt_expire_minutes)
    valid = _token(settings, {"sub": user["id"], "iat": now, "exp": now + lifetime})
    assert (await client.get("/api/v1/auth/me", headers=valid)).status_code == 200
    refused = {
        "no iat": {"sub": user["id"], "exp": now + timedelta(hours=1)},
        "no exp": {"sub": user["id"], "iat": now},
        "signed for a year": {"sub": user["id"], "iat": now, "exp": now + timedelta(days=365)},
        "a minute too long": {"sub": user["id"], "iat": now, "exp": now + lifetime + timedelta(minutes=1)},
        "issued in the future": {"sub": user["id"], "iat": now + timedelta(hours=1),
                                 "exp": now + timedelta(hours=1) + lifetime},
    }
    for case, claims in refused.items():
        resp = await client.get("/api/v1/auth/me", headers=_token(settings, claims))
        assert resp.status_code == 401, (case, resp.text)
        assert resp.json()["detail"] == "Invalid token", case


async def test_a_token_signed_with_the_old_built_in_dev_secret_is_refused(client: AsyncClient) -> None:
    user = await register(client)
    now = datetime.now(UTC)
    claims = {"sub": user["id"], "iat": now, "exp": now + timedelta(minutes=5)}
    forged = jwt.encode(claims, "dev-insecure-jwt-secret-change-me", algorithm="HS256")
    resp = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {forged}"})
    assert resp.status_code == 401


async def test_concurrent_identical_registers_give_one_201_and_409s(client: AsyncClient, db: AsyncSession) -> None:
    email = unique_email("race")
    body = {"email": email, "password": PASSWORD, "name": "Racer"}
    responses = await asyncio.gather(*(client.post("/api/v1/auth/register", json=body) for _ in range(10)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [409] * 9, [r.text for r in responses]
    assert {r.json()["detail"] for r in responses if r.status_code == 409} == {
        "A user with this email already exists"}
    # The losers' accounts were rolled back with their user: one account, one subscription.
    subs = (await db.execute(select(Subscription))).scalars().all()
    assert len(subs) == 1


async def test_concurrent_identical_user_creations_give_one_201_and_409s(client: AsyncClient) -> None:
    owner_email = unique_email("owner")
    await register(client, email=owner_email)
    owner = await login(client, email=owner_email)
    body = {"email": unique_email("member"), "name": "M", "password": PASSWORD, "account_role": "viewer"}
    responses = await asyncio.gather(*(client.post("/api/v1/account/users", headers=owner, json=body)
                                       for _ in range(6)))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 5, [r.text for r in responses]


class _HasherSpy:
    """Records which thread each argon2 call ran on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[tuple[str, int]] = []
        for method in ("hash", "verify"):
            monkeypatch.setattr(PasswordHasher, method, self._wrap(method, getattr(PasswordHasher, method)))

    def _wrap(self, method: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def spy(hasher: PasswordHasher, *args: Any, **kwargs: Any) -> Any:
            self.calls.append((method, threading.get_ident()))
            return original(hasher, *args, **kwargs)

        return spy

    def count(self, method: str) -> int:
        """How many calls of `method` were made."""
        return sum(1 for name, _ in self.calls if name == method)


async def test_argon2_runs_off_the_event_loop(client: AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = _HasherSpy(monkeypatch)
    email = unique_email()
    await register(client, email=email)
    owner = await login(client, email=email)
    await client.post("/api/v1/account/users", headers=owner, json={
        "email": unique_email(), "name": "M", "password": PASSWORD, "account_role": "viewer"})
    await client.post("/api/v1/auth/login/json", json={"email": email, "password": "WrongPass123!"})
    assert spy.count("hash") >= 2 and spy.count("verify") >= 2, spy.calls
    loop_thread = threading.get_ident()  # the ASGI app runs on the test's event loop
    assert all(thread != loop_thread for _, thread in spy.calls), "argon2 ran on the event loop"


async def test_other_requests_are_served_during_a_burst_of_bad_logins(client: AsyncClient) -> None:
    email = unique_email()
    await register(client, email=email)
    headers = await login(client, email=email)
    started = time.perf_counter()
    burst = [asyncio.create_task(client.post("/api/v1/auth/login/json",
                                             json={"email": unique_email(), "password": "WrongPass123!"}))
             for _ in range(24)]  # more than the pool's 20 connections
    await asyncio.sleep(0.05)  # the burst is hashing now
    me = await client.get("/api/v1/auth/me", headers=headers)
    elapsed = time.perf_counter() - started
    unfinished = sum(1 for task in burst if not task.done())
    await asyncio.gather(*burst)
    assert me.status_code == 200
    # With argon2 on the loop, /me (and even the sleep) waited for all 24 hashes (~0.15 s each); with a
    # connection held while hashing, it waited for a free one. Now it is answered while they run.
    assert unfinished > 0 and elapsed < 1.0, (elapsed, unfinished)


async def test_an_unknown_email_costs_a_password_verification(client: AsyncClient,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    email = unique_email()
    await register(client, email=email)
    spy = _HasherSpy(monkeypatch)
    unknown = await client.post("/api/v1/auth/login/json", json={"email": unique_email(), "password": PASSWORD})
    assert unknown.status_code == 401
    assert spy.count("verify") == 1  # against the dummy hash, as a wrong password would be

    async def timed(login_email: str) -> float:
        started = time.perf_counter()
        resp = await client.post("/api/v1/auth/login/json", json={"email": login_email, "password": "Wrong-123!"})
        assert resp.status_code == 401
        return time.perf_counter() - started

    wrong, missing = [], []
    for _ in range(5):  # interleaved, so load on the machine hits both alike
        wrong.append(await timed(email))
        missing.append(await timed(unique_email()))
    ratio = statistics.median(missing) / statistics.median(wrong)
    assert 0.5 < ratio < 2.0, (wrong, missing)
