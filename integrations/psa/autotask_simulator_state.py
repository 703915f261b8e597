"""What the Autotask simulator keeps: credentials it accepts, fault switches, tickets, notes, time entries."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from integrations.psa.simulator_common import FaultSwitches, RecordedRequest, RequestLog

# (value, label, active): Autotask's system statuses keep these ids on every instance; Complete (5) closes a ticket.
SEED_STATUSES = [(1, "New", True), (5, "Complete", True), (7, "Waiting Customer", True), (8, "In Progress", True),
                 (11, "Escalated", True), (13, "Waiting Approval", False)]
DEMO_TICKET_ID = 48291
API_USER_RESOURCE_ID = 29682801  # the resource the API user itself is
TECHNICIAN_RESOURCE_ID = 29682885  # a technician the API user may impersonate
NOTES_PAGE_SIZE = 500  # Autotask's largest page
TIME_ENTRIES_PAGE_SIZE = 500


@dataclass
class AutotaskSimulatorCredentials:
    """The one API user (and integration code) the simulator accepts."""

    username: str
    secret: str
    integration_code: str

    def __repr__(self) -> str:
        return (f"AutotaskSimulatorCredentials(username={self.username!r}, secret='***', "
                f"integration_code={self.integration_code!r})")


@dataclass
class AutotaskSimulatorSwitches(FaultSwitches):
    """Faults to inject; counters and lists are used up as calls consume them. An ignored status PATCH answers
    200; rate_limit_next counts zone API calls; fail_after_note_store_next answers a bare 500 to note POSTs only
    (a time entry is another write: its own switches below)."""

    reject_next_with_errors: list[str] = field(default_factory=list)  # the next zone API call: 500 {"errors": these}
    fail_after_time_entry_store_next: int = 0  # the next N TimeEntries POSTs store the entry, then answer 500
    rate_limit_time_entry_next: int = 0  # the next N TimeEntries POSTs answer 429 (nothing stored)


class AutotaskRecordedRequest(RecordedRequest):
    """One request the simulator received (headers lower-cased)."""


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class AutotaskSimulatorState(RequestLog[AutotaskRecordedRequest]):
    """Tickets, the Status picklist, notes, time entries, switches and the request log of one simulated tenant."""

    def __init__(self, credentials: AutotaskSimulatorCredentials) -> None:
        self.credentials = credentials
        self.switches = AutotaskSimulatorSwitches()
        self.api_versions = ["1.0"]
        self.notes_page_size = NOTES_PAGE_SIZE
        self.time_entries_page_size = TIME_ENTRIES_PAGE_SIZE
        self.next_page_base: str | None = None  # where nextPageUrl points, when not the zone itself (a test's trap)
        self.resources = {API_USER_RESOURCE_ID: "API User", TECHNICIAN_RESOURCE_ID: "Sim Technician"}
        self.statuses: dict[int, dict[str, Any]] = {}
        self.tickets: dict[int, dict[str, Any]] = {}
        self.time_entries: list[dict[str, Any]] = []
        self.requests: list[AutotaskRecordedRequest] = []
        self._notes: dict[int, list[dict[str, Any]]] = {}
        self._next_id = 1
        for value, label, active in SEED_STATUSES:
            self.add_status(value, label, active=active)
        self.add_ticket(DEMO_TICKET_ID, "Outlook prompts for password after M365 migration", status_id=1)
        self.add_ticket(48292, "Printer on 3rd floor offline", status_id=8)

    def _new_id(self) -> int:
        value = self._next_id
        self._next_id += 1
        return value

    def add_status(self, value: int, label: str, *, active: bool = True) -> None:
        """Add a value to the ticket Status picklist."""
        self.statuses[value] = {"value": str(value), "label": label, "isDefaultValue": value == 1,
                                "sortOrder": len(self.statuses) + 1, "parentValue": "", "isActive": active,
                                "isSystem": value in (1, 5)}

    def add_ticket(self, ticket_id: int, title: str, *, status_id: int) -> None:
        """Add a ticket."""
        self.tickets[ticket_id] = {
            "id": ticket_id, "ticketNumber": f"T20261205.{ticket_id % 10000:04d}", "title": title,
            "status": status_id, "priority": 2, "queueID": 29683354, "companyID": 0, "createDate": _now_text(),
        }
        self._notes.setdefault(ticket_id, [])

    def set_status(self, ticket_id: int, status_id: int) -> None:
        """Change a ticket's status behind the API's back (what a workflow rule or a person would do)."""
        if status_id not in self.statuses:
            raise ValueError(f"status {status_id} is not in the Status picklist")
        self.tickets[ticket_id]["status"] = status_id

    def notes(self, ticket_id: int) -> list[dict[str, Any]]:
        """The notes stored on a ticket, oldest first."""
        return [dict(n) for n in self._notes.get(ticket_id, [])]

    def add_note(self, ticket_id: int, title: str, description: str, note_type: int, publish: int,
                 creator: int) -> dict[str, Any]:
        """Store a TicketNote as the API would."""
        now = _now_text()
        note = {"id": self._new_id(), "ticketID": ticket_id, "title": title, "description": description,
                "noteType": note_type, "publish": publish, "createDateTime": now, "lastActivityDate": now,
                "creatorResourceID": creator}
        self._notes.setdefault(ticket_id, []).append(note)
        return dict(note)

    def update_note(self, ticket_id: int, note_id: int, description: str) -> bool:
        """Replace a note's description; False when the ticket has no such note."""
        for note in self._notes.get(ticket_id, []):
            if note["id"] == note_id:
                note["description"], note["lastActivityDate"] = description, _now_text()
                return True
        return False

    def add_time_entry(self, entry: dict[str, Any]) -> int:
        """Store a TimeEntries row (already validated); its new id."""
        item_id = self._new_id()
        self.time_entries.append({"id": item_id, **entry})
        return item_id

    def ticket_time_entries(self, ticket_id: int) -> list[dict[str, Any]]:
        """The time entries logged on a ticket, oldest first."""
        return [dict(e) for e in self.time_entries if e.get("ticketID") == ticket_id]

    def picklist_fields(self) -> list[dict[str, Any]]:
        """The ticket fields as `Tickets/entityInformation/fields` lists them (the few the write-back reads)."""
        plain = {"isPickList": False, "picklistValues": None, "isReadOnly": False, "isQueryable": True}
        return [
            {"name": "id", "dataType": "long", "isRequired": True, **plain, "isReadOnly": True},
            {"name": "title", "dataType": "string", "length": 255, "isRequired": True, **plain},
            {"name": "status", "dataType": "integer", "isRequired": True, "isPickList": True, "isReadOnly": False,
             "isQueryable": True, "picklistValues": list(self.statuses.values())},
        ]

    def snapshot(self) -> dict[str, Any]:
        """Tickets with note counts, time entries, switches and request counts, for `/_simulator/state`."""
        return {
            "tickets": {str(tid): {**t, "status_name": self.statuses.get(t["status"], {}).get("label"),
                                   "note_count": len(self._notes.get(tid, []))} for tid, t in self.tickets.items()},
            "time_entries": list(self.time_entries),
            "switches": asdict(self.switches),
            "requests": self.route_counts(),
        }
