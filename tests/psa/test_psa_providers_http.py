"""Autotask and HaloPSA beside ConnectWise over HTTP: connections by provider, target statuses on the
connection, a ticket's statuses, and a write-back with time on each provider's simulator."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from tests.helpers import add_member, make_user
from tests.psa.at_simulator import AutotaskSimulatorHandle
from tests.psa.cw_simulator import SimulatorHandle
from tests.psa.halo_simulator import HaloSimulatorHandle
from tests.psa.support import CONNECTIONS, connection_body

SESSIONS = "/api/v1/ai-sessions"
TICKET = 48291


def autotask_body(sim: AutotaskSimulatorHandle, **overrides: Any) -> dict[str, Any]:
    """A connection that discovers the simulator's zone."""
    c = sim.credentials
    return {"provider": "autotask", "username": c.username, "secret": c.secret,
            "integration_code": c.integration_code, "discovery_url": sim.discovery_url, **overrides}


def halo_body(sim: HaloSimulatorHandle, **overrides: Any) -> dict[str, Any]:
    """A connection to the simulator's API (its auth server on the same host)."""
    c = sim.credentials
    body = {"provider": "halopsa", "api_url": sim.api_url, "client_id": c.client_id,
            "client_secret": c.client_secret, **overrides}
    return body | ({"tenant": c.tenant} if c.tenant else {})


async def desk(client: AsyncClient, db: AsyncSession,
               body: dict[str, Any]) -> tuple[dict[str, str], dict[str, str], str]:
    """(engineer headers, admin headers, connection id) of a paying account connected with `body`."""
    owner = await make_user(client, db, role="owner")
    engineer = await add_member(client, owner["headers"], role="engineer")
    resp = await client.post(CONNECTIONS, headers=owner["headers"], json=body)
    assert resp.status_code == 201, resp.text
    return engineer["headers"], owner["headers"], resp.json()["id"]


async def post_with_time(client: AsyncClient, engineer: dict[str, str], connection_id: str,
                         minutes: int) -> dict[str, Any]:
    """Open a session on the demo ticket and post its resolution note with `minutes` of time."""
    created = await client.post(SESSIONS, headers=engineer, json={
        "session_type": "chat", "intake_type": "psa_ticket", "psa_connection_id": connection_id,
        "psa_ticket_id": str(TICKET)})
    assert created.status_code == 201, created.text
    resp = await client.post(f"{SESSIONS}/{created.json()['id']}/resolution-note/post", headers=engineer,
                             json={"markdown": "Reset the Outlook profile; it connects again.",
                                   "time_minutes": minutes}, timeout=120)
    assert resp.status_code == 200, resp.text
    answer: dict[str, Any] = resp.json()
    return answer


async def test_autotask_connection_keeps_its_secrets_and_its_target_statuses(
    client: AsyncClient, db: AsyncSession, at_sim: AutotaskSimulatorHandle,
) -> None:
    _, admin, cid = await desk(client, db, autotask_body(at_sim, display_name="Acme Autotask"))
    listed = await client.get(CONNECTIONS, headers=admin)
    shown = listed.json()["items"][0]
    assert shown["provider"] == "autotask" and shown["username"] == at_sim.credentials.username
    assert shown["display_name"] == "Acme Autotask" and shown["discovery_url"] == at_sim.discovery_url
    for secret in (at_sim.credentials.secret, at_sim.credentials.integration_code):
        assert secret not in listed.text
    statuses = await client.get(f"{CONNECTIONS}/{cid}/tickets/{TICKET}/statuses", headers=admin)
    assert statuses.status_code == 200, statuses.text
    assert {"Complete", "New"} <= {s["name"] for s in statuses.json()["items"]}
    patched = await client.patch(f"{CONNECTIONS}/{cid}", headers=admin, json={"resolved_status_id": 5})
    assert patched.status_code == 200 and patched.json()["resolved_status_id"] == 5
    foreign = await client.patch(f"{CONNECTIONS}/{cid}", headers=admin, json={"private_key": "x"})
    assert foreign.status_code == 400 and "private_key" in foreign.json()["detail"]
    missing = await client.get(f"{CONNECTIONS}/{cid}/tickets/999999/statuses", headers=admin)
    assert missing.status_code == 404, missing.text
    other = await make_user(client, db, role="owner")
    assert (await client.patch(f"{CONNECTIONS}/{cid}", headers=other["headers"],
                               json={"display_name": "x"})).status_code == 404


async def test_an_unknown_provider_or_a_missing_field_is_a_422_that_names_it(
    client: AsyncClient, db: AsyncSession, halo_sim: HaloSimulatorHandle,
) -> None:
    admin = (await make_user(client, db, role="admin"))["headers"]
    unknown = await client.post(CONNECTIONS, headers=admin, json={"provider": "servicenow"})
    assert unknown.status_code == 422
    assert all(name in unknown.text for name in ("connectwise", "autotask", "halopsa"))
    no_secret = halo_body(halo_sim)
    del no_secret["client_secret"]
    missing = await client.post(CONNECTIONS, headers=admin, json=no_secret)
    assert missing.status_code == 422 and "client_secret" in missing.text
    bad_url = await client.post(CONNECTIONS, headers=admin, json=halo_body(halo_sim, api_url="https://h/api?x=1"))
    assert bad_url.status_code == 422 and "api_url" in bad_url.text


async def test_halopsa_posts_note_time_and_status_in_one_action_and_verifies_it(
    client: AsyncClient, db: AsyncSession, halo_sim: HaloSimulatorHandle,
) -> None:
    engineer, _, cid = await desk(client, db, halo_body(halo_sim, resolved_status_id=8))
    before = len(halo_sim.state.actions(TICKET))
    answer = await post_with_time(client, engineer, cid, 45)
    assert answer["outcome"] == "resolved" and answer["verified_status_id"] == 8
    actions = halo_sim.state.actions(TICKET)[before:]
    assert len(actions) == 1, actions  # note, time and status in one action; no separate status change
    assert actions[0]["timetaken"] == 0.75 and actions[0]["new_status"] == 8
    assert answer["time_entry_id"] == str(actions[0]["id"])


async def test_autotask_posts_the_note_once_logs_the_time_and_verifies_the_status(
    client: AsyncClient, db: AsyncSession, at_sim: AutotaskSimulatorHandle,
) -> None:
    engineer, _, cid = await desk(client, db, autotask_body(at_sim, resolved_status_id=5))
    answer = await post_with_time(client, engineer, cid, 30)
    assert answer["verified_status_id"] == 5 and answer["time_entry_id"] is not None
    assert len(at_sim.state.notes(TICKET)) == 1
    entries = [e for e in at_sim.state.time_entries if str(e.get("ticketID")) == str(TICKET)]
    assert len(entries) == 1 and entries[0]["hoursWorked"] == 0.5


async def test_connectwise_time_entry_is_the_note(
    client: AsyncClient, db: AsyncSession, cw_sim: SimulatorHandle,
) -> None:
    engineer, _, cid = await desk(client, db, connection_body(cw_sim, resolved_status_id=42))
    answer = await post_with_time(client, engineer, cid, 90)
    assert answer["verified_status_id"] == 42
    entries = cw_sim.state.time_entries(TICKET)
    assert len(entries) == 1 and entries[0]["addToResolutionFlag"] is True
    assert answer["time_entry_id"] == str(entries[0]["id"])
    assert cw_sim.state.requests_to("POST service/tickets/{id}/notes") == []  # never a second copy
