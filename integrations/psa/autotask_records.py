"""Autotask's TicketNotes and TimeEntries as the client writes and reads them.

Autotask's note and its time are two writes, so a retry looks for each apart: the note by its text, the time entry by
its `summaryNotes`, which therefore always keeps the text's last line (where the write-back puts its marker).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from integrations.psa import client_common
from integrations.psa.base import NoteType, PsaNote, PsaRejected

SUMMARY_NOTES_MAX = 8000  # TimeEntries.summaryNotes
MAX_MINUTES = 24 * 60
# A last line longer than this is text, not a reference: cutting keeps only the head then.
KEPT_LAST_LINE_MAX = 200
_CUT = "…"

# Who may read a note. Autotask's `publish` is about Autotask users: 1 "All Autotask Users" (what a resolution or
# a description is meant for), 2 the internal-only level (named "Internal Project Team" on most instances).
_PUBLISH_BY_TYPE = {NoteType.RESOLUTION: 1, NoteType.DESCRIPTION: 1, NoteType.INTERNAL_ANALYSIS: 2}
_PUBLISH_INTERNAL = 2
# Autotask has no note kind for "resolution": the title says which, and find_note reads it back from there.
_TITLE_BY_TYPE = {NoteType.RESOLUTION: "Resolution", NoteType.DESCRIPTION: "Problem description",
                  NoteType.INTERNAL_ANALYSIS: "Internal analysis"}
_NOTE_TYPE_GENERAL = 1


def note_body(text: str, note_type: NoteType) -> dict[str, Any]:
    """The TicketNote to POST: resolution and description published to all Autotask users, internal analysis not."""
    return {"title": _TITLE_BY_TYPE[note_type], "description": text, "noteType": _NOTE_TYPE_GENERAL,
            "publish": _PUBLISH_BY_TYPE[note_type]}


def note_from_item(item: dict[str, Any], time_entry_id: str | None = None) -> PsaNote:
    """A TicketNote as a PsaNote (its kind read back from publish and title), with the time entry logged for it."""
    if item.get("publish") == _PUBLISH_INTERNAL:
        note_type = NoteType.INTERNAL_ANALYSIS
    elif item.get("title") == _TITLE_BY_TYPE[NoteType.RESOLUTION]:
        note_type = NoteType.RESOLUTION
    else:
        note_type = NoteType.DESCRIPTION
    return PsaNote(id=str(item.get("id", "")), text=str(item.get("description") or ""), note_type=note_type,
                   created_at=client_common.parse_time(item.get("createDateTime")), time_entry_id=time_entry_id)


def note_id_order(item: dict[str, Any]) -> int:
    """A note's id for ordering (newest highest); -1 when it has none."""
    value = item.get("id")
    return value if isinstance(value, int) else -1


def check_minutes(minutes: object) -> None:
    """Refuse minutes Autotask cannot log (whole minutes within one day) before any request."""
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= MAX_MINUTES:
        raise PsaRejected(f"Autotask time is logged in whole minutes from 1 to {MAX_MINUTES}, not {minutes!r}")


def summary_notes(text: str) -> str:
    """`text` as summaryNotes: cut to fit, its last line (the write-back's marker) kept after the cut."""
    if len(text) <= SUMMARY_NOTES_MAX:
        return text
    head, newline, last = text.rpartition("\n")
    if not newline or not last.strip() or len(last) > KEPT_LAST_LINE_MAX:
        return text[: SUMMARY_NOTES_MAX - len(_CUT)] + _CUT
    kept = f"{_CUT}\n{last}"
    return head[: SUMMARY_NOTES_MAX - len(kept)] + kept


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def time_entry_body(ticket_id: int, text: str, minutes: int, ended_at: datetime,
                    resource_id: int | None) -> dict[str, Any]:
    """The TimeEntries row logging `minutes` ending at `ended_at` (naive means UTC) on the ticket."""
    end = ended_at if ended_at.tzinfo is not None else ended_at.replace(tzinfo=UTC)
    start = end - timedelta(minutes=minutes)
    entry: dict[str, Any] = {
        "ticketID": ticket_id,
        "dateWorked": start.astimezone(UTC).strftime("%Y-%m-%dT00:00:00Z"),
        "startDateTime": _utc_text(start), "endDateTime": _utc_text(end),
        "hoursWorked": minutes / 60, "summaryNotes": summary_notes(text), "isNonBillable": False,
    }
    if resource_id is not None:
        entry["resourceID"] = resource_id
    return entry


def ticket_query(ticket_id: int) -> dict[str, str]:
    """The `search` parameter of `GET TimeEntries/query` for one ticket's time entries."""
    # Filtered on the ticket only: the marker is matched here, since not every field is queryable on every instance.
    return {"search": json.dumps({"filter": [{"op": "eq", "field": "ticketID", "value": ticket_id}]},
                                 separators=(",", ":"))}


def newest_with_marker(items: list[dict[str, Any]], marker: str) -> str | None:
    """The id of the newest (highest id) time entry whose summaryNotes contains `marker`, if any."""
    ids = [item["id"] for item in items if isinstance(item.get("id"), int) and not isinstance(item["id"], bool)
           and marker in str(item.get("summaryNotes") or "")]
    return str(max(ids)) if ids else None
