"""What the HaloPSA simulator keeps: the API application it accepts, fault switches, issued tokens, tickets,
statuses and actions (the routes are in `halopsa_simulator`)."""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from integrations.psa.simulator_common import FaultSwitches, RecordedRequest, RequestLog

# Halo's built-in ticket statuses keep these ids on every instance; Closed (9) closes a ticket.
SEED_STATUSES = [(1, "New"), (2, "In Progress"), (4, "Waiting on Customer"), (5, "Escalated"), (8, "Resolved"),
                 (9, "Closed")]
DEMO_TICKET_ID = 48291
INCIDENT_TYPE_ID = 1
DEFAULT_PAGE_SIZE = 50


@dataclass
class HaloSimulatorCredentials:
    """The one API application (client credentials) the simulator accepts, and its tenant when hosted."""

    client_id: str
    client_secret: str
    tenant: str | None = None

    def __repr__(self) -> str:
        return (f"HaloSimulatorCredentials(client_id={self.client_id!r}, client_secret='***', "
                f"tenant={self.tenant!r})")


@dataclass
class HaloSimulatorSwitches(FaultSwitches):
    """Faults to inject; counters count down as calls consume them. An ignored status change: the action keeps
    its new_status, the ticket keeps its status; fail_after_note_store_next counts action POSTs."""

    token_lifetime_s: int = 3600  # expires_in of the tokens issued from now on
    expire_tokens_now: bool = False  # set through /_simulator/switches: every issued token stops working at once
    actions_answer_array: bool = False  # answer a POST /Actions with a one-element array instead of the object


class HaloRecordedRequest(RecordedRequest):
    """One request the simulator received (headers lower-cased; a token request's body without the secret)."""


def _now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]  # Halo's form: UTC, no zone


class HaloSimulatorState(RequestLog[HaloRecordedRequest]):
    """Tickets, statuses, actions, issued tokens, switches and the request log of one simulated instance."""

    def __init__(self, credentials: HaloSimulatorCredentials) -> None:
        self.credentials = credentials
        self.switches = HaloSimulatorSwitches()
        self.statuses: dict[int, dict[str, Any]] = {}
        self.tickets: dict[int, dict[str, Any]] = {}
        self.requests: list[HaloRecordedRequest] = []
        self.token_requests = 0  # every POST /auth/token, granted or not
        self._tokens: dict[str, float] = {}  # token -> time.monotonic() it expires at
        self._actions: dict[int, list[dict[str, Any]]] = {}
        for sid, name in SEED_STATUSES:
            self.add_status(sid, name)
        self.add_ticket(DEMO_TICKET_ID, "Outlook prompts for password after M365 migration", status_id=1)

    # -- tokens ----------------------------------------------------------------------------------

    def issue_token(self) -> tuple[str, int]:
        """A new access token and its lifetime in seconds."""
        lifetime = self.switches.token_lifetime_s
        token = secrets.token_urlsafe(32)
        self._tokens[token] = time.monotonic() + lifetime
        return token, lifetime

    def token_valid(self, token: str) -> bool:
        """Whether a bearer token was issued here and has neither expired nor been revoked."""
        expires_at = self._tokens.get(token)
        return expires_at is not None and time.monotonic() < expires_at

    def expire_tokens(self) -> None:
        """Make every issued token stop working (the next API call with one answers 401)."""
        self._tokens.clear()

    # -- tickets, statuses, actions --------------------------------------------------------------

    def add_status(self, status_id: int, name: str) -> None:
        """Add a ticket status."""
        self.statuses[status_id] = {"id": status_id, "name": name, "type": "ticket"}

    def add_ticket(self, ticket_id: int, summary: str, *, status_id: int,
                   tickettype_id: int = INCIDENT_TYPE_ID) -> None:
        """Add a ticket."""
        self.tickets[ticket_id] = {"id": ticket_id, "summary": summary, "status_id": status_id,
                                   "tickettype_id": tickettype_id}
        self._actions.setdefault(ticket_id, [])

    def set_status(self, ticket_id: int, status_id: int) -> None:
        """Change a ticket's status behind the API's back (what a workflow rule or an agent would do)."""
        ticket = self.tickets[ticket_id]
        if status_id not in self.statuses:
            raise ValueError(f"there is no status {status_id}")
        ticket["status_id"] = status_id

    def ticket_json(self, ticket_id: int) -> dict[str, Any]:
        """A ticket as `GET /api/Tickets/{id}` shows it (the fields the write-back reads)."""
        return dict(self.tickets[ticket_id])

    def actions(self, ticket_id: int) -> list[dict[str, Any]]:
        """The actions on a ticket, oldest first."""
        return [dict(a) for a in self._actions.get(ticket_id, [])]

    def add_action(self, ticket_id: int, fields: dict[str, Any]) -> dict[str, Any]:
        """Store an action; its id is the ticket's next action number, as in Halo. A new_status is applied unless
        the ignore_status_change switch is on (the action keeps it either way)."""
        actions = self._actions.setdefault(ticket_id, [])
        action = {
            "id": len(actions) + 1, "ticket_id": ticket_id, "note": fields.get("note", ""),
            "outcome": fields.get("outcome", ""), "hiddenfromuser": fields.get("hiddenfromuser", False),
            "timetaken": fields.get("timetaken", 0), "new_status": fields.get("new_status"),
            "who": "API application", "datetime": _now_text(),
        }
        actions.append(action)
        if action["new_status"] is not None and not self.switches.ignore_status_change:
            self.tickets[ticket_id]["status_id"] = action["new_status"]
        return dict(action)

    def update_action(self, ticket_id: int, action_id: int, note: str) -> dict[str, Any] | None:
        """Replace an action's note; None when the ticket has no such action."""
        for action in self._actions.get(ticket_id, []):
            if action["id"] == action_id:
                action["note"] = note
                return dict(action)
        return None

    # -- for /_simulator/state -------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Tickets with action counts and hours, switches, token and request counts, for `/_simulator/state`."""
        tickets = {}
        for tid in self.tickets:
            actions = self._actions.get(tid, [])
            tickets[str(tid)] = {**self.ticket_json(tid), "action_count": len(actions),
                                 "hours_logged": round(sum(a["timetaken"] for a in actions), 2)}
        return {"tickets": tickets, "switches": asdict(self.switches), "token_requests": self.token_requests,
                "requests": self.route_counts()}
