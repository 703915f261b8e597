"""Helpers shared by HTTP tests, in the style of the seeds' `_register`/`_login`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from httpx import AsyncClient, Response
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Subscription, User

PASSWORD = "TestPassword123!"


def unique_email(prefix: str = "user") -> str:
    """An email no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


async def register(client: AsyncClient, *, email: str | None = None, password: str = PASSWORD,
                   name: str = "Test User") -> dict[str, Any]:
    """Register a new account owner; returns the user JSON."""
    resp = await client.post("/api/v1/auth/register",
                             json={"email": email or unique_email(), "password": password, "name": name})
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def login(client: AsyncClient, *, email: str, password: str = PASSWORD) -> dict[str, str]:
    """Log in; returns the Authorization header."""
    resp = await client.post("/api/v1/auth/login/json", json={"email": email, "password": password})
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


async def set_role(db: AsyncSession, user_id: str | uuid.UUID, role: str) -> None:
    """Change a user's account role directly in the database."""
    await db.execute(update(User).where(User.id == uuid.UUID(str(user_id))).values(account_role=role))
    await db.commit()


async def set_subscription(db: AsyncSession, account_id: str | uuid.UUID, status: str, plan: str = "pro") -> None:
    """Set the account's subscription status directly."""
    acct = uuid.UUID(str(account_id))
    sub = (await db.execute(select(Subscription).where(Subscription.account_id == acct))).scalar_one()
    sub.status, sub.plan = status, plan
    await db.commit()


async def make_user(client: AsyncClient, db: AsyncSession, *, role: str = "owner",
                    subscription: str | None = "active") -> dict[str, Any]:
    """A fresh account whose only user has `role`; returns {user, headers, account_id, email}."""
    email = unique_email(role)
    user = await register(client, email=email)
    if role != "owner":
        await set_role(db, user["id"], role)
    if subscription is not None:
        await set_subscription(db, user["account_id"], subscription)
    headers = await login(client, email=email)
    return {"user": user, "headers": headers, "account_id": user["account_id"], "email": email}


async def add_member(client: AsyncClient, admin_headers: dict[str, str], *, role: str) -> dict[str, Any]:
    """Add a user with `role` to the admin's account through the API; returns {user, headers}."""
    email = unique_email(role)
    resp = await client.post("/api/v1/account/users", headers=admin_headers,
                             json={"email": email, "name": f"{role} user", "password": PASSWORD,
                                   "account_role": role})
    assert resp.status_code == 201, resp.text
    return {"user": resp.json(), "headers": await login(client, email=email)}


async def sent_until_served(call: Callable[[], Awaitable[Response]], retried: list[int] | None = None,
                            seconds: float = 60) -> Response:
    """`call()` (a request carrying an Idempotency-Key), sent again with that key while the API answers 429 or
    503, as their details ask; each retried status is appended to `retried`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        answer = await call()
        if answer.status_code not in (429, 503) or loop.time() > deadline:
            return answer
        if retried is not None:
            retried.append(answer.status_code)
        if answer.status_code == 429:
            assert answer.headers["Retry-After"].isdigit(), answer.headers
        await asyncio.sleep(0.3)
