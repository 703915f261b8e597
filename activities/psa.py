"""PSA calls for the write-back: the `psa.*` activities.

Each call loads the connection by id and decrypts its credentials here, so no secret ever enters a
workflow payload or history. Provider errors become ApplicationErrors whose type tells Temporal
whether to retry (5xx, timeouts, 429 after its Retry-After) or not (4xx, bad credentials).
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from core.credentials import CredentialCipher, CredentialsUnreadable
from db.repositories.psa import PsaConnectionRepository
from integrations.psa.base import (
    NoteType,
    PsaAuthFailed,
    PsaError,
    PsaNotFound,
    PsaProvider,
    PsaRateLimited,
    PsaUnavailable,
)
from integrations.psa.factory import ConnectionSettings, build_provider
from workflows.contracts.psa import (
    CHANGE_STATUS,
    POST_NOTE,
    PSA_AUTH_FAILED,
    PSA_CONNECTION_GONE,
    PSA_NOT_FOUND,
    PSA_REJECTED,
    PSA_UNAVAILABLE,
    READ_TICKET,
    ChangeStatusInput,
    PostedNote,
    PostNoteInput,
    TicketFacts,
    TicketRef,
)

log = logging.getLogger(__name__)
PROVIDER_CACHE_SIZE = 256
# Below the activity's start-to-close, so a hung PSA fails the attempt (and it retries) rather than the activity.
PSA_HTTP_TIMEOUT_S = 15.0


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

    def __init__(self, session_factory: async_sessionmaker[AsyncSession], cipher: CredentialCipher | None,
                 http: httpx.AsyncClient | None = None) -> None:
        self._session_factory = session_factory
        self._cipher = cipher
        self._http = http  # None: one client is made on first use and shared for the worker's life
        # One provider per connection (it caches what it discovered, e.g. ConnectWise's codebase); bounded.
        self._providers: OrderedDict[uuid.UUID, PsaProvider] = OrderedDict()

    def all(self) -> list[Any]:
        """Every activity of this class, for the worker."""
        return [self.read_ticket, self.post_note, self.change_status]

    @activity.defn(name=READ_TICKET.name)
    async def read_ticket(self, ref: TicketRef) -> TicketFacts:
        """The ticket's summary and current status."""
        async with self._provider(ref) as provider:
            ticket = await provider.get_ticket(ref.ticket_id)
        return TicketFacts(ticket_id=ticket.id, summary=ticket.summary, status_id=ticket.status_id,
                           status_name=ticket.status_name)

    @activity.defn(name=POST_NOTE.name)
    async def post_note(self, inp: PostNoteInput) -> PostedNote:
        """Post the note, unless an earlier attempt already did (found by its marker): never two copies."""
        async with self._provider(inp.ticket) as provider:
            if inp.search_first or activity.info().attempt > 1:
                found = await provider.find_note(inp.ticket.ticket_id, inp.marker)
                if found is not None:
                    log.info("ticket %s: note %s from an earlier attempt reused", inp.ticket.ticket_id, found.id)
                    return PostedNote(note_id=found.id, reused=True)
            text = inp.text if inp.marker in inp.text else f"{inp.text}\n\n{inp.marker}"
            note = await provider.post_note(inp.ticket.ticket_id, text, NoteType(inp.visibility))
        log.info("ticket %s: %s note %s posted", inp.ticket.ticket_id, inp.visibility, note.id)
        return PostedNote(note_id=note.id, reused=False)

    @activity.defn(name=CHANGE_STATUS.name)
    async def change_status(self, inp: ChangeStatusInput) -> None:
        """Ask for the status change; the workflow re-reads the ticket to verify it."""
        async with self._provider(inp.ticket) as provider:
            await provider.update_status(inp.ticket.ticket_id, inp.status_id)

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
                self._http = httpx.AsyncClient(timeout=PSA_HTTP_TIMEOUT_S)
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
