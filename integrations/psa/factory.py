"""Builds the provider for a stored connection (one module per provider; ConnectWise today)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from integrations.psa.base import PsaProvider
from integrations.psa.connectwise import ConnectWiseClient, ConnectWiseConfig, id_problem

SECRET_FIELDS = ("public_key", "private_key")


@dataclass(frozen=True)
class ConnectionSettings:
    """The non-secret half of a connection (the secrets are passed separately, decrypted just in time)."""

    provider: str
    site_url: str
    company_id: str
    client_id: str
    codebase: str | None = None

    @classmethod
    def of(cls, row: Any) -> ConnectionSettings:
        """From anything with these attributes (a `psa_connections` row)."""
        return cls(provider=row.provider, site_url=row.site_url, company_id=row.company_id,
                   client_id=row.client_id, codebase=row.codebase)


def build_provider(settings: ConnectionSettings, secrets: dict[str, str], http: httpx.AsyncClient) -> PsaProvider:
    """The provider client for a connection, calling through `http` (ValueError for an unknown provider).

    `http` comes from `egress.pinned_client`: a connection's URL is the tenant's choice, so every call it
    makes must go through the connect-time address check.
    """
    if settings.provider == "connectwise":
        return ConnectWiseClient(ConnectWiseConfig(
            site_url=settings.site_url, company_id=settings.company_id, public_key=secrets["public_key"],
            private_key=secrets["private_key"], client_id=settings.client_id, codebase=settings.codebase,
        ), http)
    raise ValueError(f"unknown PSA provider {settings.provider!r}")


def ticket_id_problem(provider: str, ticket_id: str) -> str | None:
    """Why `ticket_id` cannot name a ticket of `provider` (None when it can): checked before any call."""
    return id_problem("ticket", ticket_id) if provider == "connectwise" else None
