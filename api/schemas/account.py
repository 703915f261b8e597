"""Auth, user, account, subscription and settings payloads."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    Strict,
    model_validator,
)

from api.schemas.common import JsonUuid, RequestBody

Role = Literal["owner", "admin", "engineer", "l1_tech", "viewer"]
SubscriptionStatus = Literal["active", "trialing", "past_due", "canceled", "unpaid", "incomplete"]

PASSWORD = Field(min_length=8, max_length=200, description="At least 8 characters.")
# ConnectWise ids are 32-bit; the bound keeps a typo from being stored and failing later at the PSA.
PSA_ID = Field(default=None, ge=1, le=2**31 - 1, description="A ConnectWise status id.")
MAX_DURATION = timedelta(days=365)


def _iso_duration_only(value: Any) -> Any:
    # Pydantic would read a number as seconds; the contract is ISO 8601 ("PT2H", "P3D").
    if not isinstance(value, str | timedelta):
        raise ValueError("must be an ISO 8601 duration such as PT2H or P3D")
    return value


def _positive_and_sane(value: timedelta) -> timedelta:
    if value <= timedelta(0) or value > MAX_DURATION:
        raise ValueError("must be longer than zero and at most a year (P365D)")
    return value


# Strict(False): a duration arrives as its ISO 8601 string (checked by _iso_duration_only).
Duration = Annotated[timedelta, Strict(False), BeforeValidator(_iso_duration_only),
                     AfterValidator(_positive_and_sane),
                     Field(json_schema_extra={"format": "duration", "examples": ["PT2H"]})]
MAX_PREFERENCE_KEYS = 50
MAX_PREFERENCES_BYTES = 16 * 1024


class RegisterRequest(RequestBody):
    """Sign up: creates a new account owned by this user."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"email": "dana@acme-msp.com", "password": "S3cure-pass!", "name": "Dana"}]}
    )

    email: EmailStr
    password: str = PASSWORD
    name: str = Field(min_length=1, max_length=200)
    account_name: str | None = Field(default=None, max_length=200, description="Defaults to the user's name.")


class LoginRequest(RequestBody):
    """JSON login."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"email": "dana@acme-msp.com", "password": "S3cure-pass!"}]}
    )

    email: EmailStr
    password: str = Field(min_length=1, max_length=200)


class TokenResponse(BaseModel):
    """A bearer token for the Authorization header."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"


class UserOut(BaseModel):
    """A user as clients see it (never the password hash)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    name: str
    account_id: uuid.UUID
    account_role: Role
    is_active: bool
    created_at: datetime
    updated_at: datetime


class CreateUserRequest(RequestBody):
    """An admin adds a user to their own account."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"email": "sam@acme-msp.com", "name": "Sam", "password": "Welcome-123", "account_role": "l1_tech"}
            ]
        }
    )

    email: EmailStr
    name: str = Field(min_length=1, max_length=200)
    password: str = PASSWORD
    account_role: Role = "engineer"


class UpdateUserRequest(RequestBody):
    """Change a user's role or deactivate them."""

    account_role: Role | None = None
    is_active: bool | None = None


class SubscriptionOut(BaseModel):
    """The account's plan and its status."""

    model_config = ConfigDict(from_attributes=True)

    plan: str
    status: SubscriptionStatus
    updated_at: datetime


class SubscriptionUpdate(RequestBody):
    """What the billing system sets, for the account it names."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"account_id": "4b3f0a52-1c7e-4f55-9a4e-0d2b8c6f1e21", "plan": "pro", "status": "active"}
    ]})

    account_id: JsonUuid
    plan: str = Field(min_length=1, max_length=50)
    status: SubscriptionStatus


class AccountOut(BaseModel):
    """The caller's account with its subscription."""

    id: uuid.UUID
    name: str
    created_at: datetime
    subscription: SubscriptionOut | None


class AccountPreferences(RequestBody):
    """Known preferences are typed; unknown keys are kept as given."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "cw_resolved_status_id": 42,
                    "cw_escalated_status_id": 57,
                    "default_escalation_recipient_ids": [],
                    "pending_verification_reminders": ["PT2H", "PT8H", "PT24H"],
                    "verification_overdue_after": "P3D",
                    "handoff_renotify_after": "PT30M",
                    "psa_status_recheck_after": "PT10M",
                }
            ]
        },
    )

    cw_resolved_status_id: int | None = PSA_ID
    cw_escalated_status_id: int | None = PSA_ID
    default_escalation_recipient_ids: list[JsonUuid] | None = Field(
        default=None, max_length=100, description="Active users of this account who receive escalations by default."
    )
    pending_verification_reminders: list[Duration] | None = Field(
        default=None, min_length=1, max_length=10,
        description="When to remind the engineer of a fix parked as applied_pending, as ISO 8601 durations after "
                    "parking (default PT2H, PT8H, PT24H). At least one minute each, seconds allowed in dev mode.",
    )
    verification_overdue_after: Duration | None = Field(
        default=None, description="When a parked fix becomes overdue and the default escalation recipients hear of "
                                  "it (default P3D).")
    handoff_renotify_after: Duration | None = Field(
        default=None, description="When an unclaimed escalation notifies the team again (default PT30M).")
    psa_status_recheck_after: Duration | None = Field(
        default=None, description="When a verified PSA status change is re-read to catch a workflow rule or a "
                                  "customer reply flipping it back (default PT10M).")

    def durations(self) -> dict[str, timedelta]:
        """Every duration set in this request, by field name (a list's entries as name[i])."""
        found = {f"pending_verification_reminders[{i}]": d
                 for i, d in enumerate(self.pending_verification_reminders or [])}
        for name in ("verification_overdue_after", "handoff_renotify_after", "psa_status_recheck_after"):
            value = getattr(self, name)
            if value is not None:
                found[name] = value
        return found

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, data: Any) -> Any:
        # Unknown keys are kept as given, and settings travel into workflow inputs: bound what one may store.
        if isinstance(data, dict):
            if len(data) > MAX_PREFERENCE_KEYS:
                raise ValueError(f"at most {MAX_PREFERENCE_KEYS} preferences may be set at once")
            size = len(json.dumps(data, default=str))
            if size > MAX_PREFERENCES_BYTES:
                raise ValueError(f"the preferences are {size:,} bytes as JSON; at most {MAX_PREFERENCES_BYTES:,}")
        return data


class SettingsOut(BaseModel):
    """The account's preferences."""

    preferences: dict[str, Any]
    updated_at: datetime
