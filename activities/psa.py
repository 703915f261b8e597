"""PSA calls for the write-back: the `psa.*` activities.

Each call loads the connection by id and decrypts its credentials here, so no secret ever enters a
workflow payload or history. Provider errors become ApplicationErrors whose type tells Temporal
whether to retry (5xx, timeouts, 429 after its Retry-After) or not (4xx, bad credentials).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from core.credentials import CredentialCipher, CredentialsUnreadable
from db.repositories.psa import PsaConnectionRepository, PsaWritebackRepository
from integrations.psa.base import (
    NoteType,
    PsaAuthFailed,
    PsaError,
    PsaNote,
    PsaNotFound,
    PsaProvider,
    PsaRateLimited,
    PsaTimeUnknown,
    PsaUnavailable,
)
from integrations.psa.egress import EgressPolicy, pinned_client
from integrations.psa.factory import ConnectionSettings, build_provider
from workflows.contracts.psa import (
    CHANGE_STATUS,
    NOTE_LANDING_WINDOW,
    NOTE_POLL_INTERVAL,
    POST_NOTE,
    PSA_AUTH_FAILED,
    PSA_CALL_TIMEOUT,
    PSA_CONNECTION_GONE,
    PSA_NOT_FOUND,
    PSA_REJECTED,
    PSA_UNAVAILABLE,
    READ_TICKET,
    UPDATE_NOTE,
    ChangeStatusInput,
    PostedNote,
    PostNoteInput,
    TicketFacts,
    TicketRef,
    UpdateNoteInput,
)

log = logging.getLogger(__name__)
PROVIDER_CACHE_SIZE = 256
# Below the activity's start-to-close, so a hung PSA fails the attempt (and it retries) rather than the activity.
PSA_HTTP_TIMEOUT_S = PSA_CALL_TIMEOUT.total_seconds()
# After the landing window one more search runs (up to a call's timeout), and the answer must get back.
_LANDING_NEEDS = NOTE_LANDING_WINDOW + PSA_CALL_TIMEOUT + timedelta(seconds=2)


def application_error(exc: PsaError) -> ApplicationError:
    """The ApplicationError Temporal acts on for a provider error (retryable or not, and when)."""
    if isinstance(exc, PsaRateLimited):
        delay = timedelta(seconds=exc.retry_after) if exc.retry_after is not None else None
        return ApplicationError(exc.message, type=PSA_UNAVAILABLE, next_retry_delay=delay)
    if isinstance(exc, PsaUnavailable):
        return ApplicationError(exc.message, type=PSA_UNAVAILABLE)
    kind = PSA_AUTH_FAILED if isinstance(exc, PsaAuthFailed) else (
        PSA_NOT_FOUND if isinstance(exc, PsaNotFound) else PSA_REJECTED)
    return ApplicationError(exc.message, type=kind, non_retryable=True)


class PsaActivities:
    """Reads tickets, posts notes and changes statuses through the account's PSA connection."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession], cipher: CredentialCipher | None, *,
                 egress: EgressPolicy, http: httpx.AsyncClient | None = None) -> None:
        self._session_factory = session_factory
        self._cipher = cipher
        self._egress = egress
        self._http = http  # None: one pinned client is made on first use and shared for the worker's life
        # One provider per connection (it caches what it discovered, e.g. ConnectWise's codebase); bounded.
        self._providers: OrderedDict[uuid.UUID, PsaProvider] = OrderedDict()

    def all(self) -> list[Any]:
        """Every activity of this class, for the worker."""
        return [self.read_ticket, self.post_note, self.update_note, self.change_status]

    @activity.defn(name=READ_TICKET.name)
    async def read_ticket(self, ref: TicketRef) -> TicketFacts:
        """The ticket's summary and current status."""
        async with self._provider(ref) as provider:
            ticket = await provider.get_ticket(ref.ticket_id)
        return TicketFacts(ticket_id=ticket.id, summary=ticket.summary, status_id=ticket.status_id,
                           status_name=ticket.status_name)

    @activity.defn(name=POST_NOTE.name)
    async def post_note(self, inp: PostNoteInput) -> PostedNote:
        """Post the note, unless an earlier attempt already did (found by its marker): never two copies.

        A POST whose outcome is unknown (no answer in time, a dropped connection, a 5xx) may still be stored:
        the attempt looks for it until NOTE_LANDING_WINDOW after the send and only then fails, so the next
        attempt (which searches first) never races a note still on its way. Where the time is a write of its own
        (Autotask), a note found without it gets its time logged, once: the time entry is looked for first too.
        """
        began = time.monotonic()
        text = await self._text(inp.writeback_id, inp.text)
        async with self._provider(inp.ticket) as provider:
            if inp.search_first or activity.info().attempt > 1:
                found = await provider.find_note(inp.ticket.ticket_id, inp.marker)
                if found is not None:
                    log.info("ticket %s: note %s from an earlier attempt reused", inp.ticket.ticket_id, found.id)
                    wanted = _with_marker(text, inp.marker)
                    if found.text.strip() != wanted.strip():  # an earlier post's text: the edit replaces it
                        await provider.update_note(inp.ticket.ticket_id, found.id, wanted,
                                                   time_entry=found.time_entry_id == found.id)
                    return await _reused_with_time(provider, inp, wanted, found, began)
            _require_time_to_land(time.monotonic() - began)
            sent = time.monotonic()
            try:
                posted = await provider.post_work(
                    inp.ticket.ticket_id, _with_marker(text, inp.marker), NoteType(inp.visibility),
                    minutes=inp.minutes, status_id=inp.status_id, ended_at=inp.ended_at or datetime.now(UTC))
            except PsaUnavailable as exc:
                if not exc.may_have_landed:
                    raise
                # A stored note whose time entry's fate is unknown: wait out that POST (sent before now) instead.
                since = time.monotonic() if isinstance(exc, PsaTimeUnknown) else sent
                found = await _await_landing(provider, inp, since, exc)
                return await _reused_with_time(provider, inp, _with_marker(text, inp.marker), found, began)
        log.info("ticket %s: %s note %s posted%s", inp.ticket.ticket_id, inp.visibility, posted.note.id,
                 f" with {inp.minutes} min as time entry {posted.time_entry_id}" if posted.time_entry_id else "")
        return PostedNote(note_id=posted.note.id, reused=False, time_entry_id=posted.time_entry_id,
                          status_sent=posted.status_sent)

    @activity.defn(name=UPDATE_NOTE.name)
    async def update_note(self, inp: UpdateNoteInput) -> None:
        """Replace a posted note's text with the edited document (the same note: never a second one)."""
        text = _with_marker(await self._text(inp.writeback_id, inp.text), inp.marker)
        async with self._provider(inp.ticket) as provider:
            await provider.update_note(inp.ticket.ticket_id, inp.note_id, text,
                                       time_entry=inp.time_entry_id == inp.note_id)
        log.info("ticket %s: note %s replaced by an edited re-post", inp.ticket.ticket_id, inp.note_id)

    @activity.defn(name=CHANGE_STATUS.name)
    async def change_status(self, inp: ChangeStatusInput) -> None:
        """Ask for the status change; the workflow re-reads the ticket to verify it."""
        async with self._provider(inp.ticket) as provider:
            await provider.update_status(inp.ticket.ticket_id, inp.status_id)

    async def _text(self, writeback_id: uuid.UUID | None, carried: str | None) -> str:
        """The text to post: read from the write-back row by id (older histories carried it in the input)."""
        if carried is not None:
            return carried
        if writeback_id is None:
            raise ApplicationError("A note post names neither its write-back nor its text", non_retryable=True)
        async with self._session_factory() as session:
            text = await PsaWritebackRepository(session).requested_text(writeback_id)
        if text is None:
            raise ApplicationError(f"write-back {writeback_id} no longer exists", type=PSA_CONNECTION_GONE,
                                   non_retryable=True)
        return text

    @asynccontextmanager
    async def _provider(self, ref: TicketRef) -> AsyncIterator[PsaProvider]:
        async with self._session_factory() as session:
            row = await PsaConnectionRepository(session).live(ref.connection_id)
        if row is None or row.account_id != ref.account_id:
            raise ApplicationError("The session's PSA connection was deleted", type=PSA_CONNECTION_GONE,
                                   non_retryable=True)
        provider = self._providers.get(row.id)
        if provider is None:
            if self._cipher is None:
                raise ApplicationError("CREDENTIALS_KEY is not set on the worker: PSA credentials cannot be read",
                                       type=PSA_CONNECTION_GONE, non_retryable=True)
            try:
                secrets = self._cipher.decrypt(row.credentials_encrypted)
            except CredentialsUnreadable as exc:
                raise ApplicationError(str(exc), type=PSA_CONNECTION_GONE, non_retryable=True) from exc
            if self._http is None:
                self._http = pinned_client(self._egress, PSA_HTTP_TIMEOUT_S)
            provider = build_provider(ConnectionSettings.of(row), secrets, self._http)
            self._providers[row.id] = provider
            while len(self._providers) > PROVIDER_CACHE_SIZE:
                self._providers.popitem(last=False)
        self._providers.move_to_end(row.id)
        try:
            yield provider
        except PsaError as exc:
            log.warning("PSA call on connection %s failed (attempt %d): %s", row.id, activity.info().attempt,
                        exc.message)
            raise application_error(exc) from exc


