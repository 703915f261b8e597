"""Autotask's time is logged once (issue 24): the note and its time entry are two writes, so each is found again by
the write-back's marker before it is written. The client over real HTTP against the Autotask simulator."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from integrations.psa.autotask import AutotaskClient
from integrations.psa.autotask_records import KEPT_LAST_LINE_MAX, SUMMARY_NOTES_MAX, summary_notes
from integrations.psa.base import NoteType, PsaProvider, PsaRejected, PsaTimeUnknown, PsaUnavailable
from tests.psa import at_simulator

at_sim = at_simulator.at_sim  # the fixture, made visible to this module
Sim = at_simulator.AutotaskSimulatorHandle
TICKET, OTHER_TICKET = "48291", "48292"
ENDED = datetime(2026, 12, 5, 14, 30, tzinfo=UTC)
TIME_POST, TIME_QUERY = "POST TimeEntries", "GET TimeEntries/query"


@pytest.fixture
async def client(at_sim: Sim) -> AsyncIterator[AutotaskClient]:
    """A client that discovers the simulator's zone, closed after the test."""
    async with AutotaskClient(at_sim.config()) as c:
        yield c


def marked(text: str) -> tuple[str, str]:
    """A fresh marker and `text` carrying it on its last line, as the write-back appends it."""
    marker = f"ResolutionFlow ref {secrets.token_hex(8)}"
    return marker, f"{text}\n\n{marker}"


def test_summary_notes_keeps_the_last_line_when_it_cuts() -> None:
    marker, text = marked("x" * (SUMMARY_NOTES_MAX + 500))
    summary = summary_notes(text)
    assert len(summary) == SUMMARY_NOTES_MAX and summary.endswith("…\n" + marker) and summary.startswith("xxx")
    assert summary_notes("short\n" + marker) == "short\n" + marker  # what fits is not touched
    long_last = "y" * (KEPT_LAST_LINE_MAX + 1)
    cut = summary_notes("x" * SUMMARY_NOTES_MAX + "\n" + long_last)  # a long last line is text, not a reference
    assert len(cut) == SUMMARY_NOTES_MAX and cut.endswith("x…")


async def test_a_truncated_summary_keeps_the_marker_and_the_entry_is_found_by_it(
        client: AutotaskClient, at_sim: Sim) -> None:
    marker, text = marked("Rebuilt the profile. " * 500)  # ~10,500 characters: more than summaryNotes holds
    posted = await client.post_work(TICKET, text, NoteType.RESOLUTION, minutes=30, status_id=None, ended_at=ENDED)
    [entry] = at_sim.state.time_entries
    assert len(entry["summaryNotes"]) <= SUMMARY_NOTES_MAX < len(text)
    assert entry["summaryNotes"].endswith(marker) and entry["summaryNotes"].startswith("Rebuilt the profile.")
    [note] = at_sim.state.notes(48291)
    assert note["description"] == text  # the note itself is whole
    found = await client.find_note(TICKET, marker)
    assert found is not None and (found.id, found.time_entry_id) == (posted.note.id, str(entry["id"]))


async def test_find_note_reports_the_time_entry_only_when_one_carries_the_marker(
        client: AutotaskClient, at_sim: Sim) -> None:
    with_time, text = marked("Fixed")
    posted = await client.post_work(TICKET, text, NoteType.RESOLUTION, minutes=20, status_id=None, ended_at=ENDED)
    without_time, bare = marked("Escalated")
    await client.post_work(TICKET, bare, NoteType.INTERNAL_ANALYSIS, minutes=None, status_id=None, ended_at=ENDED)
    await client.post_work(OTHER_TICKET, f"elsewhere\n\n{without_time}", NoteType.RESOLUTION, minutes=5,
                           status_id=None, ended_at=ENDED)  # another ticket's entry carrying the marker
    found = await client.find_note(TICKET, with_time)
    assert found is not None and found.time_entry_id == posted.time_entry_id is not None
    plain = await client.find_note(TICKET, without_time)
    assert plain is not None and plain.time_entry_id is None
    assert await client.find_note(TICKET, "ResolutionFlow ref 0000000000000000") is None
    query = at_sim.state.requests_to(TIME_QUERY)[0]
    assert json.loads(query.query["search"]) == {"filter": [{"op": "eq", "field": "ticketID", "value": 48291}]}
    assert len(at_sim.state.requests_to(TIME_QUERY)) == 2  # only a found note asks for its time entry


async def test_log_time_finds_an_earlier_entry_before_posting(client: AutotaskClient, at_sim: Sim) -> None:
    provider: PsaProvider = client
    marker, text = marked("Replaced the switch")
    posted = await provider.post_work(TICKET, text, NoteType.RESOLUTION, minutes=45, status_id=None,
                                      ended_at=ENDED)
    again = await provider.log_time(TICKET, text, NoteType.RESOLUTION, marker=marker, minutes=45, ended_at=ENDED)
    assert again == posted.time_entry_id and len(at_sim.state.time_entries) == 1
    assert len(at_sim.state.requests_to(TIME_POST)) == 1


