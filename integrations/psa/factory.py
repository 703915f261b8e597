"""Builds the provider for a stored connection (one module per provider: ConnectWise, Autotask, HaloPSA)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from integrations.psa.autotask import AutotaskClient, AutotaskConfig
from integrations.psa.base import PsaProvider
from integrations.psa.connectwise import ConnectWiseClient, ConnectWiseConfig, id_problem
from integrations.psa.halopsa import HaloClient, HaloConfig

# What each provider keeps encrypted; everything else about a connection may be shown to its admins.
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "connectwise": ("public_key", "private_key"),
    "autotask": ("secret", "integration_code"),
    "halopsa": ("client_secret",),
}


@dataclass(frozen=True)
class ConnectionSettings:
    """The non-secret half of a connection (the secrets are passed separately, decrypted just in time)."""

    provider: str
    site_url: str
    company_id: str
    client_id: str | None = None
    codebase: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, row: Any) -> ConnectionSettings:
        """From anything with these attributes (a `psa_connections` row)."""
        return cls(provider=row.provider, site_url=row.site_url, company_id=row.company_id,
                   client_id=row.client_id, codebase=row.codebase, settings=dict(row.settings or {}))


def build_provider(settings: ConnectionSettings, secrets: dict[str, str], http: httpx.AsyncClient) -> PsaProvider:
    """The provider client for a connection, calling through `http` (ValueError for an unknown provider).

    `http` comes from `egress.pinned_client`: a connection's URLs are the tenant's choice (and Autotask's zone
    is the discovery service's answer), so every call it makes must go through the connect-time address check.
    """
    extra = settings.settings
    if settings.provider == "connectwise":
        return ConnectWiseClient(ConnectWiseConfig(
            site_url=settings.site_url, company_id=settings.company_id, public_key=secrets["public_key"],
            private_key=secrets["private_key"], client_id=settings.client_id or "", codebase=settings.codebase,
        ), http)
    if settings.provider == "autotask":
        return AutotaskClient(AutotaskConfig(
            username=extra["username"], secret=secrets["secret"], integration_code=secrets["integration_code"],
            zone_url=extra.get("zone_url"), discovery_url=extra["discovery_url"],
            impersonation_resource_id=extra.get("impersonation_resource_id"),
        ), http)
    if settings.provider == "halopsa":
        return HaloClient(HaloConfig(
            api_url=extra["api_url"], client_id=extra["client_id"], client_secret=secrets["client_secret"],
            auth_url=extra.get("auth_url"), tenant=extra.get("tenant"),
        ), http)
    raise ValueError(f"unknown PSA provider {settings.provider!r}")


def ticket_id_problem(provider: str, ticket_id: str) -> str | None:
    """Why `ticket_id` cannot name a ticket of `provider` (None when it can): checked before any call."""
    # Every one of the three numbers its tickets with positive integers.
    return id_problem("ticket", ticket_id) if provider in SECRET_FIELDS else None
