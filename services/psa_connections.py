"""PSA connections: store them with encrypted keys, test them, list a board's statuses.

Admin tools that read the PSA on the spot (nothing durable happens), so they call the provider here
rather than through a workflow; every write-back to a ticket goes through the session's workflow.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpcore
from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from core.credentials import CredentialCipher, CredentialsUnreadable
from core.errors import Conflict, NotFound, RuleViolation, UpstreamFailed
from db.models import PsaConnection
from db.repositories.psa import DuplicateConnection, PsaConnectionRepository
from integrations.psa.base import (
    PsaAuthFailed,
    PsaError,
    PsaNotFound,
    PsaProvider,
    PsaSiteRefused,
    PsaStatus,
    PsaUnavailable,
)
from integrations.psa.egress import EgressPolicy, EgressRefused, pinned_client
from integrations.psa.factory import ConnectionSettings, build_provider

log = logging.getLogger(__name__)
# An admin waits for these on the spot: one PSA call, and a DNS lookup when a connection is created.
ADMIN_CALL_TIMEOUT_S = 15.0
RESOLVE_TIMEOUT_S = 5.0


class PsaConnections:
    """An account's PSA connections, for admins (writes are flushed; the caller's unit of work commits them)."""

    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self._settings = settings
        self._repo = PsaConnectionRepository(session)
        self._egress = EgressPolicy(allow_private=settings.dev_mode)

    def _cipher(self) -> CredentialCipher:
        try:
            return CredentialCipher(self._settings.credentials_key)
        except ValueError as exc:  # the server's configuration, not the caller's mistake
            raise UpstreamFailed("This server has no CREDENTIALS_KEY configured, so it cannot store PSA keys") \
                from exc

    async def create(self, *, account_id: uuid.UUID, user_id: uuid.UUID, provider: str, site_url: str,
                     company_id: str, client_id: str, codebase: str | None, public_key: str,
                     private_key: str) -> PsaConnection:
        """Store a connection with its keys encrypted (409 when this site and company are connected already)."""
        await self._check_site(site_url)
        token = self._cipher().encrypt({"public_key": public_key, "private_key": private_key})
        try:
            row = await self._repo.create(account_id=account_id, provider=provider, site_url=site_url.rstrip("/"),
                                          company_id=company_id, client_id=client_id, codebase=codebase,
                                          credentials_encrypted=token, created_by_user_id=user_id)
        except DuplicateConnection as exc:
            raise Conflict(f"This account is already connected to company {company_id} at {site_url}; delete "
                           "that connection first to replace its keys") from exc
        log.info("account %s: PSA connection %s to %s (company %s) created", account_id, row.id, row.site_url,
                 row.company_id)
        return row

    async def owned(self, account_id: uuid.UUID, connection_id: uuid.UUID) -> PsaConnection:
        """A live connection of this account (404 otherwise, also for another account's id)."""
        row = await self._repo.get_in_account(account_id, connection_id)
        if row is None:
            raise NotFound("PSA connection not found")
        return row

    async def delete(self, row: PsaConnection) -> None:
        """Soft-delete: sessions linked to it can no longer post; the write-back log keeps it."""
        await self._repo.soft_delete(row, datetime.now(UTC))

    async def test(self, row: PsaConnection) -> tuple[bool, str, str]:
        """(ok, stage, detail): reachability, then authentication."""
        async with self._provider(row) as provider:
            try:
                await provider.check()
            except PsaAuthFailed as exc:
                return False, "authentication", f"Reached {row.site_url}, but authentication failed: {exc.message}"
            except PsaUnavailable as exc:
                return False, "reachability", f"Could not reach {row.site_url}: {exc.message}"
            except PsaSiteRefused as exc:  # nothing was sent: the refusal already names the site's problem
                return False, "reachability", exc.message
            except PsaError as exc:
                return False, "reachability", f"{row.site_url} answered unexpectedly: {exc.message}"
        return True, "ok", f"Reached {row.site_url} and authenticated as company {row.company_id}"

    async def board_statuses(self, row: PsaConnection, board_id: int) -> list[PsaStatus]:
        """The statuses of one ConnectWise board (404 with ConnectWise's message for an unknown board)."""
        async with self._provider(row) as provider:
            board_statuses = getattr(provider, "board_statuses", None)
            if board_statuses is None:
                raise RuleViolation(f"{row.provider} keeps no statuses per board")
            try:
                statuses: list[PsaStatus] = await board_statuses(board_id)
                return statuses
            except PsaNotFound as exc:
                raise NotFound(f"ConnectWise has no board {board_id}: {exc.message}") from exc
            except PsaSiteRefused as exc:  # nothing was called: the connection itself must be fixed
                raise RuleViolation(f"{exc.message}; delete this connection and connect the site again") from exc
            except PsaAuthFailed as exc:
                raise UpstreamFailed(f"ConnectWise authentication failed: {exc.message}") from exc
            except PsaUnavailable as exc:
                raise UpstreamFailed(f"ConnectWise did not answer: {exc.message}") from exc
            except PsaError as exc:
                raise UpstreamFailed(f"ConnectWise could not list the statuses: {exc.message}") from exc

    @asynccontextmanager
    async def _provider(self, row: PsaConnection) -> AsyncIterator[PsaProvider]:
        try:
            secrets = self._cipher().decrypt(row.credentials_encrypted)
        except CredentialsUnreadable as exc:
            raise UpstreamFailed("This connection's stored keys cannot be read with the server's CREDENTIALS_KEY; "
                                 "delete the connection and add it again") from exc
        async with pinned_client(self._egress, ADMIN_CALL_TIMEOUT_S) as http:
            yield build_provider(ConnectionSettings.of(row), secrets, http)

    async def _check_site(self, site_url: str) -> None:
        # A connection makes this server call the address it names. Every call checks the address it connects
        # to (egress.PinnedBackend); this early check only tells the admin at once what would be refused.
        try:
            site = self._egress.check_site(site_url)
            if not self._egress.allow_private:
                await self._egress.resolve(site.host, site.port, RESOLVE_TIMEOUT_S)
        except EgressRefused as exc:
            raise RuleViolation(f"site_url is refused: {exc.message}") from None
        except (httpcore.ConnectError, httpcore.ConnectTimeout):
            # A connection that could never be called is no use; a DNS change in flight: try again shortly.
            raise RuleViolation(f"site_url's host {site.host} does not resolve: check the address (or try again "
                                "if its DNS record is being changed)") from None
