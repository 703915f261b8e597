"""Seeds 003 and 004 over HTTP: park, escalate, the queue, the race-safe claim, roles and tenancy."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from db.models import AiSession, EscalationEvent
from tests.handoffs.support import (
    API,
    SUMMARY,
    claim,
    escalated,
    hand_off,
    handoffs_of,
    make_handoff_desk,
    notifications,
    open_session,
    wait_for_assessment,
)
from tests.helpers import make_user


async def _session_row(db: AsyncSession, session_id: str) -> AiSession:
    row = await db.scalar(select(AiSession).where(AiSession.id == uuid.UUID(session_id))
                          .execution_options(populate_existing=True))
    assert row is not None
    return row


async def test_park_is_private_and_pauses_the_session(client: AsyncClient, db: AsyncSession) -> None:
    desk = await make_handoff_desk(client, db)
    session = await open_session(client, desk.engineer.headers)

    resp = await hand_off(client, desk.engineer.headers, session["id"], intent="park", notes="Waiting for logs")

    assert resp.status_code == 201, resp.text
    handoff = resp.json()
    assert handoff["intent"] == "park"
    assert handoff["engineer_notes"] == "Waiting for logs"
    assert handoff["snapshot"]["problem_summary"] == SUMMARY
    assert handoff["snapshot"]["recent_messages"][0]["content"] == SUMMARY
    row = await _session_row(db, session["id"])
    assert (row.status, row.handoff_count) == ("paused", 1)
    # Private: nobody is told, the live queue hears nothing, the queue does not list it.
    assert await db.scalar(select(EscalationEvent.id).limit(1)) is None
    for member in (desk.owner, desk.senior, desk.admin):
        assert await notifications(client, member.headers) == []
    queue = await client.get(f"{API}/queue", headers=desk.senior.headers)
    assert queue.json()["total"] == 0
    # A parked session takes no messages until someone picks it up again.
    blocked = await client.post(f"{API}/{session['id']}/messages", headers=desk.engineer.headers,
                                json={"content": "any news?"})
    assert blocked.status_code == 409


async def test_escalate_writes_the_package_and_the_assessment_lands(client: AsyncClient, db: AsyncSession) -> None:
    desk = await make_handoff_desk(client, db)
    session_id, handoff = await escalated(client, desk.engineer.headers, notes="Need senior help")

    assert handoff["intent"] == "escalate" and handoff["priority"] == "normal"
    assert handoff["claimed_by"] is None and handoff["created_by"] == desk.engineer.id
    row = await _session_row(db, session_id)
    assert (row.status, row.handoff_count) == ("escalated", 1)
    assert row.escalated_at is not None
    assert "Need senior help" in (row.escalation_package_markdown or "")
    assert SUMMARY in (row.escalation_package_markdown or "")
    landed = await wait_for_assessment(client, desk.engineer.headers, session_id)
    assert landed["assessment_status"] == "ready"
    assert landed["ai_assessment"]
    assert {"what_we_know", "likely_cause", "suggested_steps", "confidence"} <= set(landed["ai_assessment_data"])
    kinds = [e.kind for e in (await db.scalars(select(EscalationEvent).order_by(EscalationEvent.id))).all()]
    assert kinds == ["handoff_created", "handoff_assessment_ready"]
    session_out = (await client.get(f"{API}/{session_id}", headers=desk.engineer.headers)).json()
    assert session_out["status"] == "escalated" and session_out["handoff_count"] == 1


async def test_escalation_notifies_engineers_admins_and_owner_but_not_the_escalator(
    client: AsyncClient, db: AsyncSession
) -> None:
    desk = await make_handoff_desk(client, db)
    await escalated(client, desk.engineer.headers)

    async with asyncio.timeout(15):
        while len(await notifications(client, desk.owner.headers)) < 1:  # noqa: ASYNC110 - made by the workflow
            await asyncio.sleep(0.05)
    for member in (desk.owner, desk.senior, desk.admin):
        found = await notifications(client, member.headers)
        assert [n["kind"] for n in found] == ["handoff_escalated"]
        assert SUMMARY in found[0]["title"]
    for member in (desk.engineer, desk.viewer, desk.l1):
        assert await notifications(client, member.headers) == []


async def test_claim_reactivates_is_idempotent_and_refuses_a_second_senior(
    client: AsyncClient, db: AsyncSession
) -> None:
    desk = await make_handoff_desk(client, db)
    session_id, handoff = await escalated(client, desk.engineer.headers)

    first = await claim(client, desk.senior.headers, session_id, handoff["id"])
    assert first.status_code == 200, first.text
    won = first.json()
    assert won["claimed_by"] == desk.senior.id and won["claimed_at"] is not None
    assert (await _session_row(db, session_id)).status == "active"

    again = await claim(client, desk.senior.headers, session_id, handoff["id"])  # a double click
    assert again.status_code == 200
    assert again.json()["claimed_at"] == won["claimed_at"]

    lost = await claim(client, desk.admin.headers, session_id, handoff["id"])
    assert lost.status_code == 409
    detail = lost.json()["detail"]
    assert detail["claimed_by_id"] == desk.senior.id
    assert detail["claimed_by_name"] == "engineer user"
    assert datetime.fromisoformat(detail["claimed_at"]) == datetime.fromisoformat(won["claimed_at"])
    assert detail["message"].startswith("Already claimed by engineer user, ")
    assert detail["message"].endswith(("seconds ago", "1 second ago"))
    # The escalator hears who picked it up; the queue no longer lists it.
    async with asyncio.timeout(15):
        while not await notifications(client, desk.engineer.headers):  # noqa: ASYNC110 - made by the workflow
            await asyncio.sleep(0.05)
    told = await notifications(client, desk.engineer.headers)
    assert [n["kind"] for n in told] == ["handoff_claimed"]
    assert (await client.get(f"{API}/queue", headers=desk.admin.headers)).json()["total"] == 0
    # The senior can work the session again.
    assert (await client.post(f"{API}/{session_id}/suggested-fixes", headers=desk.senior.headers, json={
        "title": "Re-issue the VPN certificate", "confidence_pct": 60})).status_code == 201


async def test_concurrent_claims_have_exactly_one_winner(client: AsyncClient, db: AsyncSession) -> None:
    desk = await make_handoff_desk(client, db)
    session_id, handoff = await escalated(client, desk.engineer.headers)
    seniors = [desk.owner, desk.senior, desk.admin]

    answers = await asyncio.gather(*(claim(client, m.headers, session_id, handoff["id"]) for m in seniors * 3))

    by_status = sorted(a.status_code for a in answers)
    winners = {a.json()["claimed_by"] for a in answers if a.status_code == 200}
    assert len(winners) == 1, by_status
    winner = winners.pop()
    for answer in answers:
        if answer.status_code == 409:
            assert answer.json()["detail"]["claimed_by_id"] == winner
        else:
            assert answer.status_code == 200
    stored = (await handoffs_of(client, desk.senior.headers, session_id))[0]
    assert stored["claimed_by"] == winner
    claimed_events = await db.scalars(select(EscalationEvent).where(EscalationEvent.kind == "handoff_claimed"))
    assert len(claimed_events.all()) == 1


async def test_roles_viewer_and_escalator_cannot_claim(client: AsyncClient, db: AsyncSession) -> None:
    desk = await make_handoff_desk(client, db)
    session_id, handoff = await escalated(client, desk.engineer.headers)

    viewer = await claim(client, desk.viewer.headers, session_id, handoff["id"])
    assert viewer.status_code == 403
    assert "engineer" in viewer.json()["detail"].lower()
    l1 = await claim(client, desk.l1.headers, session_id, handoff["id"])
    assert l1.status_code == 403
    own = await claim(client, desk.engineer.headers, session_id, handoff["id"])
    assert own.status_code == 403
    assert "your own escalation" in own.json()["detail"]
    for path in ("queue", "escalations/stream"):
        resp = await client.get(f"{API}/{path}", headers=desk.viewer.headers)
        assert resp.status_code == 403 and "engineer" in resp.json()["detail"]
    assert (await hand_off(client, desk.viewer.headers, session_id)).status_code == 403


async def test_queue_lists_unclaimed_escalations_oldest_first(client: AsyncClient, db: AsyncSession) -> None:
    desk = await make_handoff_desk(client, db)
    first_session, first = await escalated(client, desk.engineer.headers, text="Printer offline")
    _, second = await escalated(client, desk.engineer.headers, text="Mailbox full", priority="high")
    parked = await open_session(client, desk.engineer.headers)
    assert (await hand_off(client, desk.engineer.headers, parked["id"], intent="park")).status_code == 201

    resp = await client.get(f"{API}/queue", headers=desk.senior.headers)
    assert resp.status_code == 200
    queue = resp.json()
    assert queue["total"] == 2
    assert [i["id"] for i in queue["items"]] == [first["id"], second["id"]]
    assert [i["priority"] for i in queue["items"]] == ["normal", "high"]
    assert queue["items"][0]["problem_summary"] == "Printer offline"
    assert queue["items"][0]["escalated_by_name"] == "engineer user"
    assert all(i["age_seconds"] >= 0 for i in queue["items"])
    page = (await client.get(f"{API}/queue?limit=1&offset=1", headers=desk.senior.headers)).json()
    assert [i["id"] for i in page["items"]] == [second["id"]] and page["total"] == 2

    assert (await claim(client, desk.senior.headers, first_session, first["id"])).status_code == 200
    assert [i["id"] for i in (await client.get(f"{API}/queue", headers=desk.senior.headers)).json()["items"]] == [
        second["id"]]
    other = await make_user(client, db, role="owner")
    assert (await client.get(f"{API}/queue", headers=other["headers"])).json()["total"] == 0


async def test_a_parked_session_is_picked_up_by_claiming_its_handoff(client: AsyncClient, db: AsyncSession) -> None:
    desk = await make_handoff_desk(client, db)
    session = await open_session(client, desk.engineer.headers)
    parked = (await hand_off(client, desk.engineer.headers, session["id"], intent="park")).json()

    resumed = await claim(client, desk.engineer.headers, session["id"], parked["id"])  # the customer answered

    assert resumed.status_code == 200, resumed.text
    assert (await _session_row(db, session["id"])).status == "active"
    again = await hand_off(client, desk.engineer.headers, session["id"])  # now escalate it
    assert again.status_code == 201
    assert (await _session_row(db, session["id"])).handoff_count == 2


async def test_tenancy_another_accounts_ids_are_404(client: AsyncClient, db: AsyncSession) -> None:
    desk = await make_handoff_desk(client, db)
    session_id, handoff = await escalated(client, desk.engineer.headers)
    other = await make_user(client, db, role="owner")
    mine = await open_session(client, other["headers"])

    assert (await hand_off(client, other["headers"], session_id)).status_code == 404
    assert (await client.get(f"{API}/{session_id}/handoffs", headers=other["headers"])).status_code == 404
    assert (await claim(client, other["headers"], session_id, handoff["id"])).status_code == 404
    # Another session's handoff under my own session is not found either.
    assert (await claim(client, other["headers"], mine["id"], handoff["id"])).status_code == 404
    assert (await claim(client, desk.senior.headers, session_id, str(uuid.uuid4()))).status_code == 404
    target = await hand_off(client, other["headers"], mine["id"], target_user_id=desk.senior.id)
    assert target.status_code == 404 and "target_user_id" in target.json()["detail"]


async def test_bad_handoff_bodies_get_clear_4xx(client: AsyncClient, db: AsyncSession) -> None:
    desk = await make_handoff_desk(client, db)
    session = await open_session(client, desk.engineer.headers)
    url, headers = f"{API}/{session['id']}/handoff", desk.engineer.headers

    for body in ({"intent": "shelve", "engineer_notes": "x"}, {"intent": "park"},
                 {"intent": "park", "engineer_notes": "   \x1c "},
                 {"intent": "park", "engineer_notes": "x" * 4001}, {"intent": "park", "engineer_notes": "a\x00b"},
                 {"intent": "park", "engineer_notes": "x", "priority": "high"},
                 {"intent": "escalate", "engineer_notes": "x", "priority": "asap"},
                 {"intent": "escalate", "engineer_notes": "x", "target_user_id": "nobody"}, ["park"]):
        resp = await client.post(url, headers=headers, json=body)
        assert resp.status_code == 422, (body, resp.text)
    surrogate = await client.post(url, headers={**headers, "Content-Type": "application/json"},
                                  content=b'{"intent": "park", "engineer_notes": "a\\ud800b"}')
    assert surrogate.status_code == 422, surrogate.text
    self_target = await hand_off(client, headers, session["id"], target_user_id=desk.engineer.id)
    assert self_target.status_code == 400 and "names you" in self_target.json()["detail"]
    viewer_target = await hand_off(client, headers, session["id"], target_user_id=desk.viewer.id)
    assert viewer_target.status_code == 404
    assert (await _session_row(db, session["id"])).handoff_count == 0  # nothing was lost or half-made

    longest = await hand_off(client, headers, session["id"], notes="é" * 4000, target_user_id=desk.senior.id)
    assert longest.status_code == 201, longest.text
    assert longest.json()["target_user_id"] == desk.senior.id
    twice = await hand_off(client, headers, session["id"])
    assert twice.status_code == 409 and "escalated" in twice.json()["detail"]
    bad_id = await client.get(f"{API}/escalations/stream", headers={**headers, "Last-Event-ID": "12abc"})
    assert bad_id.status_code == 422 and "Last-Event-ID" in bad_id.json()["detail"]  # as the schema says


async def test_concurrent_duplicate_escalations_make_one_handoff(client: AsyncClient, db: AsyncSession) -> None:
    desk = await make_handoff_desk(client, db)
    session = await open_session(client, desk.engineer.headers)

    answers = await asyncio.gather(*(hand_off(client, desk.engineer.headers, session["id"]) for _ in range(4)))

    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409]
    assert len(await handoffs_of(client, desk.engineer.headers, session["id"])) == 1
    assert (await _session_row(db, session["id"])).handoff_count == 1


async def test_an_escalated_sessions_run_waits_for_the_claim_and_serves_the_claimer(
    client: AsyncClient, db: AsyncSession, temporal_client: Client
) -> None:
    """The escalated session's run is held, so the claim's `resume` reaches it: no new run, no reload."""
    desk = await make_handoff_desk(client, db)
    session_id, handoff = await escalated(client, desk.engineer.headers)
    workflow = temporal_client.get_workflow_handle(f"session-{session_id}")
    held = await workflow.describe()
    assert held.status == WorkflowExecutionStatus.RUNNING

    assert (await claim(client, desk.senior.headers, session_id, handoff["id"])).status_code == 200
    assert (await _session_row(db, session_id)).status == "active"
    await _claimer_works_in_run(client, desk.senior.headers, session_id, workflow, held.run_id)


async def test_a_claim_after_the_escalated_run_ended_starts_one_that_keeps_serving(
    client: AsyncClient, db: AsyncSession, temporal_client: Client
) -> None:
    """The run a claim's `resume` starts serves the session afterwards, so the claimer's next command finds it."""
    desk = await make_handoff_desk(client, db)
    session_id, handoff = await escalated(client, desk.engineer.headers)
    workflow = temporal_client.get_workflow_handle(f"session-{session_id}")
    ended = await workflow.describe()
    await workflow.terminate(reason="test: as if unloaded after the idle period")  # its state is in Postgres
    assert (await claim(client, desk.senior.headers, session_id, handoff["id"])).status_code == 200

    resumed = await workflow.describe()  # the handle names no run: this is the latest
    assert resumed.run_id != ended.run_id
    assert resumed.status == WorkflowExecutionStatus.RUNNING
    await _claimer_works_in_run(client, desk.senior.headers, session_id, workflow, resumed.run_id)


async def test_a_claim_whose_handoff_workflow_ended_is_recorded_and_the_session_run_keeps_serving(
    client: AsyncClient, db: AsyncSession, temporal_client: Client
) -> None:
    """The session's workflow owns the claim; telling `handoff-{id}` is best-effort (a run it starts loads the row)."""
    desk = await make_handoff_desk(client, db)
    session_id, handoff = await escalated(client, desk.engineer.headers)
    await temporal_client.get_workflow_handle(f"handoff-{handoff['id']}").terminate(reason="test: as if idle")
    workflow = temporal_client.get_workflow_handle(f"session-{session_id}")
    held = await workflow.describe()

    answer = await claim(client, desk.senior.headers, session_id, handoff["id"])
    assert answer.status_code == 200, answer.text
    won = answer.json()
    assert won["claimed_by"] == desk.senior.id and won["engineer_notes"] == handoff["engineer_notes"]
    assert (await _session_row(db, session_id)).status == "active"
    await _claimer_works_in_run(client, desk.senior.headers, session_id, workflow, held.run_id)


async def _claimer_works_in_run(client: AsyncClient, headers: dict[str, str], session_id: str,
                                workflow: WorkflowHandle[Any, Any], run_id: str | None) -> None:
    """The claimer's next command succeeds, and the session's workflow is still run `run_id`, running."""
    fix = await client.post(f"{API}/{session_id}/suggested-fixes", headers=headers,
                            json={"title": "Re-issue the VPN certificate", "confidence_pct": 60})
    assert fix.status_code == 201, fix.text
    after = await workflow.describe()
    assert (after.run_id, after.status) == (run_id, WorkflowExecutionStatus.RUNNING)