async def test_log_time_posts_once_for_a_note_without_time(client: AutotaskClient, at_sim: Sim) -> None:
    marker, text = marked("Note first, time later")
    await client.post_note(TICKET, text, NoteType.RESOLUTION)
    logged = await client.log_time(TICKET, text, NoteType.RESOLUTION, marker=marker, minutes=90, ended_at=ENDED)
    [entry] = at_sim.state.time_entries
    assert logged == str(entry["id"]) and entry["hoursWorked"] == 1.5 and entry["summaryNotes"] == text
    assert (entry["startDateTime"], entry["endDateTime"]) == ("2026-12-05T13:00:00Z", "2026-12-05T14:30:00Z")
    assert await client.log_time(TICKET, text, NoteType.RESOLUTION, marker=marker, minutes=90,
                                 ended_at=ENDED) == logged
    assert len(at_sim.state.requests_to(TIME_POST)) == 1 and len(at_sim.state.time_entries) == 1
    with pytest.raises(PsaRejected, match="from 1 to 1440"):
        await client.log_time(TICKET, text, NoteType.RESOLUTION, marker=marker, minutes=0, ended_at=ENDED)


async def test_a_lost_time_entry_answer_says_the_note_is_stored(client: AutotaskClient, at_sim: Sim) -> None:
    marker, text = marked("Answer lost")
    at_sim.state.switches.fail_after_time_entry_store_next = 1
    with pytest.raises(PsaTimeUnknown) as caught:
        await client.post_work(TICKET, text, NoteType.RESOLUTION, minutes=10, status_id=None, ended_at=ENDED)
    [note] = at_sim.state.notes(48291)
    [entry] = at_sim.state.time_entries
    assert caught.value.may_have_landed and caught.value.retryable and caught.value.note.id == str(note["id"])
    found = await client.find_note(TICKET, marker)
    assert found is not None and found.time_entry_id == str(entry["id"])


async def test_a_refused_time_entry_is_not_a_lost_answer(client: AutotaskClient, at_sim: Sim) -> None:
    marker, text = marked("Throttled")
    at_sim.state.switches.rate_limit_time_entry_next = 1
    with pytest.raises(PsaUnavailable) as caught:
        await client.post_work(TICKET, text, NoteType.RESOLUTION, minutes=10, status_id=None, ended_at=ENDED)
    assert not isinstance(caught.value, PsaTimeUnknown) and not caught.value.may_have_landed
    assert at_sim.state.time_entries == [] and len(at_sim.state.notes(48291)) == 1
    found = await client.find_note(TICKET, marker)
    assert found is not None and found.time_entry_id is None
    logged = await client.log_time(TICKET, text, NoteType.RESOLUTION, marker=marker, minutes=10, ended_at=ENDED)
    assert [str(e["id"]) for e in at_sim.state.time_entries] == [logged]


async def test_the_time_entry_query_follows_pages_on_the_zone_only(client: AutotaskClient, at_sim: Sim) -> None:
    at_sim.state.time_entries_page_size = 1
    for i in range(2):
        await client.post_work(TICKET, f"earlier {i}", NoteType.RESOLUTION, minutes=5, status_id=None,
                               ended_at=ENDED)
    marker, text = marked("Third")
    posted = await client.post_work(TICKET, text, NoteType.RESOLUTION, minutes=5, status_id=None, ended_at=ENDED)
    found = await client.find_note(TICKET, marker)
    assert found is not None and found.time_entry_id == posted.time_entry_id
    assert [r.query.get("page") for r in at_sim.state.requests_to(TIME_QUERY)] == [None, "2", "3"]
    with at_simulator.running_autotask_simulator() as other:
        at_sim.state.next_page_base = other.url
        with pytest.raises(PsaUnavailable, match="time entries of ticket 48291 is on another host"):
            await client.find_note(TICKET, marker)
        assert other.state.requests == []  # the credentials never went there


async def test_the_simulator_takes_only_a_ticket_filter(at_sim: Sim) -> None:
    c = at_sim.credentials
    headers = {"ApiIntegrationCode": c.integration_code, "UserName": c.username, "Secret": c.secret}
    async with httpx.AsyncClient(base_url=at_sim.zone_url, headers=headers) as http:
        bad = await http.get("/V1.0/TimeEntries/query", params={"search": '{"filter": []}'})
        listed = await http.get(f"{at_sim.url}/_simulator/tickets/48291/time_entries")
    assert bad.status_code == 500 and bad.json()["errors"] == ["search must have a filter"]
    assert listed.status_code == 200 and listed.json() == []
