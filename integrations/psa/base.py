"""The PSA provider interface and the errors a provider raises.

One module per provider (ConnectWise, Autotask, HaloPSA). Statuses are listed *for a ticket*: ConnectWise's
belong to its board, Autotask's are one picklist, HaloPSA's follow the ticket's type.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class NoteType(StrEnum):
    """Who may read a note: the customer (description, resolution) or only the team (internal analysis)."""

    DESCRIPTION = "description"
    INTERNAL_ANALYSIS = "internal_analysis"
    RESOLUTION = "resolution"


@dataclass(frozen=True)
class PsaTicket:
    """The fields of a ticket we read (ids are strings: not every PSA numbers its tickets)."""

    id: str
    summary: str
    status_id: int | None
    status_name: str | None
    board_id: int | None = None  # ConnectWise: statuses belong to the ticket's board
    type_id: int | None = None  # HaloPSA: statuses belong to the ticket's type


@dataclass(frozen=True)
class PsaNote:
    """A note on a ticket."""

    id: str
    text: str
    note_type: NoteType
    created_at: datetime | None = None
    time_entry_id: str | None = None  # the note is (or carries) this time entry: ConnectWise's, HaloPSA's action


@dataclass(frozen=True)
class PsaPost:
    """What one write of work to a ticket left there: the note, the time entry (if time was logged) and
    whether the status change already went with it (HaloPSA's action carries it; the caller then only verifies)."""

    note: PsaNote
    time_entry_id: str | None = None
    status_sent: bool = False


@dataclass(frozen=True)
class PsaStatus:
    """A status a ticket may take."""

    id: int
    name: str
    closed: bool = False
    inactive: bool = False


class PsaError(Exception):
    """A provider call failed; `message` is the provider's own words, fit to show the engineer."""

    retryable = False

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


class PsaUnavailable(PsaError):
    """The provider could not be reached, timed out, or answered 5xx: worth retrying.

    `may_have_landed` is True when the request reached the provider and its outcome is unknown (no answer
    in time, a dropped connection, a 5xx): a write may still be applied, so it must not be sent blindly again.
    """

    retryable = True

    def __init__(self, message: str, *, status_code: int | None = None, may_have_landed: bool = False) -> None:
        super().__init__(message, status_code=status_code)
        self.may_have_landed = may_have_landed


class PsaRateLimited(PsaUnavailable):
    """429: retry after `retry_after` seconds (from the `Retry-After` header, when given)."""

    def __init__(self, message: str, *, retry_after: float | None, status_code: int | None = 429) -> None:
        super().__init__(message, status_code=status_code)
        self.retry_after = retry_after


class PsaTimeUnknown(PsaUnavailable):
    """The note was stored (`note`), but the time logged apart from it (Autotask) may or may not have been:
    look for that time entry before logging it again."""

    def __init__(self, message: str, *, note: PsaNote, status_code: int | None = None) -> None:
        super().__init__(message, status_code=status_code, may_have_landed=True)
        self.note = note


class PsaAuthFailed(PsaError):
    """The provider refused the credentials (401) or the API member's permissions (403)."""


class PsaNotFound(PsaError):
    """No such ticket, board or note (404)."""


class PsaRejected(PsaError):
    """Any other 4xx: the request was refused as sent; the message says why."""


class PsaSiteRefused(PsaRejected):
    """The connection's site may not be called from here (not https / not a public address / not a valid URL)."""


class PsaProvider(Protocol):
    """What the write-back needs from a PSA."""

    async def check(self) -> None:
        """Reach the PSA and authenticate; raises PsaUnavailable (unreachable) or PsaAuthFailed."""
        ...

    async def get_ticket(self, ticket_id: str) -> PsaTicket:
        """Read one ticket (PsaNotFound when it does not exist)."""
        ...

    async def post_note(self, ticket_id: str, text: str, note_type: NoteType) -> PsaNote:
        """Add a note with the given visibility."""
        ...

    async def update_note(self, ticket_id: str, note_id: str, text: str, *, time_entry: bool = False) -> None:
        """Replace the text of a note posted earlier (its visibility stays); `time_entry`: `note_id` is the time
        entry the note was logged as (PsaNote.time_entry_id == id), whose text is what changes."""
        ...

    async def find_note(self, ticket_id: str, marker: str) -> PsaNote | None:
        """The ticket's note whose text contains `marker`, if any (how a retry recognises its own post)."""
        ...

    async def post_work(self, ticket_id: str, text: str, note_type: NoteType, *, minutes: int | None,
                        status_id: int | None, ended_at: datetime) -> PsaPost:
        """Post the note, with `minutes` of work ending at `ended_at` logged as time carrying it (never a second
        copy of the note); a provider whose note can carry the status change (HaloPSA) sends `status_id` too."""
        ...

    async def log_time(self, ticket_id: str, text: str, note_type: NoteType, *, marker: str, minutes: int,
                       ended_at: datetime) -> str | None:
        """Log `minutes` for a note already posted (its text carries `marker`): the time entry carrying `marker` when
        one exists, else a new one; its id. None where the note itself is the time entry (nothing to log apart)."""
        ...

    async def update_status(self, ticket_id: str, status_id: int) -> None:
        """Ask the PSA to change the ticket's status (the caller re-reads the ticket to verify)."""
        ...

    async def list_statuses(self, ticket: PsaTicket) -> list[PsaStatus]:
        """The statuses this ticket may take."""
        ...

    async def aclose(self) -> None:
        """Release the provider's connections."""
        ...
