"""Issue 24: ConnectWise, Autotask and HaloPSA pass the same write-back tests over HTTP against their simulators.

One adapter per provider says how to connect it, read its notes, time and ticket status, flip its fault switches
and move the ticket behind our back; every test here runs once per provider. Drift, tenancy, roles and the
provider-specific cases are in test_writeback_providers_more_http.py.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from httpx import AsyncClient, Response
from sqlalchemy.ext.asyncio import AsyncSession

from integrations.psa.halopsa import OUTCOME as HALO_NOTE_OUTCOME
from tests.psa.support import API, PACKAGE, RESOLUTION, TICKET, connection_body
from tests.psa.test_psa_providers_http import autotask_body, desk, halo_body

PROVIDERS = ["connectwise", "autotask", "halopsa"]
SIM_FIXTURES = {"connectwise": "cw_sim", "autotask": "at_sim", "halopsa": "halo_sim"}


@dataclass(frozen=True)
class Note:
    """A note we posted, as the PSA keeps it (ConnectWise: a ticket note or a time entry carrying it)."""

    id: str
    text: str
    internal: bool


@dataclass
class Psa:
    """One provider's simulator, the account connected to it, and how to read and steer the simulator."""

    name: str
    sim: Any
    body: dict[str, Any]
    start: int  # the demo ticket's status before any write-back
    resolved: tuple[int, str]
    escalated: tuple[int, str]
    reopened: tuple[int, str]  # where a workflow rule moves the ticket behind our back
    engineer: dict[str, str] = field(default_factory=dict)
    admin: dict[str, str] = field(default_factory=dict)
    connection_id: str = ""

    @property
    def state(self) -> Any:
        """The simulator's live state (read in-process: the simulator runs in this process's thread)."""
        return self.sim.state

    def notes(self) -> list[Note]:
        """Our notes on the demo ticket, oldest first."""
        st = self.state
        if self.name == "connectwise":
            return ([Note(str(n["id"]), n["text"], n["internalAnalysisFlag"]) for n in st.notes(TICKET)]
                    + [Note(str(e["id"]), e["notes"], e["addToInternalAnalysisFlag"]) for e in st.time_entries(TICKET)])
        if self.name == "autotask":
            return [Note(str(n["id"]), n["description"], n["publish"] == 2) for n in st.notes(TICKET)]
        # Halo: every write is an action; a status-only action (no document in it) is not a note.
        return [Note(str(a["id"]), a["note"], a["hiddenfromuser"]) for a in st.actions(TICKET)
                if a["outcome"] == HALO_NOTE_OUTCOME]

    def note_posts(self) -> list[int | None]:
        """The HTTP status of every request that tried to store a note (answered or not)."""
        st = self.state
        if self.name == "connectwise":
            posts = st.requests_to("POST service/tickets/{id}/notes") + st.requests_to("POST time/entries")
        elif self.name == "autotask":
            posts = st.requests_to("POST Tickets/{id}/Notes")
        else:
            posts = [r for r in st.requests_to("POST Actions") if isinstance(r.body, list) and any(
                isinstance(a, dict) and "id" not in a and a.get("outcome") == HALO_NOTE_OUTCOME for a in r.body)]
        return [r.status for r in posts]

    def time_entries(self) -> list[tuple[str, float]]:
        """(id, hours) of the time logged on the demo ticket."""
        st = self.state
        if self.name == "connectwise":
            return [(str(e["id"]), e["actualHours"]) for e in st.time_entries(TICKET)]
        if self.name == "autotask":
            return [(str(e["id"]), e["hoursWorked"]) for e in st.time_entries if e["ticketID"] == TICKET]
        return [(str(a["id"]), a["timetaken"]) for a in st.actions(TICKET) if a["timetaken"]]

    def status(self) -> int:
        """The demo ticket's status id now."""
        ticket = self.state.tickets[TICKET]
        return int(ticket["status"] if self.name == "autotask" else ticket["status_id"])

    def status_changes_sent(self) -> int:
        """How many requests asked the PSA to change the demo ticket's status."""
        st = self.state
        if self.name == "connectwise":
            return len(st.requests_to("PATCH service/tickets/{id}"))
        if self.name == "autotask":
            return len(st.requests_to("PATCH Tickets"))
        return sum(1 for r in st.requests_to("POST Actions") if isinstance(r.body, list)
                   and any(isinstance(a, dict) and a.get("new_status") is not None for a in r.body))

    async def switch(self, **values: Any) -> None:
        """Set fault switches through the simulator's control route."""
        async with httpx.AsyncClient(timeout=10) as http:
            resp = await http.post(f"{self.sim.url}/_simulator/switches", json=values)
        assert resp.status_code == 200, resp.text

    async def move_status(self, status_id: int) -> None:
        """Change the ticket's status behind the API's back (a workflow rule, a customer reply)."""
        async with httpx.AsyncClient(timeout=10) as http:
            resp = await http.post(f"{self.sim.url}/_simulator/tickets/{TICKET}/status", json={"status_id": status_id})
        assert resp.status_code == 200, resp.text

    async def open_session(self, client: AsyncClient) -> str:
        """A session opened from the demo ticket (the intake reads it through the connection)."""
        resp = await client.post(API, headers=self.engineer, json={
            "session_type": "chat", "intake_type": "psa_ticket", "psa_connection_id": self.connection_id,
            "psa_ticket_id": str(TICKET)})
        assert resp.status_code == 201, resp.text
        return str(resp.json()["id"])

    async def post(self, client: AsyncClient, session_id: str, kind: str = "resolution-note",
                   headers: dict[str, str] | None = None, **body: Any) -> Response:
        """POST .../resolution-note/post or .../escalation-package/post as the engineer."""
        payload = {**(RESOLUTION if kind == "resolution-note" else PACKAGE), **body}
        return await client.post(f"{API}/{session_id}/{kind}/post", headers=headers or self.engineer, json=payload,
                                 timeout=120)

    async def writebacks(self, client: AsyncClient, session_id: str) -> list[dict[str, Any]]:
        """GET .../writebacks as the engineer."""
        resp = await client.get(f"{API}/{session_id}/writebacks", headers=self.engineer)
        assert resp.status_code == 200, resp.text
        items: list[dict[str, Any]] = resp.json()["items"]
        return items


