"""PSA connection and write-back log payloads. Credentials go in; they never come out."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from api.schemas.common import RequestBody
from integrations.psa.egress import parse_site_url

# Printable ASCII only: these travel in URLs and HTTP headers, where anything else breaks the call or the log.
HeaderSafe = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$")]
# "v4_6_release/": path segments of letters, digits and single separators; never "..".
CODEBASE_PATTERN = r"^[A-Za-z0-9_]+([.-][A-Za-z0-9_]+)*/$"
SITE_URL_PATTERN = r"^(https?://)?[A-Za-z0-9.-]+(:[0-9]{1,5})?/?$"


class PsaConnectionCreate(RequestBody):
    """A ConnectWise Manage API member's keys and where the instance is."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "provider": "connectwise", "site_url": "na.myconnectwise.net", "company_id": "acmemsp",
        "public_key": "AbCdEfGh12345678", "private_key": "…", "client_id": "c0a8f4e2-0000-4000-8000-000000000000",
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
        # The pattern admits what the HTTP client cannot call (0177.0.0.1, 999.1.1.1, port 99999): parse it
        # the way the client will, so such a URL is a 422 here rather than a 500 on every later call.
        parse_site_url(value)
        return value


class PsaConnectionOut(BaseModel):
    """A connection without its keys."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    provider: str
    site_url: str
    company_id: str
    client_id: str
    codebase: str | None
    created_at: datetime


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
    """A status a ticket on this board may take (pick one for cw_resolved_status_id / cw_escalated_status_id)."""

    id: int
    name: str
    closed: bool
    inactive: bool


class PsaStatusListOut(BaseModel):
    """A board's statuses."""

    items: list[PsaStatusOut]
    total: int


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