async def _reused_with_time(provider: PsaProvider, inp: PostNoteInput, text: str, found: PsaNote,
                            began: float) -> PostedNote:
    """The reused note, its time logged now when it has none yet (Autotask: the note and its time are two writes)."""
    # A status that went with the note is verified (and set again) by the workflow.
    time_entry_id = found.time_entry_id
    if time_entry_id is None and inp.minutes is not None:
        time_entry_id = await _log_time_once(provider, inp, text, found, inp.minutes, began)
    return PostedNote(note_id=found.id, reused=True, time_entry_id=time_entry_id)


async def _log_time_once(provider: PsaProvider, inp: PostNoteInput, text: str, found: PsaNote, minutes: int,
                         began: float) -> str | None:
    """Log the note's time (the provider looks for an earlier attempt's entry first); a POST with an unknown
    outcome is waited out like a note's, so the next attempt never races it."""
    ticket = inp.ticket.ticket_id
    if _time_left(time.monotonic() - began) < _LANDING_NEEDS.total_seconds():
        # Not enough of this attempt is left to wait a lost answer out: the next attempt logs it (searching first).
        raise PsaUnavailable(f"the time for note {found.id} is logged on the next attempt")
    try:
        entry_id = await provider.log_time(ticket, text, NoteType(inp.visibility), marker=inp.marker,
                                           minutes=minutes, ended_at=inp.ended_at or datetime.now(UTC))
    except PsaUnavailable as exc:
        if not exc.may_have_landed:
            raise
        landed = await _await_landing(provider, inp, time.monotonic(),
                                      PsaTimeUnknown(exc.message, note=found, status_code=exc.status_code))
        if landed.time_entry_id is None:
            raise PsaUnavailable(f"{exc.message}, and the time entry had not appeared after "
                                 f"{NOTE_LANDING_WINDOW.total_seconds():g}s") from exc
        entry_id = landed.time_entry_id
    log.info("ticket %s: %s min logged for note %s as time entry %s", ticket, minutes, found.id, entry_id)
    return entry_id