def pick_provider(request: pytest.FixtureRequest) -> Psa:
    """The adapter for `request.param`, its simulator started (only that one)."""
    name = request.param
    sim = request.getfixturevalue(SIM_FIXTURES[name])
    if name == "connectwise":
        return Psa(name, sim, connection_body(sim), 16, (42, "Resolved"), (57, "Escalated"), (17, "In Progress"))
    if name == "autotask":
        return Psa(name, sim, autotask_body(sim), 1, (5, "Complete"), (11, "Escalated"), (8, "In Progress"))
    return Psa(name, sim, halo_body(sim), 1, (8, "Resolved"), (5, "Escalated"), (2, "In Progress"))


async def connected(psa: Psa, client: AsyncClient, db: AsyncSession) -> Psa:
    """`psa` with a paying account (owner + engineer) connected to it, the targets on the connection."""
    body = {**psa.body, "resolved_status_id": psa.resolved[0], "escalated_status_id": psa.escalated[0]}
    psa.engineer, psa.admin, psa.connection_id = await desk(client, db, body)
    return psa


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest) -> Psa:
    return pick_provider(request)


@pytest.fixture
async def psa(provider: Psa, client: AsyncClient, db: AsyncSession) -> Psa:
    return await connected(provider, client, db)


async def test_twenty_concurrent_posts_store_one_note_one_time_entry_and_verify_the_status(
    client: AsyncClient, psa: Psa,
) -> None:
    sid = await psa.open_session(client)
    answers = await asyncio.gather(*[psa.post(client, sid, time_minutes=45) for _ in range(20)])
    codes = sorted(r.status_code for r in answers)
    assert codes == [200] + [409] * 19, [r.text for r in answers if r.status_code != 409]
    [ok] = [r.json() for r in answers if r.status_code == 200]
    [note] = psa.notes()
    assert note.text.startswith(RESOLUTION["markdown"]) and not note.internal
    assert len(psa.note_posts()) == 1
    [(entry_id, hours)] = psa.time_entries()
    assert hours == 0.75 and ok["time_entry_id"] == entry_id
    if psa.name == "connectwise":  # the time entry IS the note: never a separate ticket note
        assert ok["external_id"] == entry_id and psa.state.notes(TICKET) == []
    assert ok["outcome"] == "resolved" and ok["session_status"] == "resolved" and ok["external_id"] == note.id
    assert (ok["verified_status_id"], ok["verified_status_name"]) == psa.resolved
    assert psa.status() == psa.resolved[0] and psa.status_changes_sent() == 1
    [log] = await psa.writebacks(client, sid)
    assert log["provider"] == psa.name and log["state"] == "completed" and log["status_change"] == "verified"
    assert log["verified_status_id"] == psa.resolved[0] and log["external_note_id"] == note.id
    assert log["id"].replace("-", "")[:16] in note.text  # the marker a retry searches for


