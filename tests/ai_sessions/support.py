"""Helpers for AI-session HTTP tests: open a session, record a fix, read the session's version."""

from __future__ import annotations

import uuid
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import AiSession

API = "/api/v1/ai-sessions"


async def open_session(client: AsyncClient, headers: dict[str, str], text: str = "outcome test",
                       session_type: str = "chat") -> dict[str, Any]:
    """POST /ai-sessions; the 201 body."""
    resp = await client.post(API, headers=headers, json={"session_type": session_type, "intake_type": "free_text",
                                                         "intake_content": {"text": text}})
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def add_fix(client: AsyncClient, headers: dict[str, str], session_id: str, *,
                  title: str = "Reset credential cache",
                  description: str = "Clear stale credentials from the domain cache.",
                  confidence_pct: int = 82) -> dict[str, Any]:
    """POST .../suggested-fixes (an engineer's own fix); the 201 body."""
    resp = await client.post(f"{API}/{session_id}/suggested-fixes", headers=headers,
                             json={"title": title, "description": description, "confidence_pct": confidence_pct})
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def session_with_fix(client: AsyncClient, headers: dict[str, str]) -> tuple[str, str]:
    """The seed's `_make_session_with_fix`, over HTTP: (session id, active proposed fix id)."""
    session = await open_session(client, headers)
    fix = await add_fix(client, headers, session["id"])
    return session["id"], fix["id"]


async def state_version(db: AsyncSession, session_id: str) -> int:
    """`ai_sessions.state_version` as stored."""
    version = await db.scalar(select(AiSession.state_version).where(AiSession.id == uuid.UUID(session_id))
                              .execution_options(populate_existing=True))
    assert version is not None
    return int(version)


def outcome_url(session_id: str, fix_id: str) -> str:
    """PATCH target of a fix's outcome."""
    return f"{API}/{session_id}/suggested-fixes/{fix_id}/outcome"