def _with_marker(text: str, marker: str) -> str:
    return text if marker in text else f"{text}\n\n{marker}"


def _time_left(elapsed_s: float) -> float:
    """Seconds this attempt has left, `elapsed_s` after it began."""
    info = activity.info()
    # Server times are compared only with server times; the attempt's own age is measured here.
    budgets = [info.start_to_close_timeout]
    if info.schedule_to_close_timeout is not None:
        budgets.append(info.scheduled_time + info.schedule_to_close_timeout - info.started_time)
    return min(b.total_seconds() for b in budgets if b is not None) - elapsed_s


def _require_time_to_land(elapsed_s: float) -> None:
    """Refuse to send a note this attempt could not wait out (Temporal may end the attempt before it lands)."""
    left = _time_left(elapsed_s)
    if left < _LANDING_NEEDS.total_seconds():
        raise ApplicationError(
            f"The PSA did not take the note in the time this post allows ({left:.0f}s were left, "
            f"{_LANDING_NEEDS.total_seconds():.0f}s are needed to be sure a note is posted once); post again "
            "(the note is not posted twice)", type=PSA_UNAVAILABLE, non_retryable=True)


async def _await_landing(provider: PsaProvider, inp: PostNoteInput, sent: float, exc: PsaUnavailable) -> PsaNote:
    """The note a POST with an unknown outcome stored, looked for until the landing window is over; after a
    PsaTimeUnknown (the note stored, its time entry's POST unanswered) the note once its time entry shows, or at the
    window's end the note without it (the caller logs the time then)."""
    window = NOTE_LANDING_WINDOW.total_seconds()
    ticket = inp.ticket.ticket_id
    time_unknown = isinstance(exc, PsaTimeUnknown)
    log.warning("ticket %s: the %s POST's outcome is unknown (%s); looking for it for %gs", ticket,
                "time entry" if time_unknown else "note", exc.message, window)
    while True:
        searched_at = time.monotonic()
        try:
            found = await provider.find_note(ticket, inp.marker)
        except PsaError as search_failed:  # proves nothing either way: look again
            log.info("ticket %s: looking for the note failed: %s", ticket, search_failed.message)
            found = None
        if found is not None and (not time_unknown or found.time_entry_id or searched_at - sent >= window):
            log.info("ticket %s: the POST landed as note %s (time entry %s)", ticket, found.id, found.time_entry_id)
            return found
        if searched_at - sent >= window:
            raise PsaUnavailable(f"{exc.message}, and the note had not appeared {window:g}s after it was sent")
        await asyncio.sleep(min(NOTE_POLL_INTERVAL.total_seconds(), max(0.0, sent + window - time.monotonic())))
