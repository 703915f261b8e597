"""Idempotency-Key on the account and catalogue commands (walk commands: tests/l1/test_idempotency_http.py)."""

from __future__ import annotations

import uuid

from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import L1Flow, User
from tests.helpers import PASSWORD, add_member, make_user, unique_email
from tests.l1.support import PRINTER_TREE
from tests.psa.cw_simulator import SimulatorHandle
from tests.psa.support import CONNECTIONS, connect


def keyed(headers: dict[str, str]) -> dict[str, str]:
    """`headers` plus a fresh Idempotency-Key."""
    return {**headers, "Idempotency-Key": f"k-{uuid.uuid4()}"}


async def test_a_retried_user_creation_replays_and_creates_one_user(client: AsyncClient, db: AsyncSession) -> None:
    owner = await make_user(client, db, role="owner")
    h = keyed(owner["headers"])
    body = {"email": unique_email("eng"), "name": "Eng", "password": PASSWORD, "account_role": "engineer"}
    first = await client.post("/api/v1/account/users", headers=h, json=body)
    second = await client.post("/api/v1/account/users", headers=h, json=body)
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json() == second.json() and second.headers["Idempotent-Replayed"] == "true"
    assert await db.scalar(select(func.count()).select_from(User).where(User.email == body["email"])) == 1
    changed = await client.post("/api/v1/account/users", headers=h, json={**body, "name": "Other"})
    assert changed.status_code == 422


async def test_a_retried_delete_replays_its_204(client: AsyncClient, db: AsyncSession) -> None:
    owner = await make_user(client, db, role="owner")
    created = await client.post("/api/v1/account/users", headers=owner["headers"], json={
        "email": unique_email("gone"), "name": "Gone", "password": PASSWORD, "account_role": "viewer"})
    h = keyed(owner["headers"])
    first = await client.delete(f"/api/v1/account/users/{created.json()['id']}", headers=h)
    second = await client.delete(f"/api/v1/account/users/{created.json()['id']}", headers=h)
    assert (first.status_code, second.status_code) == (204, 204) and second.content == b""


async def test_a_retried_flow_creation_makes_one_flow(client: AsyncClient, db: AsyncSession) -> None:
    owner = await make_user(client, db, role="owner")
    h = keyed(owner["headers"])
    body = {"title": "Printer", "category": "printing", "tree": PRINTER_TREE}
    answers = [await client.post("/api/v1/l1/flows", headers=h, json=body) for _ in range(2)]
    assert [a.status_code for a in answers] == [201, 201] and answers[0].json() == answers[1].json()
    count = await db.scalar(select(func.count()).select_from(L1Flow)
                            .where(L1Flow.account_id == uuid.UUID(owner["account_id"])))
    assert count == 1


async def test_a_refused_command_is_replayed_as_refused(client: AsyncClient, db: AsyncSession) -> None:
    owner = await make_user(client, db, role="owner")
    h = keyed(owner["headers"])
    me = owner["user"]["id"]
    first = await client.delete(f"/api/v1/account/users/{me}", headers=h)
    second = await client.delete(f"/api/v1/account/users/{me}", headers=h)
    assert (first.status_code, second.status_code) == (400, 400) and first.json() == second.json()


async def test_an_idempotency_key_must_be_a_plain_token(client: AsyncClient, db: AsyncSession) -> None:
    owner = await make_user(client, db, role="owner")
    for bad in ("has space", "x" * 201, "semi;colon", ""):
        resp = await client.post("/api/v1/l1/flows", headers={**owner["headers"], "Idempotency-Key": bad},
                                 json={"title": "t", "category": "printing", "tree": PRINTER_TREE})
        assert resp.status_code == 422, (bad, resp.text)


async def test_a_retried_psa_connection_delete_replays_its_204(client: AsyncClient, db: AsyncSession,
                                                               cw_sim: SimulatorHandle) -> None:
    owner = await make_user(client, db, role="owner")
    created = await connect(client, owner["headers"], cw_sim)
    assert created.status_code == 201, created.text
    h = keyed(owner["headers"])
    url = f"{CONNECTIONS}/{created.json()['id']}"
    first, second = await client.delete(url, headers=h), await client.delete(url, headers=h)
    assert (first.status_code, second.status_code) == (204, 204), second.text
    assert second.headers.get("Idempotent-Replayed") == "true" and second.content == b""
    assert (await client.delete(url, headers=keyed(owner["headers"]))).status_code == 404  # a new key: gone


async def test_another_users_key_is_never_replayed_to_them(client: AsyncClient, db: AsyncSession) -> None:
    owner = await make_user(client, db, role="owner")
    admin = await add_member(client, owner["headers"], role="admin")
    key = f"k-{uuid.uuid4()}"
    body = {"email": unique_email("twice"), "name": "Twice", "password": PASSWORD, "account_role": "engineer"}
    first = await client.post("/api/v1/account/users", headers={**owner["headers"], "Idempotency-Key": key},
                              json=body)
    assert first.status_code == 201, first.text
    # The admin happens to send the owner's key with the same body: they get their own answer (the email is
    # taken now), never the owner's stored 201.
    other = await client.post("/api/v1/account/users", headers={**admin["headers"], "Idempotency-Key": key},
                              json=body)
    assert other.status_code == 409, other.text
    assert "Idempotent-Replayed" not in other.headers
    # The owner's own retry still replays, and the admin's retry replays the admin's answer.
    again = await client.post("/api/v1/account/users", headers={**owner["headers"], "Idempotency-Key": key},
                              json=body)
    assert again.status_code == 201 and again.json() == first.json() and again.headers["Idempotent-Replayed"]
    other_again = await client.post("/api/v1/account/users", headers={**admin["headers"], "Idempotency-Key": key},
                                    json=body)
    assert other_again.status_code == 409 and other_again.headers["Idempotent-Replayed"] == "true"
