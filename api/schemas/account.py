"""Auth, user, account, subscription and settings payloads."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, model_validator

from api.schemas.common import RequestBody

Role = Literal["owner", "admin", "engineer", "l1_tech", "viewer"]
SubscriptionStatus = Literal["active", "trialing", "past_due", "canceled", "unpaid", "incomplete"]

PASSWORD = Field(min_length=8, max_length=200, description="At least 8 characters.")
# ConnectWise ids are 32-bit; the bound keeps a typo from being stored and failing later at the PSA.
PSA_ID = Field(default=None, ge=1, le=2**31 - 1, description="A ConnectWise status id.")
MINUTES_PER_YEAR = 365 * 24 * 60
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

    account_id: uuid.UUID
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
                    "pending_verification_reminder_minutes": [60, 240],
                }
            ]
        },
    )

    cw_resolved_status_id: int | None = PSA_ID
    cw_escalated_status_id: int | None = PSA_ID
    default_escalation_recipient_ids: list[uuid.UUID] | None = Field(
        default=None, max_length=100, description="Active users of this account who receive escalations by default."
    )
    pending_verification_reminder_minutes: list[Annotated[int, Field(ge=1, le=MINUTES_PER_YEAR)]] | None = Field(
        default=None, max_length=20, description="Reminder offsets for fixes awaiting verification, in minutes."
    )

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
