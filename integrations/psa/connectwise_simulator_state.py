"""The ConnectWise simulator's state: credentials, fault switches, the request log, and the tickets, notes and
time entries of one simulated site (the routes are in `connectwise_simulator`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from integrations.psa.simulator_common import FaultSwitches, RecordedRequest, RequestLog

SEED_STATUSES = [(16, "New", False), (17, "In Progress", False), (42, "Resolved", True), (57, "Escalated", False),
                 (60, "Closed", True)]
CW_TIME = "%Y-%m-%dT%H:%M:%SZ"
NOTE_FLAGS = ("detailDescriptionFlag", "internalAnalysisFlag", "resolutionFlag")
# A time entry's add-to flags, in NOTE_FLAGS' order: where its notes show on the ticket.
TIME_ENTRY_FLAGS = ("addToDetailDescriptionFlag", "addToInternalAnalysisFlag", "addToResolutionFlag")


def _now() -> str:
    return datetime.now(UTC).strftime(CW_TIME)


@dataclass
class SimulatorCredentials:
    """The one API member (and clientId) the simulator accepts."""

    company_id: str
    public_key: str
    private_key: str
    client_id: str

    def __repr__(self) -> str:
        return (f"SimulatorCredentials(company_id={self.company_id!r}, public_key={self.public_key!r}, "
                f"private_key='***', client_id={self.client_id!r})")


@dataclass
class SimulatorSwitches(FaultSwitches):
    """Faults to inject; counters count down as calls consume them. A status PATCH that is ignored answers 200;
    fail_after_note_store_next counts note and time-entry POSTs; delay_s holds every ConnectWise route."""

    note_post_delay_s: float = 0.0  # a note or time-entry POST is stored after this many seconds, then answered


class SimulatorState(RequestLog[RecordedRequest]):
    """Tickets, boards, notes, time entries, switches and the request log of one simulated site."""

    def __init__(self) -> None:
        self.switches = SimulatorSwitches()
        self.boards: dict[int, dict[str, Any]] = {}
        self.tickets: dict[int, dict[str, Any]] = {}
        self._notes: dict[int, list[dict[str, Any]]] = {}
        # Numbered apart from notes, as in CW: a note and a time entry may have the same id.
        self._time_entries: dict[int, dict[str, Any]] = {}
        # Per ticket, its notes and time entries in the order they were made (what allNotes lists).
        self._timeline: dict[int, list[dict[str, Any]]] = {}
        self._next_note_id = 1
        self._next_time_entry_id = 1
        self.requests: list[RecordedRequest] = []
        self.add_board(1, "Service Board")
        for sid, name, closed in SEED_STATUSES:
            self.add_status(1, sid, name, closed=closed)
        self.add_ticket(48291, "Outlook prompts for password after M365 migration", status_id=16)
        self.add_ticket(48292, "Printer on 3rd floor offline", status_id=17)
        self.add_ticket(48293, "New starter needs VPN access", status_id=16)

    def add_board(self, board_id: int, name: str) -> None:
        """Add an empty service board."""
        self.boards[board_id] = {"id": board_id, "name": name, "statuses": {}}

    def add_status(self, board_id: int, status_id: int, name: str, *, closed: bool = False,
                   inactive: bool = False) -> None:
        """Add a status to a board."""
        self.boards[board_id]["statuses"][status_id] = {
            "id": status_id, "name": name, "board": {"id": board_id}, "closedStatus": closed, "inactive": inactive,
        }

    def add_ticket(self, ticket_id: int, summary: str, *, status_id: int, board_id: int = 1) -> None:
        """Add a ticket on a board."""
        self.tickets[ticket_id] = {"id": ticket_id, "summary": summary, "board_id": board_id, "status_id": status_id}
        self._notes.setdefault(ticket_id, [])
        self._timeline.setdefault(ticket_id, [])

    def set_status(self, ticket_id: int, status_id: int) -> None:
        """Change a ticket's status behind the API's back (what a workflow rule or a person would do)."""
        ticket = self.tickets[ticket_id]
        if status_id not in self.boards[ticket["board_id"]]["statuses"]:
            raise ValueError(f"status {status_id} is not on board {ticket['board_id']}")
        ticket["status_id"] = status_id

    def notes(self, ticket_id: int) -> list[dict[str, Any]]:
        """The notes stored on a ticket, oldest first (time entries' notes are not among them, as in CW)."""
        return list(self._notes.get(ticket_id, []))

    def add_note(self, ticket_id: int, text: str, flags: dict[str, bool]) -> dict[str, Any]:
        """Store a note as the API would."""
        note = {
            "id": self._next_note_id, "ticketId": ticket_id, "text": text, **flags,
            "dateCreated": _now(), "createdBy": "api-member",
        }
        self._next_note_id += 1
        self._notes.setdefault(ticket_id, []).append(note)
        self._timeline.setdefault(ticket_id, []).append(note)
        return dict(note)

    def update_note(self, ticket_id: int, note_id: int, text: str) -> dict[str, Any] | None:
        """Replace a note's text; None when the ticket has no such note."""
        for note in self._notes.get(ticket_id, []):
            if note["id"] == note_id:
                note["text"] = text
                return dict(note)
        return None

    def time_entries(self, ticket_id: int) -> list[dict[str, Any]]:
        """The time entries charged to a ticket, oldest first."""
        return [dict(e) for e in self._time_entries.values() if e["chargeToId"] == ticket_id]

    def add_time_entry(self, ticket_id: int, start: datetime, end: datetime, notes: str,
                       flags: dict[str, bool]) -> dict[str, Any]:
        """Store a time entry charged to a service ticket, as `POST time/entries` would."""
        entry: dict[str, Any] = {
            "id": self._next_time_entry_id, "chargeToType": "ServiceTicket", "chargeToId": ticket_id,
            "ticket": {"id": ticket_id, "summary": self.tickets[ticket_id]["summary"]},
            "member": {"identifier": "api-member"}, "timeStart": start.strftime(CW_TIME),
            "timeEnd": end.strftime(CW_TIME), "actualHours": round((end - start).total_seconds() / 3600, 2),
            "notes": notes, **flags, "dateEntered": _now(),
        }
        self._next_time_entry_id += 1
        self._time_entries[entry["id"]] = entry
        self._timeline.setdefault(ticket_id, []).append(entry)
        return dict(entry)

    def update_time_entry(self, entry_id: int, notes: str) -> dict[str, Any] | None:
        """Replace a time entry's notes; None when there is no such entry."""
        entry = self._time_entries.get(entry_id)
        if entry is None:
            return None
        entry["notes"] = notes
        return dict(entry)

    def all_notes(self, ticket_id: int) -> list[dict[str, Any]]:
        """What `service/tickets/{id}/allNotes` lists: ticket notes and time entries' notes, oldest first."""
        listed = []
        for record in self._timeline.get(ticket_id, []):
            if "chargeToId" not in record:
                listed.append({**record, "noteType": "TicketNote", "ticket": {"id": ticket_id}})
                continue
            flags = {note_flag: record[time_flag] for note_flag, time_flag in zip(NOTE_FLAGS, TIME_ENTRY_FLAGS,
                                                                                   strict=True)}
            listed.append({
                "id": record["id"], "noteType": "TimeEntryNote", "timeEntryId": record["id"],
                "ticket": {"id": ticket_id}, "text": record["notes"], **flags, "timeStart": record["timeStart"],
                "timeEnd": record["timeEnd"], "dateCreated": record["dateEntered"], "createdBy": "api-member",
            })
        return listed

    def ticket_json(self, ticket_id: int) -> dict[str, Any]:
        """A ticket as CW's `service/tickets/{id}` shows it (the fields the write-back reads)."""
        t = self.tickets[ticket_id]
        board = self.boards[t["board_id"]]
        status = board["statuses"].get(t["status_id"], {"name": None})
        return {
            "id": t["id"], "summary": t["summary"],
            "board": {"id": board["id"], "name": board["name"]},
            "status": {"id": t["status_id"], "name": status["name"]},
        }

    def snapshot(self) -> dict[str, Any]:
        """Tickets with note and time-entry counts and hours, switches and request counts, for `/_simulator/state`."""
        tickets = {}
        for tid in self.tickets:
            entries = self.time_entries(tid)
            tickets[str(tid)] = {
                **self.ticket_json(tid), "note_count": len(self._notes.get(tid, [])),
                "time_entry_count": len(entries), "hours_logged": round(sum(e["actualHours"] for e in entries), 2),
            }
        return {"tickets": tickets, "switches": asdict(self.switches), "requests": self.route_counts()}
