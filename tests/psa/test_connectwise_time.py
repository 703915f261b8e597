"""ConnectWise post_work over real HTTP against the simulator: one time entry whose notes are the note."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from integrations.psa.base import NoteType, PsaPost, PsaRejected, PsaUnavailable
from integrations.psa.connectwise import ConnectWiseClient
from tests.psa import cw_simulator

cw_sim = cw_simulator.cw_sim  # the fixture, made visible to this module
Sim = cw_simulator.SimulatorHandle
TICKET = "48291"
NOTES = "POST service/tickets/{id}/notes"
TIME_ENTRIES = "POST time/entries"
ENDED = datetime(2025, 3, 4, 15, 30, 0, tzinfo=UTC)
ADD_TO = ("addToDetailDescriptionFlag", "addToInternalAnalysisFlag", "addToResolutionFlag")


@pytest.fixture
async def client(cw_sim: Sim) -> AsyncIterator[ConnectWiseClient]:
    """A client for the simulator, closed after the test."""
    async with ConnectWiseClient(cw_sim.config()) as c:
        yield c


@pytest.mark.parametrize(
    ("note_type", "flag"),
    [
        (NoteType.RESOLUTION, "addToResolutionFlag"),
        (NoteType.INTERNAL_ANALYSIS, "addToInternalAnalysisFlag"),
        (NoteType.DESCRIPTION, "addToDetailDescriptionFlag"),
    ],
)
async def test_minutes_make_one_time_entry_carrying_the_note(
        client: ConnectWiseClient, cw_sim: Sim, note_type: NoteType, flag: str) -> None:
    post = await client.post_work(TICKET, "Reset the MFA token [rflow:t1]", note_type, minutes=45, status_id=42,
                                  ended_at=ENDED)
    [entry] = cw_sim.state.time_entries(48291)
    assert post == PsaPost(note=post.note, time_entry_id=str(entry["id"]), status_sent=False)
    assert (post.note.id, post.note.text, post.note.note_type) == (
        str(entry["id"]), "Reset the MFA token [rflow:t1]", note_type)
    assert (entry["timeStart"], entry["timeEnd"], entry["actualHours"]) == (
        "2025-03-04T14:45:00Z", "2025-03-04T15:30:00Z", 0.75)
    assert {f: entry[f] for f in ADD_TO} == {f: f == flag for f in ADD_TO}
    [sent] = cw_sim.state.requests_to(TIME_ENTRIES)
    assert sent.body["chargeToType"] == "ServiceTicket" and sent.body["chargeToId"] == 48291
    # The time entry is the note: no note of its own, and the status is left to the caller.
    assert cw_sim.state.requests_to(NOTES) == [] and cw_sim.state.notes(48291) == []
    assert cw_sim.state.tickets[48291]["status_id"] == 16


async def test_ended_at_in_another_zone_is_sent_as_utc(client: ConnectWiseClient, cw_sim: Sim) -> None:
    ended = datetime(2025, 3, 4, 23, 10, 0, tzinfo=timezone(timedelta(hours=-5)))
    await client.post_work(TICKET, "Fixed", NoteType.RESOLUTION, minutes=1440, status_id=None, ended_at=ended)
    [entry] = cw_sim.state.time_entries(48291)
    assert (entry["timeStart"], entry["timeEnd"], entry["actualHours"]) == (
        "2025-03-04T04:10:00Z", "2025-03-05T04:10:00Z", 24.0)


async def test_find_note_finds_the_time_entry_note_by_marker(client: ConnectWiseClient, cw_sim: Sim) -> None:
    await client.post_note(TICKET, "An engineer's own note", NoteType.INTERNAL_ANALYSIS)
    post = await client.post_work(TICKET, "Escalated to vendor [rflow:e9]", NoteType.INTERNAL_ANALYSIS, minutes=20,
                                  status_id=None, ended_at=ENDED)
    # Note and time entry are numbered apart: both are 1 here, so the id alone cannot tell which is meant.
    assert post.note.id == str(cw_sim.state.notes(48291)[0]["id"]) == "1"
    found = await client.find_note(TICKET, "[rflow:e9]", page_size=5)
    assert found is not None
    assert (found.id, found.text, found.note_type) == (post.time_entry_id, "Escalated to vendor [rflow:e9]",
                                                      NoteType.INTERNAL_ANALYSIS)
    # /notes does not list it (as in CW); allNotes does, as a TimeEntryNote.
    assert len(cw_sim.state.requests_to("GET service/tickets/{id}/notes")) == 1
    assert len(cw_sim.state.requests_to("GET service/tickets/{id}/allNotes")) == 1
    assert await client.find_note(TICKET, "[rflow:nope]") is None


async def test_find_note_pages_through_all_notes_and_takes_the_newest(client: ConnectWiseClient, cw_sim: Sim) -> None:
    for i in range(6):
        await client.post_work(TICKET, f"attempt {i} [rflow:p1]" if i in (1, 4) else f"other {i}",
                               NoteType.RESOLUTION, minutes=5, status_id=None, ended_at=ENDED)
    found = await client.find_note(TICKET, "[rflow:p1]", page_size=2)
    assert found is not None and found.text == "attempt 4 [rflow:p1]"
    pages = [r.query["page"] for r in cw_sim.state.requests_to("GET service/tickets/{id}/allNotes")]
    assert pages == ["1", "2", "3"]


async def test_lost_answer_leaves_one_entry_that_find_note_finds(client: ConnectWiseClient, cw_sim: Sim) -> None:
    cw_sim.state.switches.fail_after_note_store_next = 1
    with pytest.raises(PsaUnavailable, match="unexpected error") as caught:
        await client.post_work(TICKET, "Fixed [rflow:w2]", NoteType.RESOLUTION, minutes=30, status_id=None,
                               ended_at=ENDED)
    assert caught.value.may_have_landed and caught.value.status_code == 500
    found = await client.find_note(TICKET, "[rflow:w2]")
    [entry] = cw_sim.state.time_entries(48291)
    assert found is not None and found.id == str(entry["id"]) and found.note_type is NoteType.RESOLUTION
    assert len(cw_sim.state.requests_to(TIME_ENTRIES)) == 1 and cw_sim.state.notes(48291) == []


async def test_slow_post_that_times_out_may_have_landed(cw_sim: Sim) -> None:
    cw_sim.state.switches.note_post_delay_s = 1.0
    async with ConnectWiseClient(cw_sim.config(codebase="v4_6_release/", timeout_s=0.3)) as client:
        with pytest.raises(PsaUnavailable, match="did not answer") as caught:
            await client.post_work(TICKET, "Slow [rflow:s1]", NoteType.RESOLUTION, minutes=10, status_id=None,
                                   ended_at=ENDED)
    assert caught.value.may_have_landed


@pytest.mark.parametrize("minutes", [0, 1441, -5])
async def test_minutes_out_of_range_are_refused_without_a_request(
        client: ConnectWiseClient, cw_sim: Sim, minutes: int) -> None:
    with pytest.raises(PsaRejected, match="1 to 1440 minutes"):
        await client.post_work(TICKET, "x", NoteType.RESOLUTION, minutes=minutes, status_id=None, ended_at=ENDED)
    assert cw_sim.state.requests == []


async def test_naive_end_time_is_refused_without_a_request(client: ConnectWiseClient, cw_sim: Sim) -> None:
    with pytest.raises(PsaRejected, match="time zone"):
        await client.post_work(TICKET, "x", NoteType.RESOLUTION, minutes=5, status_id=None,
                               ended_at=datetime(2025, 3, 4, 15, 30))
    assert cw_sim.state.requests == []


async def test_without_minutes_a_plain_note_is_posted(client: ConnectWiseClient, cw_sim: Sim) -> None:
    post = await client.post_work(TICKET, "Closed as duplicate", NoteType.RESOLUTION, minutes=None, status_id=42,
                                  ended_at=ENDED)
    [note] = cw_sim.state.notes(48291)
    assert post.time_entry_id is None and not post.status_sent
    assert (post.note.id, post.note.note_type) == (str(note["id"]), NoteType.RESOLUTION) and note["resolutionFlag"]
    assert cw_sim.state.requests_to(TIME_ENTRIES) == [] and cw_sim.state.time_entries(48291) == []


async def test_update_note_of_a_time_entry_replaces_its_notes_only(client: ConnectWiseClient, cw_sim: Sim) -> None:
    note = await client.post_note(TICKET, "Someone's note", NoteType.DESCRIPTION)
    post = await client.post_work(TICKET, "First draft [rflow:u1]", NoteType.RESOLUTION, minutes=15, status_id=None,
                                  ended_at=ENDED)
    assert note.id == post.note.id  # the same number names a note and a time entry
    await client.update_note(TICKET, post.note.id, "Edited [rflow:u1]", time_entry=True)
    [entry] = cw_sim.state.time_entries(48291)
    assert entry["notes"] == "Edited [rflow:u1]" and entry["addToResolutionFlag"]
    assert [n["text"] for n in cw_sim.state.notes(48291)] == ["Someone's note"]
    found = await client.find_note(TICKET, "[rflow:u1]")
    assert found is not None and found.text == "Edited [rflow:u1]"
    with pytest.raises(PsaRejected, match="time entry ids are whole numbers"):
        await client.update_note(TICKET, "0", "x", time_entry=True)


async def test_simulator_refuses_a_time_entry_without_exactly_one_flag(client: ConnectWiseClient, cw_sim: Sim) -> None:
    body = {"chargeToType": "ServiceTicket", "chargeToId": 48291, "timeStart": "2025-03-04T14:00:00Z",
            "timeEnd": "2025-03-04T15:00:00Z", "notes": "x", "addToResolutionFlag": True,
            "addToInternalAnalysisFlag": True}
    with pytest.raises(PsaRejected, match="Exactly one of addToDetailDescriptionFlag"):
        await client.request("POST", "time/entries", json=body)
    with pytest.raises(PsaRejected, match="timeEnd must be after timeStart"):
        await client.request("POST", "time/entries", json={**body, "addToInternalAnalysisFlag": False,
                                                           "timeEnd": "2025-03-04T14:00:00Z"})
    with pytest.raises(PsaRejected, match="Service ticket 99999 was not found"):
        await client.request("POST", "time/entries", json={**body, "chargeToId": 99999})
    assert cw_sim.state.time_entries(48291) == []


async def test_simulator_control_routes_show_time_entries(client: ConnectWiseClient, cw_sim: Sim) -> None:
    await client.post_work(TICKET, "Fixed", NoteType.RESOLUTION, minutes=90, status_id=None, ended_at=ENDED)
    async with httpx.AsyncClient(base_url=cw_sim.url) as http:
        entries = (await http.get("/_simulator/tickets/48291/time-entries")).json()
        state = (await http.get("/_simulator/state")).json()
        missing = await http.get("/_simulator/tickets/1/time-entries")
    assert [e["notes"] for e in entries] == ["Fixed"]
    assert state["tickets"]["48291"]["time_entry_count"] == 1 and state["tickets"]["48291"]["hours_logged"] == 1.5
    assert state["requests"][TIME_ENTRIES] == 1 and missing.status_code == 404
