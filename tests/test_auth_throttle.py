"""Failed logins are throttled per email and per client address, in PostgreSQL so every API process agrees."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from api.app import create_app
from core.config import Settings
from tests.helpers import PASSWORD, register, unique_email

WRONG = "WrongPass123!"


async def _login(client: AsyncClient, email: str, password: str = WRONG) -> httpx.Response:
    return await client.post("/api/v1/auth/login/json", json={"email": email, "password": password})


def _client(app: FastAPI, address: str = "127.0.0.1") -> AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return AsyncClient(transport=transport, base_url="http://test", timeout=30)


@pytest.fixture
async def second_api(settings: Settings) -> AsyncIterator[FastAPI]:
    """Another API process on the same database: its own app, engine and connection pool."""
    other = create_app(settings)
    async with other.router.lifespan_context(other):
        yield other


def _assert_throttled(resp: httpx.Response, window_s: int, what: str) -> None:
    assert resp.status_code == 429, resp.text
    retry_after = int(resp.headers["Retry-After"])
    assert 0 < retry_after <= window_s
    detail = resp.json()["detail"]
    assert what in detail and f"try again in {retry_after} s" in detail and "UTC" in detail


async def test_the_eleventh_failure_on_an_email_is_429_even_with_the_right_password(
        client: AsyncClient, settings: Settings) -> None:
    email = unique_email()
    await register(client, email=email)
    for _ in range(settings.login_max_failures_per_email):
        assert (await _login(client, email)).status_code == 401
    _assert_throttled(await _login(client, email, PASSWORD), settings.login_throttle_window_s, "for this email")
    # Other accounts from the same address are not affected.
    other = unique_email()
    await register(client, email=other)
    assert (await _login(client, other, PASSWORD)).status_code == 200


async def test_unknown_emails_are_throttled_like_known_ones(client: AsyncClient, settings: Settings) -> None:
    email = unique_email("nobody")
    codes = [(await _login(client, email)).status_code for _ in range(settings.login_max_failures_per_email + 1)]
    assert codes == [401] * settings.login_max_failures_per_email + [429]


async def test_a_successful_login_resets_the_email_counter(client: AsyncClient, settings: Settings) -> None:
    email = unique_email()
    await register(client, email=email)
    almost = settings.login_max_failures_per_email - 1
    for _ in range(almost):
        assert (await _login(client, email)).status_code == 401
    assert (await _login(client, email, PASSWORD)).status_code == 200
    for _ in range(almost):
        assert (await _login(client, email)).status_code == 401
    assert (await _login(client, email, PASSWORD)).status_code == 200


async def test_concurrent_guesses_cannot_slip_under_the_limit(client: AsyncClient, settings: Settings) -> None:
    email = unique_email()
    await register(client, email=email)
    responses = await asyncio.gather(*(_login(client, email) for _ in range(25)))
    codes = sorted(r.status_code for r in responses)
    limit = settings.login_max_failures_per_email
    assert codes == [401] * limit + [429] * (25 - limit), codes


async def test_failures_from_one_address_are_capped_across_emails(
        app: FastAPI, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "login_max_failures_per_address", 3)
    async with _client(app, "203.0.113.7") as attacker, _client(app, "198.51.100.2") as bystander:
        email = unique_email()
        await register(bystander, email=email)
        for _ in range(3):
            assert (await _login(attacker, unique_email())).status_code == 401
        _assert_throttled(await _login(attacker, email, PASSWORD), settings.login_throttle_window_s,
                          "from your address")
        # The refused attempts were not counted against the email: its owner logs in from elsewhere.
        assert (await _login(bystander, email, PASSWORD)).status_code == 200


async def test_successful_logins_do_not_use_up_the_address_allowance(
        client: AsyncClient, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "login_max_failures_per_address", 2)
    email = unique_email()
    await register(client, email=email)
    for _ in range(5):  # a busy office behind one address logging in all day
        assert (await _login(client, email, PASSWORD)).status_code == 200


async def test_the_count_is_shared_by_every_api_process(client: AsyncClient, app: FastAPI, second_api: FastAPI,
                                                        settings: Settings) -> None:
    email = unique_email()
    await register(client, email=email)
    async with _client(app) as first, _client(second_api) as second:
        codes: list[Any] = []
        for i in range(settings.login_max_failures_per_email):
            codes.append((await _login(first if i % 2 else second, email)).status_code)
        assert codes == [401] * settings.login_max_failures_per_email
        assert (await _login(second, email, PASSWORD)).status_code == 429
        assert (await _login(first, email, PASSWORD)).status_code == 429


async def test_the_window_ends(client: AsyncClient, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "login_throttle_window_s", 1)
    monkeypatch.setattr(settings, "login_max_failures_per_email", 2)
    email = unique_email()
    await register(client, email=email)
    assert [(await _login(client, email)).status_code for _ in range(3)] == [401, 401, 429]
    await asyncio.sleep(1.2)
    assert (await _login(client, email, PASSWORD)).status_code == 200
