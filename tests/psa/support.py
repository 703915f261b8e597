"""Helpers for write-back tests: connect the simulator, open a session on its ticket, post documents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from httpx import AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession

from tests.helpers import add_member, make_user
from tests.psa.cw_simulator import SimulatorHandle

API = "/api/v1/ai-sessions"
CONNECTIONS = "/api/v1/psa/connections"
TICKET = 48291
NEW, IN_PROGRESS, RESOLVED, ESCALATED = 16, 17, 42, 57
RESOLUTION = {"markdown": "## Problem\nx\n\n## Resolution\nfixed"}
PACKAGE = {"markdown": "## Problem\nx\n\n## Suggested next steps\n- try X"}


@dataclass
class Desk:
    """An account with an admin (who connected the simulator) and an engineer."""

    admin: dict[str, str]
    engineer: dict[str, str]
    engineer_id: str
    account_id: str
    connection_id: str
    sim: SimulatorHandle


def connection_body(sim: SimulatorHandle, **overrides: Any) -> dict[str, Any]:
    """The POST /psa/connections body for the simulator (fields overridable, e.g. a wrong private_key)."""
    c = sim.credentials
    return {"provider": "connectwise", "site_url": sim.url, "company_id": c.company_id,
            "public_key": c.public_key, "private_key": c.private_key, "client_id": c.client_id, **overrides}


async def connect(client: AsyncClient, headers: dict[str, str], sim: SimulatorHandle,
                  **overrides: Any) -> Response:
    """POST /psa/connections for the simulator."""
    return await client.post(CONNECTIONS, headers=headers, json=connection_body(sim, **overrides))


async def make_desk(client: AsyncClient, db: AsyncSession, sim: SimulatorHandle, **connection: Any) -> Desk:
    """A paying account connected to the simulator."""
    owner = await make_user(client, db, role="owner")
    engineer = await add_member(client, owner["headers"], role="engineer")
    resp = await connect(client, owner["headers"], sim, **connection)
    assert resp.status_code == 201, resp.text
    return Desk(admin=owner["headers"], engineer=engineer["headers"], engineer_id=engineer["user"]["id"],
                account_id=owner["account_id"], connection_id=resp.json()["id"], sim=sim)


async def set_preferences(client: AsyncClient, desk: Desk, **prefs: Any) -> None:
    """PUT /account/settings as the admin."""
    resp = await client.put("/api/v1/account/settings", headers=desk.admin, json=prefs)
    assert resp.status_code == 200, resp.text


async def ticket_session(client: AsyncClient, desk: Desk, *, intake_type: str = "psa_ticket",
                         ticket: int | str = TICKET) -> dict[str, Any]:
    """Open a session linked to the simulator's ticket (psa_ticket intake reads its summary)."""
    body: dict[str, Any] = {"session_type": "chat", "intake_type": intake_type,
                            "psa_connection_id": desk.connection_id, "psa_ticket_id": str(ticket)}
    if intake_type == "free_text":
        body["intake_content"] = {"text": "phase 4 test"}
    resp = await client.post(API, headers=desk.engineer, json=body)
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


async def post(client: AsyncClient, desk: Desk, session_id: str, kind: str = "resolution-note",
               body: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> Response:
    """POST .../resolution-note/post or .../escalation-package/post as the engineer."""
    payload = body or (RESOLUTION if kind == "resolution-note" else PACKAGE)
    return await client.post(f"{API}/{session_id}/{kind}/post", headers=headers or desk.engineer, json=payload,
                             timeout=120)


async def writebacks(client: AsyncClient, desk: Desk, session_id: str) -> list[dict[str, Any]]:
    """GET .../writebacks as the engineer."""
    resp = await client.get(f"{API}/{session_id}/writebacks", headers=desk.engineer)
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["items"]
    return items


def note_posts(sim: SimulatorHandle) -> int:
    """How many note POSTs the simulator received (answered or not)."""
    return len(sim.state.requests_to("POST service/tickets/{id}/notes"))
