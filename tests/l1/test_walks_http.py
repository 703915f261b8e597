"""Walking authored flows and AI-built trees end to end over HTTP (offline LLM provider, real workflows)."""

from __future__ import annotations

import asyncio
import uuid

from httpx import AsyncClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import InternalTicket, LlmUsage
from tests.l1.support import create_flow, intake, is_uuid, team

API = "/api/v1/l1"


async def test_authored_flow_walk_end_to_end(client: AsyncClient, db: AsyncSession) -> None:
    t = await team(client, db)
    flow = await create_flow(client, t["owner"]["headers"])
    tech = t["tech"]["headers"]
    body = await intake(client, tech, problem_statement="It will not print", flow_id=flow["id"])
    assert (body["outcome"], body["session_kind"], body["category"]) == ("match", "flow", "printing")
    sid, first = body["session_id"], body["pending_node"]
    assert first == {"id": "power", "kind": "question", "question": "Is the printer's power light on?",
                     "options": ["Yes", "No"], "resolution": None, "escalate": False}

    wrong = await client.post(f"{API}/sessions/{sid}/step", headers=tech,
                              json={"node_id": "paper", "question": "?", "answer": "Yes"})
    assert wrong.status_code == 409 and "pending node" in wrong.json()["detail"]
    bad = await client.post(f"{API}/sessions/{sid}/step", headers=tech,
                            json={"node_id": "power", "question": "?", "answer": "Maybe"})
    assert bad.status_code == 400 and "Yes, No" in bad.json()["detail"]

    one = await client.post(f"{API}/sessions/{sid}/step", headers=tech,
                            json={"node_id": "power", "question": "Is the printer's power light on?", "answer": "yes"})
    assert one.status_code == 200, one.text
    assert one.json()["next_node"]["id"] == "paper" and one.json()["resolution"] is None
    got = (await client.get(f"{API}/sessions/{sid}", headers=tech)).json()
    assert got["walked_path"] == [{"node_id": "power", "question": "Is the printer's power light on?",
                                   "answer": "yes"}]
    assert got["pending_node"]["id"] == "paper" and got["depth"] == 1

    two = await client.post(f"{API}/sessions/{sid}/step", headers=tech,
                            json={"node_id": "paper", "question": "Is there paper in the tray?", "answer": "No"})
    assert two.status_code == 200, two.text
    assert two.json()["next_node"] is None
    assert two.json()["resolution"]["resolution"] == "Load paper."
    again = await client.post(f"{API}/sessions/{sid}/step", headers=tech,
                              json={"node_id": "paper", "question": "?", "answer": "No"})
    assert again.status_code == 409

    done = await client.post(f"{API}/sessions/{sid}/resolve", headers=tech,
                             json={"helpful": True, "resolution_notes": "Paper loaded"})
    assert done.status_code == 200 and done.json()["session"]["status"] == "resolved"
    for path, payload in (("step", {"node_id": "paper", "answer": "No"}), ("resolve", {"helpful": True}),
                          ("escalate", {"reason_category": "x"})):
        late = await client.post(f"{API}/sessions/{sid}/{path}", headers=tech, json=payload)
        assert late.status_code == 409, (path, late.text)
    ticket = await db.get(InternalTicket, uuid.UUID(body["ticket_id"]))
    assert ticket is not None and ticket.status == "resolved"


async def test_intake_matches_authored_flow_by_keywords(client: AsyncClient, db: AsyncSession) -> None:
    t = await team(client, db)
    flow = await create_flow(client, t["owner"]["headers"])
    body = await intake(client, t["tech"]["headers"], problem_statement="The printer says toner low and stops")
    assert body["outcome"] == "match" and body["session_kind"] == "flow"
    assert body["pending_node"]["id"] == "power"
    got = (await client.get(f"{API}/sessions/{body['session_id']}", headers=t["tech"]["headers"])).json()
    assert got["flow_id"] == flow["id"]


async def test_ai_built_walk_replays_pending_node_and_learns_a_flow(client: AsyncClient, db: AsyncSession) -> None:
    t = await team(client, db)
    tech, admin = t["tech"]["headers"], t["owner"]["headers"]
    problem = "Outlook keeps asking for the password on the laptop"
    body = await intake(client, tech, problem_statement=problem)
    assert body["outcome"] == "build" and body["session_kind"] == "ai_build"
    sid, node = body["session_id"], body["pending_node"]

    async def llm_calls() -> int:
        return int(await db.scalar(select(func.count()).select_from(LlmUsage).where(
            LlmUsage.operation.like("%walk%"))) or 0)

    calls = await llm_calls()
    assert calls == 1
    for _ in range(2):  # re-opening replays the stored node: same id, no second model call
        got = (await client.get(f"{API}/sessions/{sid}", headers=tech)).json()
        assert got["pending_node"] == node
    assert await llm_calls() == calls

    seen_ids = set()
    resolution = None
    for _ in range(20):
        assert node["kind"] == "question" and is_uuid(node["id"]) and node["id"] not in seen_ids
        seen_ids.add(node["id"])
        answer = node["options"][0] if node["options"] else "not sure"
        resp = await client.post(f"{API}/sessions/{sid}/step", headers=tech,
                                 json={"node_id": node["id"], "question": node["question"], "answer": answer})
        assert resp.status_code == 200, resp.text
        if resp.json()["resolution"] is not None:
            resolution = resp.json()["resolution"]
            break
        node = resp.json()["next_node"]
    assert resolution is not None and resolution["kind"] == "resolution" and is_uuid(resolution["id"])

    done = await client.post(f"{API}/sessions/{sid}/resolve", headers=tech,
                             json={"helpful": True, "resolution_notes": "Re-entered the password"})
    assert done.status_code == 200, done.text
    proposal_id = done.json()["proposal_id"]
    assert proposal_id
    proposals = (await client.get("/api/v1/flow-proposals", headers=admin)).json()
    assert [p["id"] for p in proposals] == [proposal_id]
    proposal = proposals[0]
    assert proposal["validated_by_outcome"] is True and proposal["status"] == "pending"
    assert proposal["l1_session_id"] == sid
    assert len(proposal["tree"]["nodes"]) == len(seen_ids)

    assert (await client.get("/api/v1/flow-proposals", headers=tech)).status_code == 403
    review = await client.post(f"/api/v1/flow-proposals/{proposal_id}/review", headers=admin,
                               json={"action": "approve"})
    assert review.status_code == 200, review.text
    assert review.json()["proposal"]["status"] == "approved"
    new_flow = review.json()["flow"]
    assert new_flow["source"] == "proposal" and review.json()["proposal"]["flow_id"] == new_flow["id"]
    twice = await client.post(f"/api/v1/flow-proposals/{proposal_id}/review", headers=admin,
                              json={"action": "reject"})
    assert twice.status_code == 409

    # The flywheel: the same problem now matches the learned flow.
    again = await intake(client, tech, problem_statement=problem)
    assert again["outcome"] == "match" and again["session_kind"] == "flow"
    got = (await client.get(f"{API}/sessions/{again['session_id']}", headers=tech)).json()
    assert got["flow_id"] == new_flow["id"]


