"""Seed 002 over HTTP: resolve and escalate posts to ConnectWise (the simulator, over real HTTP) with the
status change re-read to verify, plus the hard cases (429, lost response, silently ignored change)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from tests.ai_sessions.support import open_session
from tests.helpers import make_user
from tests.psa.cw_simulator import SimulatorHandle
from tests.psa.support import (
    API,
    ESCALATED,
    NEW,
    PACKAGE,
    RESOLUTION,
    RESOLVED,
    TICKET,
    Desk,
    make_desk,
    note_posts,
    post,
    set_preferences,
    ticket_session,
    writebacks,
)
from workflows.contracts.ai_session import MAX_MARKDOWN_CHARS, session_workflow_id


@pytest.fixture
async def desk(client: AsyncClient, db: AsyncSession, cw_sim: SimulatorHandle) -> Desk:
    return await make_desk(client, db, cw_sim)


async def session_row(client: AsyncClient, desk: Desk, sid: str) -> dict[str, Any]:
    resp = await client.get(f"{API}/{sid}", headers=desk.engineer)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


# --- the seed's seven cases -----------------------------------------------------------------------------


async def test_resolve_local_only_when_no_psa_ticket(client: AsyncClient, desk: Desk) -> None:
    session = await open_session(client, desk.engineer, text="phase 4 test")
    resp = await post(client, desk, session["id"])
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["outcome"] == "resolved_local" and body["session_status"] == "resolved"
    assert body["external_id"] is None
    stored = await session_row(client, desk, session["id"])
    assert stored["status"] == "resolved" and stored["resolved_at"] is not None
    assert stored["resolution_note_markdown"] == RESOLUTION["markdown"]
    assert note_posts(desk.sim) == 0


async def test_resolve_posts_to_psa_and_verifies_status(client: AsyncClient, desk: Desk) -> None:
    await set_preferences(client, desk, cw_resolved_status_id=RESOLVED)
    session = await ticket_session(client, desk)
    resp = await post(client, desk, session["id"])
    assert resp.status_code == 200, resp.text
    body = resp.json()
    notes = desk.sim.state.notes(TICKET)
    assert len(notes) == 1
    assert body["outcome"] == "resolved" and body["session_status"] == "resolved"
    assert body["external_id"] == str(notes[0]["id"])
    assert body["verified_status_id"] == RESOLVED and body["verified_status_name"] == "Resolved"
    assert body["status_transition_skipped_reason"] is None
    # A RESOLUTION note: customer-visible, and only that flag.
    assert (notes[0]["resolutionFlag"], notes[0]["internalAnalysisFlag"], notes[0]["detailDescriptionFlag"]) == \
        (True, False, False)
    assert notes[0]["text"].startswith(RESOLUTION["markdown"])
    assert desk.sim.state.tickets[TICKET]["status_id"] == RESOLVED
    patch = desk.sim.state.requests_to("PATCH service/tickets/{id}")[-1]
    assert patch.body == [{"op": "replace", "path": "status", "value": {"id": RESOLVED}}]
    stored = await session_row(client, desk, session["id"])
    assert stored["status"] == "resolved" and stored["resolution_note_markdown"] == RESOLUTION["markdown"]
    [log] = await writebacks(client, desk, session["id"])
    assert log["state"] == "completed" and log["status_change"] == "verified"
    assert log["external_note_id"] == body["external_id"] and log["note_type"] == "resolution"
    assert log["posted_by_user_id"] == desk.engineer_id and log["ticket_id"] == str(TICKET)
    assert log["verified_at"] is not None and log["recheck_at"] is not None


async def test_resolve_surfaces_status_verification_failure(client: AsyncClient, desk: Desk) -> None:
    """ConnectWise answering 200 to a change it did not apply is a 502, never silent success."""
    await set_preferences(client, desk, cw_resolved_status_id=RESOLVED)
    session = await ticket_session(client, desk)
    desk.sim.state.switches.ignore_status_change = True
    resp = await post(client, desk, session["id"])
    assert resp.status_code == 502, resp.text
    detail = resp.json()["detail"]
    assert "did not verify" in detail and "stays active" in detail
    # The session is clearly not resolved; the note is on the ticket once; the log says what happened.
    stored = await session_row(client, desk, session["id"])
    assert stored["status"] == "active" and stored["resolution_note_markdown"] is None
    assert len(desk.sim.state.notes(TICKET)) == 1
    [log] = await writebacks(client, desk, session["id"])
    assert log["state"] == "note_posted" and log["status_change"] == "did_not_verify"
    assert "did not verify" in log["last_error"]
    # Posting again retries only the status change: still one note, now verified.
    desk.sim.state.switches.ignore_status_change = False
    again = await post(client, desk, session["id"])
    assert again.status_code == 200, again.text
    assert again.json()["verified_status_id"] == RESOLVED
    assert again.json()["external_id"] == log["external_note_id"]
    assert len(desk.sim.state.notes(TICKET)) == 1 and note_posts(desk.sim) == 1
    [log] = await writebacks(client, desk, session["id"])
    assert log["state"] == "completed" and log["attempts"] == 2 and log["status_change"] == "verified"


async def test_resolve_skips_status_transition_when_unconfigured(client: AsyncClient, desk: Desk) -> None:
    session = await ticket_session(client, desk, intake_type="free_text")
    resp = await post(client, desk, session["id"])
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["outcome"] == "resolved" and body["verified_status_id"] is None
    assert "cw_resolved_status_id" in body["status_transition_skipped_reason"]
    assert desk.sim.state.requests_to("PATCH service/tickets/{id}") == []
    assert desk.sim.state.requests_to("GET service/tickets/{id}") == []
    assert desk.sim.state.tickets[TICKET]["status_id"] == NEW
    [log] = await writebacks(client, desk, session["id"])
    assert log["status_change"] == "skipped" and log["recheck_at"] is None


async def test_resolve_rejects_already_resolved_session(client: AsyncClient, desk: Desk) -> None:
    session = await ticket_session(client, desk)
    assert (await post(client, desk, session["id"])).status_code == 200
    second = await post(client, desk, session["id"], body={"markdown": "..."})
    assert second.status_code == 409, second.text
    assert "already resolved" in second.json()["detail"]
    assert note_posts(desk.sim) == 1


async def test_escalate_local_only_when_no_psa_ticket(client: AsyncClient, desk: Desk) -> None:
    session = await open_session(client, desk.engineer)
    resp = await post(client, desk, session["id"], "escalation-package")
    assert resp.status_code == 200, resp.text
    assert resp.json()["outcome"] == "escalated_local"
    stored = await session_row(client, desk, session["id"])
    assert stored["status"] == "escalated" and stored["escalation_package_markdown"] == PACKAGE["markdown"]


async def test_escalate_posts_internal_note_to_psa(client: AsyncClient, desk: Desk) -> None:
    await set_preferences(client, desk, cw_escalated_status_id=ESCALATED)
    session = await ticket_session(client, desk)
    resp = await post(client, desk, session["id"], "escalation-package")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["outcome"] == "escalated" and body["session_status"] == "escalated"
    assert body["verified_status_id"] == ESCALATED
    [note] = desk.sim.state.notes(TICKET)
    assert body["external_id"] == str(note["id"])
    # Handoff packages are internal: never the RESOLUTION or DESCRIPTION flag.
    assert (note["internalAnalysisFlag"], note["resolutionFlag"], note["detailDescriptionFlag"]) == \
        (True, False, False)
    # A senior may still resolve what was escalated: a second write-back, a customer-visible note.
    resolved = await post(client, desk, session["id"])
    assert resolved.status_code == 200, resolved.text
    assert [n["resolutionFlag"] for n in desk.sim.state.notes(TICKET)] == [False, True]
    assert [w["kind"] for w in await writebacks(client, desk, session["id"])] == \
        ["escalation_package", "resolution_note"]


# --- the hard cases -------------------------------------------------------------------------------------


async def test_a_429_is_retried_after_retry_after_and_posts_exactly_one_note(client: AsyncClient,
                                                                              desk: Desk) -> None:
    session = await ticket_session(client, desk)
    desk.sim.state.switches.retry_after_s = 3
    desk.sim.state.switches.rate_limit_next = 1
    started = time.monotonic()
    resp = await post(client, desk, session["id"])
    assert resp.status_code == 200, resp.text
    # Temporal's own first backoff is 1 s: waiting 3 s shows the Retry-After was honoured.
    assert time.monotonic() - started >= 3
    posts = desk.sim.state.requests_to("POST service/tickets/{id}/notes")
    assert [p.status for p in posts] == [429, 201] or [p.status for p in posts] == [429, 200]
    assert len(desk.sim.state.notes(TICKET)) == 1


async def test_a_response_lost_after_the_note_was_stored_leaves_exactly_one_note(client: AsyncClient,
                                                                                  desk: Desk) -> None:
    session = await ticket_session(client, desk)
    desk.sim.state.switches.fail_after_note_store_next = 1
    resp = await post(client, desk, session["id"])
    assert resp.status_code == 200, resp.text
    notes = desk.sim.state.notes(TICKET)
    assert len(notes) == 1 and note_posts(desk.sim) == 1  # the retry looked first and found it
    assert resp.json()["external_id"] == str(notes[0]["id"])
    [log] = await writebacks(client, desk, session["id"])
    assert log["note_reused"] is True and log["state"] == "completed"
    assert log["id"].replace("-", "")[:16] in notes[0]["text"]  # the marker we control


async def test_wrong_credentials_are_a_502_saying_authentication_failed(client: AsyncClient, db: AsyncSession,
                                                                        cw_sim: SimulatorHandle) -> None:
    desk = await make_desk(client, db, cw_sim, private_key="not-the-key")
    session = await ticket_session(client, desk, intake_type="free_text")
    resp = await post(client, desk, session["id"])
    assert resp.status_code == 502, resp.text
    detail = resp.json()["detail"]
    assert "authentication failed" in detail.lower() and "not-the-key" not in detail
    assert (await session_row(client, desk, session["id"]))["status"] == "active"
    [log] = await writebacks(client, desk, session["id"])
    assert log["state"] == "pending" and log["external_note_id"] is None


async def test_a_ticket_the_psa_does_not_have_fails_with_its_message(client: AsyncClient, desk: Desk) -> None:
    opened = await client.post(API, headers=desk.engineer, json={
        "session_type": "chat", "intake_type": "psa_ticket", "psa_connection_id": desk.connection_id,
        "psa_ticket_id": "99999"})
    assert opened.status_code == 404, opened.text
    assert "99999" in opened.json()["detail"] and "was not found" in opened.json()["detail"]
    # Linked without reading it (free text), the post finds out: a 502 with ConnectWise's words.
    session = await ticket_session(client, desk, intake_type="free_text", ticket=99999)
    resp = await post(client, desk, session["id"])
    assert resp.status_code == 502, resp.text
    assert "was not found" in resp.json()["detail"]


async def test_psa_intake_reads_the_ticket_summary(client: AsyncClient, desk: Desk) -> None:
    session = await ticket_session(client, desk)
    assert session["problem_summary"] == "Outlook prompts for password after M365 migration"
    assert session["psa_ticket_id"] == str(TICKET) and session["intake_type"] == "psa_ticket"


async def test_bad_input_and_tenancy(client: AsyncClient, db: AsyncSession, desk: Desk) -> None:
    session = await ticket_session(client, desk)
    for markdown in ["", "   ", "\x1f"]:
        resp = await post(client, desk, session["id"], body={"markdown": markdown})
        assert resp.status_code == 422, resp.text
    other = await make_user(client, db, role="owner")
    # Another account's connection, an unknown one, and half a link.
    for body in [{"psa_connection_id": desk.connection_id, "psa_ticket_id": "48291"},
                 {"psa_connection_id": "00000000-0000-4000-8000-000000000000", "psa_ticket_id": "48291"}]:
        resp = await client.post(API, headers=other["headers"], json={
            "session_type": "chat", "intake_type": "psa_ticket", **body})
        assert resp.status_code == 404, resp.text
    for body in [{"psa_ticket_id": "48291"}, {"psa_connection_id": desk.connection_id, "psa_ticket_id": "../x"}]:
        resp = await client.post(API, headers=desk.engineer, json={
            "session_type": "chat", "intake_type": "psa_ticket", **body})
        assert resp.status_code == 422, resp.text
    assert (await client.get(f"{API}/{session['id']}/writebacks", headers=other["headers"])).status_code == 404
    assert (await post(client, desk, session["id"], headers=other["headers"])).status_code == 404
    assert note_posts(desk.sim) == 0


async def test_concurrent_posts_post_one_note_and_close_once(client: AsyncClient, desk: Desk) -> None:
    await set_preferences(client, desk, cw_resolved_status_id=RESOLVED)
    session = await ticket_session(client, desk)
    answers = await asyncio.gather(*[post(client, desk, session["id"]) for _ in range(4)])
    assert sorted(r.status_code for r in answers) == [200, 409, 409, 409], [r.text for r in answers]
    assert len(desk.sim.state.notes(TICKET)) == 1 and note_posts(desk.sim) == 1
    assert len(desk.sim.state.requests_to("PATCH service/tickets/{id}")) == 1


async def test_a_deleted_connection_cannot_post_and_says_so(client: AsyncClient, desk: Desk) -> None:
    session = await ticket_session(client, desk)
    gone = await client.delete(f"/api/v1/psa/connections/{desk.connection_id}", headers=desk.admin)
    assert gone.status_code == 204
    resp = await post(client, desk, session["id"])
    assert resp.status_code == 400, resp.text
    assert "connection was deleted" in resp.json()["detail"]
    assert (await session_row(client, desk, session["id"]))["status"] == "active"
    assert note_posts(desk.sim) == 0


async def test_a_retry_with_the_same_idempotency_key_replays_the_answer(client: AsyncClient, desk: Desk) -> None:
    session = await ticket_session(client, desk)
    headers = {**desk.engineer, "Idempotency-Key": "post-once-1"}
    first = await post(client, desk, session["id"], headers=headers)
    second = await post(client, desk, session["id"], headers=headers)
    assert first.status_code == second.status_code == 200, second.text
    assert first.json() == second.json() and note_posts(desk.sim) == 1


async def test_a_maximum_size_note_travels_once_per_attempt_in_the_history(client: AsyncClient, desk: Desk,
                                                                          temporal_client: Client) -> None:
    """The activities read the text from the write-back row by id: a 50 KB note is in the history once, as the
    update's input, not again in every PSA activity's input or a local activity's result."""
    await set_preferences(client, desk, cw_resolved_status_id=RESOLVED)
    session = await ticket_session(client, desk)
    first, edit = ("first-" + "x" * MAX_MARKDOWN_CHARS)[:MAX_MARKDOWN_CHARS], \
        ("edited-" + "y" * MAX_MARKDOWN_CHARS)[:MAX_MARKDOWN_CHARS]
    desk.sim.state.switches.ignore_status_change = True
    failed = await post(client, desk, session["id"], body={"markdown": first})
    assert failed.status_code == 502 and "did not verify" in failed.json()["detail"], failed.text
    desk.sim.state.switches.ignore_status_change = False
    done = await post(client, desk, session["id"], body={"markdown": edit})  # the edit replaces the posted note
    assert done.status_code == 200, done.text
    [note] = desk.sim.state.notes(TICKET)
    assert note["text"].startswith(edit) and note_posts(desk.sim) == 1
    stored = await session_row(client, desk, session["id"])
    assert stored["resolution_note_markdown"] == edit

    history = await temporal_client.get_workflow_handle(session_workflow_id(session["id"])).fetch_history()
    carrying = {text[:7]: [event.event_type for event in history.events
                           if text[:200].encode() in event.SerializeToString()] for text in (first, edit)}
    # Each text: only the update that asked for it (the write-back's opening is a local activity: its input
    # is not recorded, and no result carries the text back).
    assert carrying == {"first-x": [EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED],
                        "edited-": [EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED]}, carrying
