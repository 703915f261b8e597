"""Contracts of the PSA write-back: what the session workflow sends the `psa.*` activities and gets back.

The workflow never sees credentials: activities load the connection by id and decrypt it. A write-back
is one row (`psa_writebacks`) per attempt to post a document; the workflow passes its id around.
Sandbox-safe: pydantic, temporalio and the standard library.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal, get_args

from pydantic import BaseModel
from temporalio.common import RetryPolicy

from workflows.contracts.common import ActivityRef, persistence

PsaProviderName = Literal["connectwise", "autotask", "halopsa"]
PSA_PROVIDERS: tuple[str, ...] = get_args(PsaProviderName)
PROVIDER_LABELS: Mapping[str, str] = MappingProxyType(
    {"connectwise": "ConnectWise", "autotask": "Autotask", "halopsa": "HaloPSA"})
WritebackKind = Literal["resolution_note", "escalation_package"]  # the session documents
NoteVisibility = Literal["description", "internal_analysis", "resolution"]
StatusChange = Literal["verified", "did_not_verify", "skipped"]
WritebackState = Literal["pending", "note_posted", "completed"]
WRITEBACK_KINDS: tuple[str, ...] = get_args(WritebackKind)
STATUS_CHANGES: tuple[str, ...] = get_args(StatusChange)
WRITEBACK_STATES: tuple[str, ...] = get_args(WritebackState)

# The resolution note is for the customer; the escalation package is for the next engineer only.
NOTE_VISIBILITY: Mapping[str, NoteVisibility] = MappingProxyType({"resolution_note": "resolution",
                                                                 "escalation_package": "internal_analysis"})
TARGET_STATUS_PREFERENCE: Mapping[str, str] = MappingProxyType({"resolution_note": "cw_resolved_status_id",
                                                                "escalation_package": "cw_escalated_status_id"})
DEFAULT_STATUS_RECHECK_AFTER = timedelta(minutes=10)
STATUS_RECHECK_PREFERENCE = "psa_status_recheck_after"

# ApplicationError types the psa activities raise (non-retryable ones reach the engineer as 502/404).
PSA_AUTH_FAILED = "PsaAuthFailed"
PSA_NOT_FOUND = "PsaNotFound"
PSA_REJECTED = "PsaRejected"
PSA_UNAVAILABLE = "PsaUnavailable"
PSA_CONNECTION_GONE = "PsaConnectionGone"


def writeback_marker(writeback_id: uuid.UUID) -> str:
    """The reference appended to every note we post: how a retry finds the note it already posted."""
    return f"ResolutionFlow ref {writeback_id.hex[:16]}"


class TicketRef(BaseModel):
    """A ticket through one of the account's PSA connections."""

    account_id: uuid.UUID
    connection_id: uuid.UUID
    ticket_id: str


class TicketFacts(BaseModel):
    """What a read of the ticket returned."""

    ticket_id: str
    summary: str
    status_id: int | None = None
    status_name: str | None = None


class PostNoteInput(BaseModel):
    """Post the document as a note once: the activity first looks for `marker` when a post may have landed.

    The text is read from write-back `writeback_id`'s row, so a large note is not copied into the history again.
    """

    ticket: TicketRef
    writeback_id: uuid.UUID | None = None
    text: str | None = None  # only in histories recorded before the text was read by id
    visibility: NoteVisibility
    marker: str
    search_first: bool
    minutes: int | None = None  # time logged with the note, ending at `ended_at`
    ended_at: datetime | None = None
    status_id: int | None = None  # sent with the note where the PSA takes it in one write (HaloPSA)


class PostedNote(BaseModel):
    """The PSA's id of the note and whether it was found from an earlier attempt rather than posted now."""

    note_id: str
    reused: bool
    time_entry_id: str | None = None
    status_sent: bool = False  # the status change went with the note: only its verification is left


class UpdateNoteInput(BaseModel):
    """Replace the text of a note posted earlier with write-back `writeback_id`'s requested text, keeping its marker."""

    ticket: TicketRef
    note_id: str
    marker: str
    writeback_id: uuid.UUID | None = None
    text: str | None = None  # only in histories recorded before the text was read by id
    time_entry_id: str | None = None  # the note is this time entry's notes (ConnectWise): that is what changes


class ChangeStatusInput(BaseModel):
    """Ask the PSA to set the ticket's status (verification is a separate read)."""

    ticket: TicketRef
    status_id: int


class BeginWritebackInput(BaseModel):
    """Open (or resume) the write-back of `kind` for a session and read the plan for it."""

    session_id: uuid.UUID
    kind: WritebackKind
    markdown: str
    by_user_id: uuid.UUID
    at: datetime
    time_minutes: int | None = None


class WritebackPlan(BaseModel):
    """Where the note goes, whether it is already there, and which status to set (None: skipped, and why)."""

    writeback_id: uuid.UUID
    ticket: TicketRef
    marker: str
    note_id: str | None = None
    attempts: int
    target_status_id: int | None = None
    skipped_reason: str | None = None
    recheck_after_s: int
    provider_name: str = "ConnectWise"
    time_entry_id: str | None = None  # logged by an earlier attempt
    # The note is on the ticket and this attempt brings other text: the note is replaced, never posted twice.
    text_edited: bool = False
    posted_markdown: str | None = None  # only in histories recorded before `text_edited`

    def edits(self, markdown: str) -> bool:
        """Whether this attempt replaces the text of the note already posted."""
        if self.note_id is None:
            return False
        return self.text_edited or (self.posted_markdown is not None and self.posted_markdown != markdown)


