"""Helpers shared by the L1 tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import L1WalkSession
from services.walks import WalkRef
from tests.helpers import add_member, make_user

PRINTER_TREE: dict[str, Any] = {
    "root": "power",
    "nodes": {
        "power": {"question": "Is the printer's power light on?", "options": [
            {"label": "Yes", "next": "paper"},
            {"label": "No", "resolution": "Plug it in and switch it on at the back."},
        ]},
        "paper": {"question": "Is there paper in the tray?", "options": [
            {"label": "Yes", "resolution": "Clear the print queue and power-cycle the printer."},
            {"label": "No", "resolution": "Load paper."},
        ]},
    },
}


async def l1_tech(client: AsyncClient, db: AsyncSession, *, subscription: str | None = "active") -> dict[str, Any]:
    """A fresh account whose only user is an l1_tech (the seed's `_make_l1_user`)."""
    return await make_user(client, db, role="l1_tech", subscription=subscription)


async def team(client: AsyncClient, db: AsyncSession) -> dict[str, Any]:
    """An account with an owner (admin+), an l1 tech and an engineer."""
    owner = await make_user(client, db, role="owner")
    tech = await add_member(client, owner["headers"], role="l1_tech")
    engineer = await add_member(client, owner["headers"], role="engineer")
    return {"owner": owner, "tech": tech, "engineer": engineer, "account_id": owner["account_id"]}


async def intake(client: AsyncClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    """POST /l1/intake and return the 200 body."""
    resp = await client.post("/api/v1/l1/intake", json=body, headers=headers)
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


async def adhoc_session(client: AsyncClient, headers: dict[str, str], problem: str = "setup") -> str:
    """An adhoc walk session created through intake (the seed's `_create_adhoc_session`)."""
    body = await intake(client, headers, problem_statement=problem, adhoc=True)
    assert body["outcome"] == "adhoc" and body["session_kind"] == "adhoc", body
    return str(body["session_id"])


async def create_flow(client: AsyncClient, admin_headers: dict[str, str], **overrides: Any) -> dict[str, Any]:
    """POST /l1/flows (the printer tree unless overridden)."""
    body = {"title": "Printer not printing", "category": "printing", "keywords": ["printer", "toner"],
            "tree": PRINTER_TREE, **overrides}
    resp = await client.post("/api/v1/l1/flows", json=body, headers=admin_headers)
    assert resp.status_code == 201, resp.text
    data: dict[str, Any] = resp.json()
    return data


def is_uuid(value: str) -> bool:
    """True for a canonical uuid string."""
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


async def insert_walk(db: AsyncSession, *, account_id: uuid.UUID, user_id: uuid.UUID, session_kind: str = "adhoc",
                      flow_id: uuid.UUID | None = None, problem_text: str = "", ticket_id: uuid.UUID | None = None,
                      **times: Any) -> L1WalkSession:
    """A session row written directly, as the seeds do (its workflow starts on the first command)."""
    now = datetime.now(UTC)
    row = L1WalkSession(
        id=uuid.uuid4(), account_id=account_id, created_by_user_id=user_id, ticket_id=str(ticket_id or uuid.uuid4()),
        ticket_kind="internal", session_kind=session_kind, status="active", flow_id=flow_id,
        problem_text=problem_text, walked_path=[], depth=0, note_count=0,
        started_at=times.get("started_at", now), last_step_at=times.get("last_step_at", now),
    )
    db.add(row)
    await db.commit()
    return row


def walk_ref(row: L1WalkSession) -> WalkRef:
    """What a command needs of a row."""
    return WalkRef(id=row.id, account_id=row.account_id, status=row.status, session_kind=row.session_kind,
                   category=row.category)
