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
from typing import Any

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
from integrations.psa.factory import SECRET_FIELDS, ConnectionSettings, build_provider
from workflows.contracts.psa import PROVIDER_LABELS

ALL_SECRET_FIELDS = frozenset(f for fields in SECRET_FIELDS.values() for f in fields)

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

    async def create(self, *, account_id: uuid.UUID, user_id: uuid.UUID, provider: str, fields: dict[str, Any],
                     secrets: dict[str, str]) -> PsaConnection:
        """Store a connection with its keys encrypted (409 when this instance and identity are connected already)."""
        site_url, company_id, columns = _placement(provider, fields)
        for name, url in _urls(provider, fields):
            await self._check_site(url, name, with_path=provider != "connectwise")
        token = self._cipher().encrypt(secrets)
        try:
            row = await self._repo.create(account_id=account_id, provider=provider, site_url=site_url,
                                          company_id=company_id, credentials_encrypted=token,
                                          created_by_user_id=user_id, **columns)
        except DuplicateConnection as exc:
            raise Conflict(f"This account is already connected to {PROVIDER_LABELS[provider]} as {company_id} at "
                           f"{site_url}; delete that connection first, or PATCH it to replace its keys") from exc
        log.info("account %s: %s connection %s to %s (%s) created", account_id, provider, row.id, row.site_url,
                 row.company_id)
        return row

    async def update(self, row: PsaConnection, changes: dict[str, Any]) -> PsaConnection:
        """Change the name, the target statuses or the keys (only the connection's own provider's keys)."""
        secret_fields = SECRET_FIELDS[row.provider]
        foreign = sorted(k for k in changes if k in ALL_SECRET_FIELDS and k not in secret_fields)
        if foreign:
            raise RuleViolation(f"{', '.join(foreign)} {'is' if len(foreign) == 1 else 'are'} not a key of a "
                                f"{PROVIDER_LABELS[row.provider]} connection; its keys are {', '.join(secret_fields)}")
        new_keys = {k: v for k, v in changes.items() if k in secret_fields}
        if any(v is None for v in new_keys.values()):
            raise RuleViolation(f"{', '.join(k for k, v in new_keys.items() if v is None)}: a key cannot be "
                                "cleared, only replaced")
        values = {k: v for k, v in changes.items() if k in ("display_name", "resolved_status_id",
                                                            "escalated_status_id")}
        if new_keys:
            values["credentials_encrypted"] = self._cipher().encrypt({**self._secrets(row), **new_keys})
        if values:
            row = await self._repo.change(row, **values)
            log.info("PSA connection %s changed: %s", row.id, ", ".join(sorted(values)).replace(
                "credentials_encrypted", "keys"))
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
        return True, "ok", f"Reached {row.site_url} and authenticated as {row.company_id}"

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
            except PsaError as exc:
                raise _upstream("ConnectWise", "list the statuses", exc) from exc

    async def ticket_statuses(self, row: PsaConnection, ticket_id: str) -> list[PsaStatus]:
        """The statuses one ticket may take, read from its PSA (404 with the PSA's message for an unknown ticket)."""
        label = PROVIDER_LABELS[row.provider]
        async with self._provider(row) as provider:
            try:
                return await provider.list_statuses(await provider.get_ticket(ticket_id))
            except PsaNotFound as exc:
                raise NotFound(f"{label} has no ticket {ticket_id}: {exc.message}") from exc
            except PsaError as exc:
                raise _upstream(label, "list the ticket's statuses", exc) from exc

    def _secrets(self, row: PsaConnection) -> dict[str, str]:
        try:
            return self._cipher().decrypt(row.credentials_encrypted)
        except CredentialsUnreadable as exc:
            raise UpstreamFailed("This connection's stored keys cannot be read with the server's CREDENTIALS_KEY; "
                                 "PATCH the connection with its keys again") from exc

    @asynccontextmanager
    async def _provider(self, row: PsaConnection) -> AsyncIterator[PsaProvider]:
        secrets = self._secrets(row)
        async with pinned_client(self._egress, ADMIN_CALL_TIMEOUT_S) as http:
            provider = build_provider(ConnectionSettings.of(row), secrets, http)
            try:
                yield provider
            finally:
                await provider.aclose()

    async def _check_site(self, site_url: str, field: str = "site_url", *, with_path: bool = False) -> None:
        # A connection makes this server call the address it names. Every call checks the address it connects
        # to (egress.PinnedBackend); this early check only tells the admin at once what would be refused.
        try:
            site = self._egress.check_site(site_url, with_path=with_path)
            if not self._egress.allow_private:
                await self._egress.resolve(site.host, site.port, RESOLVE_TIMEOUT_S)
        except EgressRefused as exc:
            raise RuleViolation(f"{field} is refused: {exc.message}") from None
        except (httpcore.ConnectError, httpcore.ConnectTimeout):
            # A connection that could never be called is no use; a DNS change in flight: try again shortly.
            raise RuleViolation(f"{field}'s host {site.host} does not resolve: check the address (or try again "
                                "if its DNS record is being changed)") from None


def _placement(provider: str, fields: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(site_url, company_id, other columns) of a new connection: where the instance is and who we are there."""
    targets = {k: fields.get(k) for k in ("display_name", "resolved_status_id", "escalated_status_id")}
    if provider == "connectwise":
        return (fields["site_url"].rstrip("/"), fields["company_id"],
                {**targets, "client_id": fields["client_id"], "codebase": fields.get("codebase"), "settings": {}})
    if provider == "autotask":
        own = {k: fields.get(k) for k in ("username", "zone_url", "discovery_url", "impersonation_resource_id")}
        own = {k: v.rstrip("/") if k.endswith("_url") and v else v for k, v in own.items()}
        return str(own["zone_url"] or own["discovery_url"]), str(own["username"]), {**targets, "settings": own}
    own = {k: fields.get(k) for k in ("api_url", "client_id", "auth_url", "tenant")}
    own = {k: v.rstrip("/") if k.endswith("_url") and v else v for k, v in own.items()}
    return str(own["api_url"]), str(own["client_id"]), {**targets, "settings": own}


def _urls(provider: str, fields: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, URL) of every address a new connection makes this server call."""
    names = {"connectwise": ("site_url",), "autotask": ("zone_url", "discovery_url"),
             "halopsa": ("api_url", "auth_url")}[provider]
    return [(name, fields[name]) for name in names if fields.get(name)]


def _upstream(label: str, doing: str, exc: PsaError) -> Exception:
    """The HTTP-facing error for a failed admin call to the PSA."""
    if isinstance(exc, PsaSiteRefused):  # nothing was called: the connection itself must be fixed
        return RuleViolation(f"{exc.message}; delete this connection and connect the site again")
    if isinstance(exc, PsaAuthFailed):
        return UpstreamFailed(f"{label} authentication failed: {exc.message}")
    if isinstance(exc, PsaUnavailable):
        return UpstreamFailed(f"{label} did not answer: {exc.message}")
    return UpstreamFailed(f"{label} could not {doing}: {exc.message}")
