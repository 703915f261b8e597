"""The seed's /l1/* endpoint cases (seeds/000), as HTTP tests against our stack.

Where the seed patches the matcher or inserts through its services, we go through the real
intake (offline LLM provider, real workflows) or our repositories.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from tests.helpers import make_user
from tests.l1.support import adhoc_session, insert_walk, intake, is_uuid, l1_tech


async def test_intake_build_creates_ai_build_session(client: AsyncClient, db: AsyncSession) -> None:
    info = await l1_tech(client, db)
    body = await intake(client, info["headers"], problem_statement="Printer won't turn on", customer_name="Alice")
    assert body["outcome"] == "build"
    assert body["session_kind"] == "ai_build"
    assert body["ticket_kind"] == "internal"
    assert body["session_id"] and body["ticket_id"]
    assert body["category"] == "printing"
    first = body["pending_node"]
    assert first["kind"] == "question" and first["question"] and is_uuid(first["id"])


async def test_intake_no_auth(client: AsyncClient) -> None:
    resp = await client.post("/api/v1/l1/intake", json={"problem_statement": "Test"})
    assert resp.status_code == 401


async def test_intake_viewer_forbidden(client: AsyncClient, db: AsyncSession) -> None:
    viewer = await make_user(client, db, role="viewer")
    resp = await client.post("/api/v1/l1/intake", json={"problem_statement": "Test"}, headers=viewer["headers"])
    assert resp.status_code == 403


async def test_step_on_adhoc_returns_400(client: AsyncClient, db: AsyncSession) -> None:
    info = await l1_tech(client, db)
    session_id = await adhoc_session(client, info["headers"], problem="Adhoc issue")
    resp = await client.post(f"/api/v1/l1/sessions/{session_id}/step",
                             json={"node_id": "node1", "question": "Q?", "answer": "A"}, headers=info["headers"])
    assert resp.status_code == 400
    assert "adhoc" in resp.json()["detail"]


async def test_notes_on_adhoc_session(client: AsyncClient, db: AsyncSession) -> None:
    info = await l1_tech(client, db)
    session_id = await adhoc_session(client, info["headers"], problem="Notes test")
    notes_payload = [{"text": "Customer called about printer", "ts": "2026-05-28T10:00:00Z"}]
    resp = await client.post(f"/api/v1/l1/sessions/{session_id}/notes", json={"notes": notes_payload},
                             headers=info["headers"])
    assert resp.status_code == 200, resp.text
    assert resp.json()["walk_notes"] == notes_payload
    got = await client.get(f"/api/v1/l1/sessions/{session_id}", headers=info["headers"])
    assert got.json()["walk_notes"] == notes_payload


async def test_resolve_session(client: AsyncClient, db: AsyncSession) -> None:
    info = await l1_tech(client, db)
    session_id = await adhoc_session(client, info["headers"], problem="Resolve test")
    resp = await client.post(f"/api/v1/l1/sessions/{session_id}/resolve",
                             json={"helpful": True, "resolution_notes": "Restarted the printer."},
                             headers=info["headers"])
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "resolved"
    resp = await client.get(f"/api/v1/l1/sessions/{session_id}", headers=info["headers"])
    assert resp.status_code == 200
    assert resp.json()["status"] == "resolved"
    assert resp.json()["helpful"] is True


async def test_escalate_session(client: AsyncClient, db: AsyncSession) -> None:
    info = await l1_tech(client, db)
    session_id = await adhoc_session(client, info["headers"], problem="Escalation test")
    resp = await client.post(f"/api/v1/l1/sessions/{session_id}/escalate",
                             json={"reason_category": "needs_l2", "reason": "Beyond L1 scope"},
                             headers=info["headers"])
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "escalated"
    got = (await client.get(f"/api/v1/l1/sessions/{session_id}", headers=info["headers"])).json()
    assert got["status"] == "escalated" and got["escalation_reason_category"] == "needs_l2"


async def test_escalate_without_walk(client: AsyncClient, db: AsyncSession) -> None:
    info = await l1_tech(client, db)
    resp = await client.post(
        "/api/v1/l1/escalate-without-walk",
        json={"problem_statement": "No KB available", "reason_category": "no_kb",
              "reason": "No knowledge base content matched"},
        headers=info["headers"],
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["status"] == "escalated"
    assert body["session_kind"] == "adhoc"
    got = (await client.get(f"/api/v1/l1/sessions/{body['session_id']}", headers=info["headers"])).json()
    assert got["status"] == "escalated" and got["problem_text"] == "No KB available"


async def test_list_active_sessions_ordered(client: AsyncClient, db: AsyncSession) -> None:
    info = await l1_tech(client, db)
    account_id, user_id = uuid.UUID(info["account_id"]), uuid.UUID(info["user"]["id"])
    now = datetime.now(UTC)
    s1 = await insert_walk(db, account_id=account_id, user_id=user_id, started_at=now - timedelta(minutes=10),
                           last_step_at=now - timedelta(minutes=5))
    s2 = await insert_walk(db, account_id=account_id, user_id=user_id, started_at=now - timedelta(minutes=20),
                           last_step_at=now - timedelta(minutes=1))
    resp = await client.get("/api/v1/l1/sessions/active", headers=info["headers"])
    assert resp.status_code == 200, resp.text
    ids = [b["id"] for b in resp.json()]
    assert ids.index(str(s2.id)) < ids.index(str(s1.id))


async def test_get_session_cross_account_returns_404(client: AsyncClient, db: AsyncSession) -> None:
    info_a = await l1_tech(client, db)
    session_id = await adhoc_session(client, info_a["headers"], problem="Account A issue")
    info_b = await l1_tech(client, db)
    resp = await client.get(f"/api/v1/l1/sessions/{session_id}", headers=info_b["headers"])
    assert resp.status_code == 404
    resp = await client.post(f"/api/v1/l1/sessions/{session_id}/notes", headers=info_b["headers"],
                             json={"notes": [{"text": "x", "ts": "2026-05-28T10:00:00Z"}]})
    assert resp.status_code == 404
