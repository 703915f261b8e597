"""update_note's `time_entry` flag (the write-back sets it when the note's id is its time entry's) on the providers
whose note is never a separate time entry to patch: Autotask and HaloPSA, over real HTTP against their simulators."""

from __future__ import annotations

from datetime import UTC, datetime

from integrations.psa.autotask import AutotaskClient
from integrations.psa.base import NoteType, PsaProvider
from integrations.psa.halopsa import HaloClient
from tests.psa import at_simulator, halo_simulator

at_sim = at_simulator.at_sim  # the fixtures, made visible to this module
halo_sim = halo_simulator.halo_sim
ENDED = datetime(2026, 12, 5, 14, 30, tzinfo=UTC)


async def test_autotask_edits_the_ticket_note_and_leaves_the_time_entry(
        at_sim: at_simulator.AutotaskSimulatorHandle) -> None:
    async with AutotaskClient(at_sim.config()) as client:
        provider: PsaProvider = client
        posted = await provider.post_work("48291", "draft", NoteType.RESOLUTION, minutes=30, status_id=None,
                                          ended_at=ENDED)
        await provider.update_note("48291", posted.note.id, "final", time_entry=True)
    [note] = at_sim.state.notes(48291)
    [entry] = at_sim.state.time_entries
    assert (note["id"], note["description"]) == (int(posted.note.id), "final")
    assert entry["summaryNotes"] == "draft" and at_sim.state.requests_to("PATCH Tickets/{id}/Notes")


async def test_halopsa_edits_the_action_that_is_both_note_and_time(
        halo_sim: halo_simulator.HaloSimulatorHandle) -> None:
    async with HaloClient(halo_sim.config()) as client:
        provider: PsaProvider = client
        posted = await provider.post_work("48291", "draft", NoteType.RESOLUTION, minutes=30, status_id=None,
                                          ended_at=ENDED)
        assert posted.time_entry_id == posted.note.id
        await provider.update_note("48291", posted.note.id, "final", time_entry=True)
    [action] = halo_sim.state.actions(48291)
    assert (action["note"], action["timetaken"]) == ("final", 0.5)
