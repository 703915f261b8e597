"""Issue 24, continued: drift, tenancy, roles and an edited re-post on each of the three providers over HTTP,
then what only Autotask (zone discovery, 500-with-errors rejections) and HaloPSA (tokens expiring mid-way) have."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from tests.helpers import add_member, make_user
from tests.psa.support import API, CONNECTIONS, RESOLUTION, TICKET
from tests.psa.test_writeback_providers_http import Psa
from tests.psa.test_writeback_providers_http import provider as provider  # a fixture
from tests.psa.test_writeback_providers_http import psa as psa  # a fixture

DRIFT_WAIT_S = 30.0


def only(name: str) -> pytest.MarkDecorator:
    """Run a test on one provider's simulator."""
    return pytest.mark.parametrize("provider", [name], indirect=True)


async def eventually(what: str, probe: Any, within_s: float = DRIFT_WAIT_S) -> Any:
    """Await `probe()` until it returns something truthy (bounded; the workflow works on its own timer)."""
    deadline = time.monotonic() + within_s
    while not (found := await probe()):
        assert time.monotonic() < deadline, f"no {what} within {within_s:g}s"
        await asyncio.sleep(0.3)
    return found


async def test_a_status_moved_after_verification_is_detected_and_the_engineer_told(
    client: AsyncClient, psa: Psa,
) -> None:
    # Seconds are allowed in dev mode: the re-read comes 3 s after the verification instead of 10 minutes.
    resp = await client.put("/api/v1/account/settings", headers=psa.admin, json={"psa_status_recheck_after": "PT3S"})
    assert resp.status_code == 200, resp.text
    sid = await psa.open_session(client)
    posted = await psa.post(client, sid)
    assert posted.status_code == 200 and posted.json()["verified_status_id"] == psa.resolved[0], posted.text
    await psa.move_status(psa.reopened[0])  # a workflow rule reopens the ticket before the re-read
    [log] = await psa.writebacks(client, sid)
    assert log["recheck_at"] is not None and log["rechecked_at"] is None, log

    async def drifted() -> dict[str, Any] | None:
        [row] = await psa.writebacks(client, sid)
        return row if row["drift_detected_at"] else None

    log = await eventually("drift", drifted)
    assert (log["recheck_status_id"], log["recheck_status_name"]) == psa.reopened
    assert log["rechecked_at"] is not None and log["verified_status_id"] == psa.resolved[0]

    async def told() -> list[dict[str, Any]]:
        listed = await client.get("/api/v1/notifications", headers=psa.engineer)
        return [n for n in listed.json()["items"] if n["kind"] == "psa_status_drift"]

    [note] = await eventually("drift notification", told)
    assert note["session_id"] == sid
    assert psa.resolved[1] in note["title"] and psa.reopened[1] in note["title"], note["title"]


async def test_another_account_sees_404s_and_only_admins_manage_the_connection(
    client: AsyncClient, db: AsyncSession, psa: Psa,
) -> None:
    sid = await psa.open_session(client)
    cid = psa.connection_id
    other = (await make_user(client, db, role="owner"))["headers"]
    borrowed = await client.post(API, headers=other, json={
        "session_type": "chat", "intake_type": "psa_ticket", "psa_connection_id": cid, "psa_ticket_id": str(TICKET)})
    assert borrowed.status_code == 404, borrowed.text
    for call in [client.get(f"{API}/{sid}", headers=other),
                 client.get(f"{API}/{sid}/writebacks", headers=other),
                 psa.post(client, sid, headers=other),
                 psa.post(client, sid, "escalation-package", headers=other),
                 client.post(f"{CONNECTIONS}/{cid}/test", headers=other),
                 client.get(f"{CONNECTIONS}/{cid}/tickets/{TICKET}/statuses", headers=other),
                 client.patch(f"{CONNECTIONS}/{cid}", headers=other, json={"display_name": "mine now"}),
                 client.delete(f"{CONNECTIONS}/{cid}", headers=other)]:
        resp = await call
        assert resp.status_code == 404, resp.text
    assert (await client.get(CONNECTIONS, headers=other)).json()["total"] == 0
    # In the account itself: an engineer may post but not manage connections; a viewer may do neither.
    viewer = (await add_member(client, psa.admin, role="viewer"))["headers"]
    for headers in (psa.engineer, viewer):
        for call in [client.get(CONNECTIONS, headers=headers),
                     client.post(CONNECTIONS, headers=headers, json=psa.body),
                     client.post(f"{CONNECTIONS}/{cid}/test", headers=headers),
                     client.patch(f"{CONNECTIONS}/{cid}", headers=headers, json={"display_name": "x"}),
                     client.delete(f"{CONNECTIONS}/{cid}", headers=headers)]:
            resp = await call
            assert resp.status_code == 403, resp.text
    assert (await psa.post(client, sid, headers=viewer)).status_code == 403
    assert psa.note_posts() == [] and psa.status() == psa.start  # nothing above reached the PSA's ticket
    duplicate = await client.post(CONNECTIONS, headers=psa.admin, json=psa.body)
    assert duplicate.status_code == 409, duplicate.text
    tested = await client.post(f"{CONNECTIONS}/{cid}/test", headers=psa.admin)
    assert tested.status_code == 200 and tested.json()["ok"] is True, tested.text
    assert (await psa.post(client, sid)).status_code == 200 and len(psa.notes()) == 1




