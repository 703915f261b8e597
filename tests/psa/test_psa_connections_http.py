"""PSA connections over HTTP (admin+): keys stored encrypted and never returned, test, board statuses,
roles, tenancy and bad input."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
from httpx import AsyncClient
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from core.errors import RuleViolation
from db.models import PsaConnection
from services.psa_connections import PsaConnections
from tests.helpers import add_member, make_user
from tests.psa.cw_simulator import SimulatorHandle
from tests.psa.support import CONNECTIONS, connect, connection_body
from tests.stack import free_port


@pytest.fixture
async def admin(client: AsyncClient, db: AsyncSession) -> dict[str, str]:
    user = await make_user(client, db, role="admin")
    h: dict[str, str] = user["headers"]
    return h


async def test_keys_are_stored_encrypted_and_never_returned_or_logged(
    client: AsyncClient, db: AsyncSession, admin: dict[str, str], cw_sim: SimulatorHandle,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    resp = await connect(client, admin, cw_sim)
    assert resp.status_code == 201, resp.text
    created = resp.json()
    private, public = cw_sim.credentials.private_key, cw_sim.credentials.public_key
    assert private not in resp.text and public not in resp.text
    assert created["site_url"] == cw_sim.url and created["provider"] == "connectwise"
    listed = await client.get(CONNECTIONS, headers=admin)
    assert listed.status_code == 200 and listed.json()["total"] == 1
    assert private not in listed.text
    row = await db.scalar(select(PsaConnection).where(PsaConnection.id == uuid.UUID(created["id"])))
    assert row is not None and private.encode() not in row.credentials_encrypted
    tested = await client.post(f"{CONNECTIONS}/{created['id']}/test", headers=admin)
    assert tested.status_code == 200, tested.text
    assert tested.json() == {"ok": True, "stage": "ok", "detail": tested.json()["detail"]}
    assert private not in caplog.text


async def test_the_test_says_whether_reachability_or_authentication_failed(
    client: AsyncClient, admin: dict[str, str], cw_sim: SimulatorHandle,
) -> None:
    wrong = await connect(client, admin, cw_sim, private_key="wrong-private-key")
    tested = await client.post(f"{CONNECTIONS}/{wrong.json()['id']}/test", headers=admin)
    assert tested.status_code == 200, tested.text
    body = tested.json()
    assert body["ok"] is False and body["stage"] == "authentication"
    assert "authentication failed" in body["detail"].lower() and "wrong-private-key" not in body["detail"]
    nowhere = await connect(client, admin, cw_sim, site_url=f"http://127.0.0.1:{free_port()}")
    tested = await client.post(f"{CONNECTIONS}/{nowhere.json()['id']}/test", headers=admin)
    assert tested.json()["ok"] is False and tested.json()["stage"] == "reachability"


async def test_a_connectwise_refusal_in_the_test_says_the_site_answered_unexpectedly(
    client: AsyncClient, db: AsyncSession, admin: dict[str, str], cw_sim: SimulatorHandle,
) -> None:
    created = await connect(client, admin, cw_sim)
    # A stored connection CW answers with a 400 (no clientId): CW's own refusal, not one of our egress refusals.
    await db.execute(update(PsaConnection).where(PsaConnection.id == uuid.UUID(created.json()["id"]))
                     .values(client_id=""))
    await db.commit()
    tested = await client.post(f"{CONNECTIONS}/{created.json()['id']}/test", headers=admin)
    assert tested.status_code == 200, tested.text
    body = tested.json()
    assert body["ok"] is False and body["stage"] == "reachability"
    assert body["detail"].startswith(f"{cw_sim.url} answered unexpectedly: ") and "clientId" in body["detail"]


async def test_board_statuses_list_what_a_target_status_may_be(
    client: AsyncClient, admin: dict[str, str], cw_sim: SimulatorHandle,
) -> None:
    cid = (await connect(client, admin, cw_sim)).json()["id"]
    resp = await client.get(f"{CONNECTIONS}/{cid}/boards/1/statuses", headers=admin)
    assert resp.status_code == 200, resp.text
    names = {s["id"]: s["name"] for s in resp.json()["items"]}
    assert names[42] == "Resolved" and names[57] == "Escalated"
    missing = await client.get(f"{CONNECTIONS}/{cid}/boards/999/statuses", headers=admin)
    assert missing.status_code == 404 and "999" in missing.json()["detail"]
    assert (await client.get(f"{CONNECTIONS}/{cid}/boards/0/statuses", headers=admin)).status_code == 422
    # The same site and company (matched case-insensitively) is one connection: replace it with wrong keys.
    same = await connect(client, admin, cw_sim, company_id=cw_sim.credentials.company_id.upper())
    assert same.status_code == 409
    assert (await client.delete(f"{CONNECTIONS}/{cid}", headers=admin)).status_code == 204
    wrong = (await connect(client, admin, cw_sim, private_key="nope")).json()["id"]
    failed = await client.get(f"{CONNECTIONS}/{wrong}/boards/1/statuses", headers=admin)
    assert failed.status_code == 502 and "authentication failed" in failed.json()["detail"].lower()


async def test_roles_tenancy_duplicates_and_delete(client: AsyncClient, db: AsyncSession, admin: dict[str, str],
                                                   cw_sim: SimulatorHandle) -> None:
    cid = (await connect(client, admin, cw_sim)).json()["id"]
    again = await connect(client, admin, cw_sim)
    assert again.status_code == 409, again.text
    engineer = await add_member(client, admin, role="engineer")
    for call in [client.get(CONNECTIONS, headers=engineer["headers"]),
                 client.post(f"{CONNECTIONS}/{cid}/test", headers=engineer["headers"]),
                 connect(client, engineer["headers"], cw_sim)]:
        assert (await call).status_code == 403
    other = (await make_user(client, db, role="owner"))["headers"]
    for call in [client.post(f"{CONNECTIONS}/{cid}/test", headers=other),
                 client.get(f"{CONNECTIONS}/{cid}/boards/1/statuses", headers=other),
                 client.delete(f"{CONNECTIONS}/{cid}", headers=other)]:
        assert (await call).status_code == 404
    assert (await client.get(CONNECTIONS, headers=other)).json()["total"] == 0
    assert (await client.delete(f"{CONNECTIONS}/{cid}", headers=admin)).status_code == 204
    assert (await client.post(f"{CONNECTIONS}/{cid}/test", headers=admin)).status_code == 404
    assert (await client.delete(f"{CONNECTIONS}/{cid}", headers=admin)).status_code == 404
    assert (await connect(client, admin, cw_sim)).status_code == 201  # the site may be connected again


@pytest.mark.parametrize("override", [
    {"provider": "autotask"}, {"site_url": ""}, {"site_url": "na.myconnectwise.net/../x"},
    {"site_url": "ftp://host"}, {"company_id": "a b"}, {"private_key": "k\u00e9y"}, {"client_id": "\ud800"},
    {"private_key": "x" * 101}, {"codebase": "../"}, {"public_key": None},
])
async def test_bad_connection_bodies_are_422(client: AsyncClient, admin: dict[str, str], cw_sim: SimulatorHandle,
                                             override: dict[str, object]) -> None:
    body = connection_body(cw_sim, **override)
    # json.dumps escapes a lone surrogate as \ud800, as a hostile client would send it.
    resp = await client.post(CONNECTIONS, headers={**admin, "Content-Type": "application/json"},
                             content=json.dumps(body))
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"]


@pytest.mark.parametrize("site", ["http://na.myconnectwise.net", "127.0.0.1:8123", "https://10.1.2.3",
                                  "localhost", "https://[::1]"])
async def test_outside_dev_mode_only_public_https_sites_are_accepted(db: AsyncSession, settings: Settings,
                                                                     site: str) -> None:
    service = PsaConnections(db, settings.model_copy(update={"dev_mode": False}))
    with pytest.raises(RuleViolation):
        await service.create(account_id=uuid.uuid4(), user_id=uuid.uuid4(), provider="connectwise",
                             fields={"site_url": site, "company_id": "acme", "client_id": "c", "codebase": None},
                             secrets={"public_key": "p", "private_key": "k"})