async def test_an_escalation_package_is_an_internal_note_and_a_later_resolution_is_not(
    client: AsyncClient, psa: Psa,
) -> None:
    sid = await psa.open_session(client)
    resp = await psa.post(client, sid, "escalation-package")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["outcome"] == "escalated" and body["time_entry_id"] is None
    assert (body["verified_status_id"], body["verified_status_name"]) == psa.escalated
    [note] = psa.notes()
    assert note.internal and note.id == body["external_id"] and note.text.startswith(PACKAGE["markdown"])
    assert psa.time_entries() == [] and psa.status() == psa.escalated[0]
    # A senior may still resolve what was escalated: a second write-back, visible to the customer this time.
    resolved = await psa.post(client, sid)
    assert resolved.status_code == 200, resolved.text
    assert [n.internal for n in psa.notes()] == [True, False] and psa.status() == psa.resolved[0]
    assert [w["kind"] for w in await psa.writebacks(client, sid)] == ["escalation_package", "resolution_note"]


async def test_a_429_on_the_note_post_is_retried_after_retry_after_and_posts_one_note(
    client: AsyncClient, psa: Psa,
) -> None:
    sid = await psa.open_session(client)
    # Temporal's own first backoff is 1 s: waiting at least 2 s shows the Retry-After was honoured.
    await psa.switch(rate_limit_next=1, retry_after_s=2)
    started = time.monotonic()
    resp = await psa.post(client, sid)
    assert resp.status_code == 200, resp.text
    assert time.monotonic() - started >= 2
    statuses = psa.note_posts()
    assert statuses[0] == 429 and len(statuses) == 2 and statuses[1] in (200, 201), statuses
    assert len(psa.notes()) == 1 and resp.json()["verified_status_id"] == psa.resolved[0]


async def test_a_response_lost_after_the_note_was_stored_leaves_one_note(client: AsyncClient, psa: Psa) -> None:
    sid = await psa.open_session(client)
    await psa.switch(fail_after_note_store_next=1)
    resp = await psa.post(client, sid)
    assert resp.status_code == 200, resp.text
    [note] = psa.notes()
    assert psa.note_posts() == [500]  # the retry searched for the marker and found the note: no second POST
    assert resp.json()["external_id"] == note.id and resp.json()["verified_status_id"] == psa.resolved[0]
    [log] = await psa.writebacks(client, sid)
    assert log["note_reused"] is True and log["state"] == "completed" and log["status_change"] == "verified"
    assert log["id"].replace("-", "")[:16] in note.text


async def test_an_ignored_status_change_is_a_502_and_a_repost_verifies_without_a_second_note(
    client: AsyncClient, psa: Psa,
) -> None:
    sid = await psa.open_session(client)
    await psa.switch(ignore_status_change=True)
    resp = await psa.post(client, sid, time_minutes=15)
    assert resp.status_code == 502, resp.text
    detail = resp.json()["detail"]
    assert "did not verify" in detail and "stays active" in detail, detail
    assert psa.status() == psa.start
    stored = await client.get(f"{API}/{sid}", headers=psa.engineer)
    assert stored.json()["status"] == "active" and stored.json()["resolution_note_markdown"] is None
    [note] = psa.notes()
    [log] = await psa.writebacks(client, sid)
    assert log["state"] == "note_posted" and log["status_change"] == "did_not_verify"
    assert "did not verify" in log["last_error"] and log["external_note_id"] == note.id
    # Posting again retries only the status change: still one note and one time entry, now verified.
    await psa.switch(ignore_status_change=False)
    again = await psa.post(client, sid, time_minutes=15)
    assert again.status_code == 200, again.text
    assert again.json()["verified_status_id"] == psa.resolved[0] and again.json()["external_id"] == note.id
    assert psa.notes() == [note] and len(psa.note_posts()) == 1 and len(psa.time_entries()) == 1
    assert psa.status() == psa.resolved[0]
    [log] = await psa.writebacks(client, sid)
    assert log["state"] == "completed" and log["attempts"] == 2 and log["status_change"] == "verified"

