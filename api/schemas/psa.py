"""PSA connection and write-back log payloads. Credentials go in; they never come out."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

from api.schemas.common import RequestBody
from integrations.psa.egress import parse_api_url, parse_site_url

# Printable ASCII only: these travel in URLs and HTTP headers, where anything else breaks the call or the log.
HeaderSafe = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$")]
# "v4_6_release/": path segments of letters, digits and single separators; never "..".
CODEBASE_PATTERN = r"^[A-Za-z0-9_]+([.-][A-Za-z0-9_]+)*/$"
SITE_URL_PATTERN = r"^(https?://)?[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$"


PsaStatusId = Annotated[int, Field(ge=1, le=2**31 - 1)]
# An API root: a host and port, and the path the provider's API lives under; never a query or a user part.
API_URL_PATTERN = r"^(https?://)?[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~-]+)*/?$"
ApiUrl = Annotated[str, StringConstraints(min_length=1, max_length=300, pattern=API_URL_PATTERN)]
AUTOTASK_DISCOVERY_URL = "https://webservices.autotask.net/atservicesrest"


def _callable(value: str | None, field: str) -> str | None:
    # The pattern admits what the HTTP client cannot call (0177.0.0.1, port 99999): parse it the way the
    # client will, so such a URL is a 422 here rather than a failure on every later call.
    if value is not None:
        parse_api_url(value, field)
    return value


class ConnectionTargets(RequestBody):
    """What every provider's connection takes beside its keys."""

    display_name: Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)] | None = None
    resolved_status_id: PsaStatusId | None = Field(
        default=None, description="The status a resolved ticket is set to (wins over cw_resolved_status_id).")
    escalated_status_id: PsaStatusId | None = Field(
        default=None, description="The status an escalated ticket is set to (wins over cw_escalated_status_id).")


class ConnectWiseConnectionCreate(ConnectionTargets):
    """A ConnectWise Manage API member's keys and where the instance is."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "provider": "connectwise", "site_url": "na.myconnectwise.net", "company_id": "acmemsp",
        "public_key": "AbCdEfGh12345678", "private_key": "…", "client_id": "c0a8f4e2-0000-4000-8000-000000000000",
        "resolved_status_id": 42,
    }]})

    provider: Literal["connectwise"]
    site_url: Annotated[str, StringConstraints(min_length=1, max_length=300, pattern=SITE_URL_PATTERN)] = Field(
        description="A host (na.myconnectwise.net, https is used) or a full URL (http://127.0.0.1:8123 for the "
                    "simulator; plain http and private addresses only in dev mode).")
    company_id: HeaderSafe
    public_key: HeaderSafe
    private_key: HeaderSafe = Field(description="Stored encrypted; never returned or logged.")
    client_id: HeaderSafe = Field(description="The clientId ConnectWise issued to this integration.")
    codebase: Annotated[str, StringConstraints(max_length=100, pattern=CODEBASE_PATTERN)] | None = Field(
        default=None, description="e.g. v4_6_release/ (read from /login/companyinfo when omitted).")

    @field_validator("site_url")
    @classmethod
    def _callable_site(cls, value: str) -> str:
        parse_site_url(value)
        return value


class AutotaskConnectionCreate(ConnectionTargets):
    """An Autotask API user (username, secret, integration code) and, optionally, its zone."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "provider": "autotask", "username": "rflow-api@acmemsp.com", "secret": "…",
        "integration_code": "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "resolved_status_id": 5,
    }]})

    provider: Literal["autotask"]
    username: HeaderSafe = Field(description="The API user's username (an email address).")
    secret: HeaderSafe = Field(description="Stored encrypted; never returned or logged.")
    integration_code: HeaderSafe = Field(description="The tracking identifier of the integration; stored encrypted.")
    zone_url: ApiUrl | None = Field(default=None, description="The zone's REST root, e.g. "
                                    "https://webservices5.autotask.net/atservicesrest; discovered when absent.")
    discovery_url: ApiUrl = Field(default=AUTOTASK_DISCOVERY_URL, description="Where the zone is discovered.")
    impersonation_resource_id: Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,9}$")] | None = Field(
        default=None, description="A resource id to act as (ImpersonationResourceId); time is logged for it.")

    @field_validator("zone_url", "discovery_url")
    @classmethod
    def _callable_urls(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _callable(value, str(info.field_name))


class HaloConnectionCreate(ConnectionTargets):
    """A HaloPSA API application (client credentials) and where the instance is."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "provider": "halopsa", "api_url": "https://acme.halopsa.com/api", "client_id": "3f1c…",
        "client_secret": "…", "resolved_status_id": 9,
    }]})

    provider: Literal["halopsa"]
    api_url: ApiUrl = Field(description="The API root, e.g. https://acme.halopsa.com/api.")
    client_id: HeaderSafe
    client_secret: HeaderSafe = Field(description="Stored encrypted; never returned or logged.")
    auth_url: ApiUrl | None = Field(default=None, description="The authorisation server (default: the API host's "
                                    "/auth).")
    tenant: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,100}$")] | None = Field(
        default=None, description="The tenant of a hosted instance (sent as ?tenant=).")

    @field_validator("api_url", "auth_url")
    @classmethod
    def _callable_urls(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _callable(value, str(info.field_name))


PsaConnectionCreate = Annotated[ConnectWiseConnectionCreate | AutotaskConnectionCreate | HaloConnectionCreate,
                                Field(discriminator="provider")]


class PsaConnectionUpdate(ConnectionTargets):
    """What may change on a connection: its name, target statuses and keys (only its own provider's)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"display_name": "Acme ConnectWise",
                                                               "resolved_status_id": 42}]})

    public_key: HeaderSafe | None = None
    private_key: HeaderSafe | None = None
    secret: HeaderSafe | None = None
    integration_code: HeaderSafe | None = None
    client_secret: HeaderSafe | None = None