class NotePostedInput(BaseModel):
    """Record the note's id on the write-back."""

    writeback_id: uuid.UUID
    note_id: str
    reused: bool
    at: datetime
    # The note's text was replaced by the requested text (an edited re-post); `markdown`: older histories.
    text_replaced: bool = False
    markdown: str | None = None
    time_entry_id: str | None = None


class StatusCheckedInput(BaseModel):
    """Record the status change's outcome: verified (with the re-read status) or did_not_verify."""

    writeback_id: uuid.UUID
    outcome: StatusChange
    status_id: int | None = None
    status_name: str | None = None
    error: str | None = None
    at: datetime


class CompleteWritebackInput(BaseModel):
    """Close the session with the document and mark the write-back completed (one transaction)."""

    writeback_id: uuid.UUID
    session_id: uuid.UUID
    kind: WritebackKind
    by_user_id: uuid.UUID
    recheck_at: datetime | None = None
    at: datetime
    markdown: str | None = None  # None: the write-back's requested text (older histories carry it here)


class PsaCloseResult(BaseModel):
    """How a post to the PSA closed the session (the fields of the HTTP answer)."""

    outcome: Literal["resolved", "escalated"]
    session_status: str
    state_version: int
    external_id: str
    time_entry_id: str | None = None
    verified_status_id: int | None = None
    verified_status_name: str | None = None
    status_transition_skipped_reason: str | None = None


class SessionClosed(BaseModel):
    """The session's status and version after the close."""

    session_status: str
    state_version: int


class StatusRecheck(BaseModel):
    """A verified status to re-read at `due_at` (workflow rules and customer replies can flip it)."""

    writeback_id: uuid.UUID
    ticket: TicketRef
    expected_status_id: int
    expected_status_name: str | None = None
    due_at: datetime


class RecheckResult(BaseModel):
    """Record the re-read (or why it failed); on drift a notification goes to who posted (its email returned)."""

    writeback_id: uuid.UUID
    status_id: int | None = None
    status_name: str | None = None
    error: str | None = None
    at: datetime


class DriftRecorded(BaseModel):
    """Whether the status moved, and the notification to email when it did."""

    drifted: bool
    notification_id: uuid.UUID | None = None
    email_to: str | None = None
    subject: str = ""
    body: str = ""


# PSA calls: a 429 waits Retry-After (the activity raises with next_retry_delay), 5xx/timeouts back off,
# 4xx and bad credentials are non-retryable and reach the engineer with the PSA's message.
PSA_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                        maximum_interval=timedelta(seconds=30), maximum_attempts=6,
                        non_retryable_error_types=[PSA_AUTH_FAILED, PSA_NOT_FOUND, PSA_REJECTED,
                                                   PSA_CONNECTION_GONE])
# One HTTP call to the PSA answers within this, or the attempt fails (and is retried).
PSA_CALL_TIMEOUT = timedelta(seconds=15)
PSA_START_TO_CLOSE = timedelta(seconds=30)
PSA_SCHEDULE_TO_CLOSE = timedelta(minutes=2)
# ConnectWise takes no idempotency key, so a note POST it did not answer may still be stored later (one was
# stored 20 s after it was sent). Until this long after the send, the post looks for the note rather than
# posting it again; an attempt sends a note only when it has the time left to wait this out.
NOTE_LANDING_WINDOW = timedelta(seconds=45)
NOTE_POLL_INTERVAL = timedelta(seconds=3)
# Search, POST, the landing window and the last search after it.
NOTE_START_TO_CLOSE = PSA_CALL_TIMEOUT * 3 + NOTE_LANDING_WINDOW
# Every PSA call of one post (note, status change, re-read) shares this; past it the post is a 502 saying the
# PSA did not answer. The caller waits a little longer, so it hears that 502 rather than a 503.
PSA_POST_BUDGET = timedelta(seconds=90)
PSA_RESULT_TIMEOUT = PSA_POST_BUDGET + timedelta(seconds=30)
# Opening a session from a ticket reads it within this, inside the create's 30 s answer.
PSA_INTAKE_READ_BUDGET = timedelta(seconds=20)


def _psa(name: str, out: type | None, start_to_close: timedelta = PSA_START_TO_CLOSE) -> ActivityRef[Any, Any]:
    return ActivityRef(name, out, start_to_close, PSA_RETRY, schedule_to_close=PSA_SCHEDULE_TO_CLOSE)


READ_TICKET: ActivityRef[TicketRef, TicketFacts] = _psa("psa.read_ticket", TicketFacts)
POST_NOTE: ActivityRef[PostNoteInput, PostedNote] = _psa("psa.post_note", PostedNote, NOTE_START_TO_CLOSE)
UPDATE_NOTE: ActivityRef[UpdateNoteInput, None] = _psa("psa.update_note", None)
CHANGE_STATUS: ActivityRef[ChangeStatusInput, None] = _psa("psa.change_status", None)

BEGIN_WRITEBACK = persistence("persistence.begin_psa_writeback", BeginWritebackInput, WritebackPlan)
NOTE_POSTED: ActivityRef[NotePostedInput, None] = persistence(
    "persistence.psa_note_posted", NotePostedInput, None)
STATUS_CHECKED: ActivityRef[StatusCheckedInput, None] = persistence(
    "persistence.psa_status_checked", StatusCheckedInput, None)
COMPLETE_WRITEBACK = persistence("persistence.complete_psa_writeback", CompleteWritebackInput, SessionClosed)
RECORD_RECHECK = persistence("persistence.psa_status_rechecked", RecheckResult, DriftRecorded)