async def test_rejected_proposal_and_unhelpful_walks(client: AsyncClient, db: AsyncSession) -> None:
    t = await team(client, db)
    tech, admin = t["tech"]["headers"], t["owner"]["headers"]
    sids = []
    for _ in range(2):
        body = await intake(client, tech, problem_statement="Wi-Fi drops every few minutes in the office")
        node = body["pending_node"]
        step = await client.post(f"{API}/sessions/{body['session_id']}/step", headers=tech,
                                 json={"node_id": node["id"], "answer": (node["options"] or ["no"])[0]})
        assert step.status_code == 200, step.text
        sids.append(body["session_id"])
    unhelpful = await client.post(f"{API}/sessions/{sids[0]}/resolve", headers=tech, json={"helpful": False})
    assert unhelpful.json()["proposal_id"] is None
    helpful = await client.post(f"{API}/sessions/{sids[1]}/resolve", headers=tech, json={"helpful": True})
    pid = helpful.json()["proposal_id"]
    rejected = await client.post(f"/api/v1/flow-proposals/{pid}/review", headers=admin, json={"action": "reject"})
    assert rejected.status_code == 200 and rejected.json()["flow"] is None
    assert rejected.json()["proposal"]["status"] == "rejected"
    pending = await client.get("/api/v1/flow-proposals?status=pending", headers=admin)
    assert pending.json() == []
    other = await team(client, db)
    cross = await client.post(f"/api/v1/flow-proposals/{pid}/review", headers=other["owner"]["headers"],
                              json={"action": "approve"})
    assert cross.status_code == 404


async def test_idempotency_key_makes_a_retried_step_apply_once(client: AsyncClient, db: AsyncSession) -> None:
    t = await team(client, db)
    flow = await create_flow(client, t["owner"]["headers"])
    tech = t["tech"]["headers"]
    sid = (await intake(client, tech, problem_statement="printing", flow_id=flow["id"]))["session_id"]
    headers = {**tech, "Idempotency-Key": "step-1-abc"}
    payload = {"node_id": "power", "question": "Is the printer's power light on?", "answer": "Yes"}
    first = await client.post(f"{API}/sessions/{sid}/step", headers=headers, json=payload)
    retry = await client.post(f"{API}/sessions/{sid}/step", headers=headers, json=payload)
    assert first.status_code == retry.status_code == 200
    assert retry.json() == first.json()
    got = (await client.get(f"{API}/sessions/{sid}", headers=tech)).json()
    assert len(got["walked_path"]) == 1 and got["pending_node"]["id"] == "paper"
    # Without a key the same request is refused rather than applied twice.
    plain = await client.post(f"{API}/sessions/{sid}/step", headers=tech, json=payload)
    assert plain.status_code == 409
    # Keys are plain tokens (a UUID is ideal); anything else is named in a 422, nothing applied.
    odd = await client.post(f"{API}/sessions/{sid}/step", headers={**tech, "Idempotency-Key": "key %d/x"},
                            json={"node_id": "paper", "answer": "Yes"})
    assert odd.status_code == 422 and "Idempotency-Key" in odd.text
    got = (await client.get(f"{API}/sessions/{sid}", headers=tech)).json()
    assert len(got["walked_path"]) == 1


async def test_racing_double_submit_advances_once(client: AsyncClient, db: AsyncSession) -> None:
    t = await team(client, db)
    flow = await create_flow(client, t["owner"]["headers"])
    tech = t["tech"]["headers"]
    sid = (await intake(client, tech, problem_statement="printing", flow_id=flow["id"]))["session_id"]
    payload = {"node_id": "power", "answer": "Yes"}
    both = await asyncio.gather(*(client.post(f"{API}/sessions/{sid}/step", headers=tech, json=payload)
                                  for _ in range(2)))
    assert sorted(r.status_code for r in both) == [200, 409]
    got = (await client.get(f"{API}/sessions/{sid}", headers=tech)).json()
    assert len(got["walked_path"]) == 1