class PsaConnectionOut(BaseModel):
    """A connection without its keys: the common fields, then the provider's own."""

    id: uuid.UUID
    provider: str
    display_name: str | None
    resolved_status_id: int | None
    escalated_status_id: int | None
    created_at: datetime
    updated_at: datetime
    site_url: str | None = Field(default=None, description="ConnectWise")
    company_id: str | None = Field(default=None, description="ConnectWise")
    client_id: str | None = Field(default=None, description="ConnectWise and HaloPSA")
    codebase: str | None = Field(default=None, description="ConnectWise")
    username: str | None = Field(default=None, description="Autotask")
    zone_url: str | None = Field(default=None, description="Autotask (the configured zone, if any)")
    discovery_url: str | None = Field(default=None, description="Autotask")
    impersonation_resource_id: str | None = Field(default=None, description="Autotask")
    api_url: str | None = Field(default=None, description="HaloPSA")
    auth_url: str | None = Field(default=None, description="HaloPSA")
    tenant: str | None = Field(default=None, description="HaloPSA")

    @classmethod
    def of(cls, row: Any) -> PsaConnectionOut:
        """From a `psa_connections` row: ConnectWise's fields are columns, the others' are in `settings`."""
        common = {k: getattr(row, k) for k in ("id", "provider", "display_name", "resolved_status_id",
                                                 "escalated_status_id", "created_at", "updated_at")}
        if row.provider == "connectwise":
            own = {k: getattr(row, k) for k in ("site_url", "company_id", "client_id", "codebase")}
        else:
            own = {k: v for k, v in (row.settings or {}).items() if k in cls.model_fields}
        return cls(**common, **own)


class PsaConnectionListOut(BaseModel):
    """One page of the account's connections."""

    items: list[PsaConnectionOut]
    total: int


class ConnectionTestOut(BaseModel):
    """Whether the PSA answered and accepted the keys; `detail` says which step failed."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"ok": True, "detail": "Reached na.myconnectwise.net and authenticated as company acmemsp"},
        {"ok": False, "detail": "Reached the site, but authentication failed: ConnectWise rejected the keys"},
    ]})

    ok: bool
    stage: Literal["reachability", "authentication", "ok"]
    detail: str


class PsaStatusOut(BaseModel):
    """A status a ticket may take (pick one for the connection's resolved_status_id / escalated_status_id)."""

    id: int
    name: str
    closed: bool
    inactive: bool


class PsaStatusListOut(BaseModel):
    """A board's or a ticket's statuses."""

    items: list[PsaStatusOut]
    total: int

    @classmethod
    def of(cls, statuses: Sequence[Any]) -> PsaStatusListOut:
        """From the provider's statuses (anything with id, name, closed and inactive)."""
        return cls(items=[PsaStatusOut(id=s.id, name=s.name, closed=s.closed, inactive=s.inactive) for s in statuses],
                   total=len(statuses))


class WritebackOut(BaseModel):
    """One document posted to the session's ticket: the note, the status change, its verification and drift."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    state: Literal["pending", "note_posted", "completed"]
    provider: str
    connection_id: uuid.UUID
    ticket_id: str
    note_type: str
    external_note_id: str | None
    note_reused: bool = Field(description="True when a retry found the note an earlier attempt had posted.")
    attempts: int
    posted_by_user_id: uuid.UUID | None
    note_posted_at: datetime | None
    target_status_id: int | None
    status_change: Literal["verified", "did_not_verify", "skipped"] | None
    status_skipped_reason: str | None
    verified_status_id: int | None
    verified_status_name: str | None
    verified_at: datetime | None
    last_error: str | None
    completed_at: datetime | None
    recheck_at: datetime | None = Field(description="When the verified status is (or was) re-read.")
    rechecked_at: datetime | None
    recheck_status_id: int | None
    recheck_status_name: str | None
    drift_detected_at: datetime | None = Field(description="Set when the re-read found another status.")
    created_at: datetime
    updated_at: datetime


class WritebackListOut(BaseModel):
    """A session's write-backs, oldest first."""

    items: list[WritebackOut]
    total: int