@pytest.mark.parametrize("provider", ["connectwise", "autotask", "halopsa"], indirect=True)
async def test_an_edited_repost_after_did_not_verify_edits_the_same_note(client: AsyncClient, psa: Psa) -> None:
    sid = await psa.open_session(client)
    await psa.switch(ignore_status_change=True)
    first = await psa.post(client, sid, time_minutes=10)
    assert first.status_code == 502 and "did not verify" in first.json()["detail"], first.text
    [before] = psa.notes()
    await psa.switch(ignore_status_change=False)
    edited = "## Problem\nx\n\n## Resolution\nfixed by re-creating the mail profile"
    again = await psa.post(client, sid, markdown=edited, time_minutes=10)
    assert again.status_code == 200, again.text
    [note] = psa.notes()  # the same note (ConnectWise: the same time entry), now saying what the session says
    assert note.id == before.id == again.json()["external_id"] and note.text.startswith(edited)
    assert len(psa.note_posts()) == 1 and len(psa.time_entries()) == 1 and psa.status() == psa.resolved[0]
    stored = await client.get(f"{API}/{sid}", headers=psa.engineer)
    assert stored.json()["resolution_note_markdown"] == edited


@only("autotask")
async def test_autotask_discovers_its_zone_once_for_every_later_call(client: AsyncClient, psa: Psa) -> None:
    st = psa.state
    first = await psa.open_session(client)  # the intake's read is the first call: it needs the zone
    assert len(st.requests_to("GET zoneInformation")) == 1
    assert st.requests_to("GET zoneInformation")[0].query["user"] == psa.body["username"]
    for sid, kind in [(first, "resolution-note"), (await psa.open_session(client), "escalation-package")]:
        resp = await psa.post(client, sid, kind)
        assert resp.status_code == 200, resp.text
    assert len(psa.notes()) == 2 and len(st.requests_to("PATCH Tickets")) == 2
    # Two sessions, two posts, their status changes and re-reads: one discovery for all of them.
    assert len(st.requests_to("GET versioninformation")) == 1 and len(st.requests_to("GET zoneInformation")) == 1


@only("autotask")
async def test_an_autotask_500_with_errors_is_a_rejection_said_once_not_retried(client: AsyncClient,
                                                                                 psa: Psa) -> None:
    sid = await psa.open_session(client)
    refusal = "TicketNote description contains text the ticket's category does not allow"
    await psa.switch(reject_next_with_errors=[refusal])
    resp = await psa.post(client, sid, time_minutes=20)
    assert resp.status_code == 502, resp.text
    detail = resp.json()["detail"]
    assert "refused" in detail and refusal in detail, detail
    assert psa.note_posts() == [500]  # one attempt: sending it again would be refused the same way
    assert psa.notes() == [] and psa.time_entries() == [] and psa.status() == psa.start
    stored = await client.get(f"{API}/{sid}", headers=psa.engineer)
    assert stored.json()["status"] == "active"
    [log] = await psa.writebacks(client, sid)
    assert log["state"] == "pending" and log["external_note_id"] is None
    # Once the note is acceptable (the switch is used up), posting again works: one note, one time entry.
    again = await psa.post(client, sid, time_minutes=20)
    assert again.status_code == 200, again.text
    assert len(psa.notes()) == 1 and len(psa.time_entries()) == 1 and psa.status() == psa.resolved[0]


@only("halopsa")
async def test_halo_tokens_revoked_mid_way_are_renewed_and_the_note_posted_once(client: AsyncClient,
                                                                                psa: Psa) -> None:
    st = psa.state
    sid = await psa.open_session(client)  # the intake's read got (and cached) a token
    tokens_before, calls_before = st.token_requests, len(st.requests)
    await psa.switch(expire_tokens_now=True)
    resp = await psa.post(client, sid, time_minutes=30)
    assert resp.status_code == 200, resp.text
    later = st.requests[calls_before:]
    assert later[0].status == 401, [(r.route, r.status) for r in later]  # the cached token was refused once
    assert st.token_requests == tokens_before + 1  # one new token, used for the rest
    assert all(r.status != 401 for r in later[1:]), [(r.route, r.status) for r in later]
    [note] = psa.notes()
    assert psa.note_posts() == [401, 201] and resp.json()["external_id"] == note.id
    assert psa.time_entries() == [(note.id, 0.5)] and psa.status() == psa.resolved[0]
    assert resp.json()["verified_status_id"] == psa.resolved[0]
    assert RESOLUTION["markdown"] in note.text
