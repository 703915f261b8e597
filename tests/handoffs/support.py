"""Helpers for handoff tests: a desk of users in one account, sessions, handoffs and claims over HTTP."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from httpx import AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession

from tests.helpers import add_member, make_user

API = "/api/v1/ai-sessions"
SUMMARY = "VPN won't connect after Win update"


@dataclass
class Member:
    """A user of the desk: id, email and auth headers."""

    id: str
    email: str
    headers: dict[str, str]


@dataclass
class HandoffDesk:
    """One account: the owner, the escalating engineer, a senior engineer, an admin, a viewer and an L1 tech."""

    account_id: str
    owner: Member
    engineer: Member
    senior: Member
    admin: Member
    viewer: Member
    l1: Member


async def _member(client: AsyncClient, owner_headers: dict[str, str], role: str) -> Member:
    made = await add_member(client, owner_headers, role=role)
    return Member(id=made["user"]["id"], email=made["user"]["email"], headers=made["headers"])


async def make_handoff_desk(client: AsyncClient, db: AsyncSession) -> HandoffDesk:
    """A paying account with one user of every role."""
    owner = await make_user(client, db, role="owner")
    owner_member = Member(id=owner["user"]["id"], email=owner["email"], headers=owner["headers"])
    members = [await _member(client, owner["headers"], role)
               for role in ("engineer", "engineer", "admin", "viewer", "l1_tech")]
    return HandoffDesk(owner["account_id"], owner_member, *members)


async def open_session(client: AsyncClient, headers: dict[str, str], text: str = SUMMARY) -> dict[str, Any]:
    """POST /ai-sessions (free text); the 201 body."""
    resp = await client.post(API, headers=headers, json={"session_type": "chat", "intake_type": "free_text",
                                                         "intake_content": {"text": text}})
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def hand_off(client: AsyncClient, headers: dict[str, str], session_id: str, intent: str = "escalate",
                   notes: str = "Stuck on the auth handshake", **extra: Any) -> Response:
    """POST .../handoff."""
    return await client.post(f"{API}/{session_id}/handoff", headers=headers,
                             json={"intent": intent, "engineer_notes": notes, **extra})


async def escalated(client: AsyncClient, headers: dict[str, str], text: str = SUMMARY,
                    **extra: Any) -> tuple[str, dict[str, Any]]:
    """A new session, escalated: (session id, handoff)."""
    session = await open_session(client, headers, text)
    resp = await hand_off(client, headers, session["id"], **extra)
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return session["id"], body


async def claim(client: AsyncClient, headers: dict[str, str], session_id: str, handoff_id: str) -> Response:
    """POST .../handoffs/{id}/claim."""
    return await client.post(f"{API}/{session_id}/handoffs/{handoff_id}/claim", headers=headers)


async def handoffs_of(client: AsyncClient, headers: dict[str, str], session_id: str) -> list[dict[str, Any]]:
    """GET .../handoffs."""
    resp = await client.get(f"{API}/{session_id}/handoffs", headers=headers)
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["items"]
    return items


async def wait_for_assessment(client: AsyncClient, headers: dict[str, str], session_id: str,
                              seconds: float = 20) -> dict[str, Any]:
    """The session's latest handoff once its assessment is no longer pending."""
    async with asyncio.timeout(seconds):
        while True:
            latest = (await handoffs_of(client, headers, session_id))[-1]
            if latest["assessment_status"] != "pending":
                return latest
            await asyncio.sleep(0.1)


async def notifications(client: AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    """GET /notifications items."""
    resp = await client.get("/api/v1/notifications", headers=headers)
    assert resp.status_code == 200, resp.text
    items: list[dict[str, Any]] = resp.json()["items"]
    return items
