"""Issue 24 over HTTP: on Autotask the note and its time entry are two writes, and whatever answer is lost or
refused, a write-back leaves exactly one note and exactly one time entry, and its answer names that entry."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from tests.psa.at_simulator import AutotaskSimulatorHandle
from tests.psa.test_psa_providers_http import TICKET, autotask_body, desk, post_with_time

NOTE_POST, TIME_POST = "POST Tickets/{id}/Notes", "POST TimeEntries"
COMPLETE = 5


def ticket_entries(sim: AutotaskSimulatorHandle) -> list[dict[str, Any]]:
    """The time entries logged on the demo ticket."""
    return sim.state.ticket_time_entries(TICKET)


def assert_once(sim: AutotaskSimulatorHandle, answer: dict[str, Any], minutes: int) -> None:
    """One note, one time entry of `minutes` carrying the note's marker, and the answer names both."""
    [note] = sim.state.notes(TICKET)
    [entry] = ticket_entries(sim)
    assert answer["external_id"] == str(note["id"]) and answer["time_entry_id"] == str(entry["id"])
    assert entry["hoursWorked"] == minutes / 60
    marker = note["description"].rsplit("\n", 1)[-1]
    assert marker.startswith("ResolutionFlow ref ") and entry["summaryNotes"].endswith(marker)
    assert answer["verified_status_id"] == COMPLETE


@pytest.mark.parametrize("lost", ["time entry answer", "note answer"])
async def test_a_lost_answer_still_logs_the_time_once(
    client: AsyncClient, db: AsyncSession, at_sim: AutotaskSimulatorHandle, lost: str,
) -> None:
    engineer, _, cid = await desk(client, db, autotask_body(at_sim, resolved_status_id=COMPLETE))
    if lost == "time entry answer":
        at_sim.state.switches.fail_after_time_entry_store_next = 1  # the entry is stored, the answer a bare 500
    else:
        at_sim.state.switches.fail_after_note_store_next = 1  # the note is stored; its time was never sent
    answer = await post_with_time(client, engineer, cid, 25)
    assert_once(at_sim, answer, 25)
    assert len(at_sim.state.requests_to(NOTE_POST)) == 1
    assert [r.status for r in at_sim.state.requests_to(TIME_POST)] == [500 if lost == "time entry answer" else 200]


async def test_a_refused_time_entry_is_logged_by_the_next_attempt(
    client: AsyncClient, db: AsyncSession, at_sim: AutotaskSimulatorHandle,
) -> None:
    """The note is stored, the time entry POST answers 429: the retry finds the note and logs the time, once."""
    engineer, _, cid = await desk(client, db, autotask_body(at_sim, resolved_status_id=COMPLETE))
    at_sim.state.switches.rate_limit_time_entry_next = 1
    answer = await post_with_time(client, engineer, cid, 40)
    assert_once(at_sim, answer, 40)
    assert len(at_sim.state.requests_to(NOTE_POST)) == 1
    assert [r.status for r in at_sim.state.requests_to(TIME_POST)] == [429, 200]
    assert len(at_sim.state.requests_to("GET TimeEntries/query")) >= 1  # looked for before it was logged again
