"""The caller's account: users, subscription and settings."""

from __future__ import annotations

import hmac
import json
import logging
import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Response, status

from api.deps import AdminUser, CurrentUser, SessionDep, SessionFactoryDep, SettingsDep
from api.errors import error_responses
from api.idempotency import Idempotent
from api.schemas.account import (
    AccountOut,
    AccountPreferences,
    CreateUserRequest,
    SettingsOut,
    SubscriptionOut,
    SubscriptionUpdate,
    UpdateUserRequest,
    UserOut,
)
from api.schemas.common import Limit, Offset
from core.config import Settings
from core.errors import Conflict, Forbidden, NotAuthenticated, NotFound, RuleViolation
from core.security import hash_password_async
from db.models import ROLE_RANK, User
from db.repositories.accounts import AccountRepository
from db.repositories.users import UserRepository
from db.session import unit_of_work

log = logging.getLogger(__name__)
MAX_STORED_PREFERENCES_BYTES = 64 * 1024
router = APIRouter(prefix="/account", tags=["account"], responses=error_responses(401, 503))



@router.get("", response_model=AccountOut, responses=error_responses(404))
async def get_account(user: CurrentUser, session: SessionDep) -> AccountOut:
    """The caller's account and subscription."""
    repo = AccountRepository(session)
    account = await repo.get(user.account_id)
    if account is None:
        raise NotFound("Account not found")
    sub = await repo.get_subscription(account.id)
    return AccountOut(
        id=account.id, name=account.name, created_at=account.created_at,
        subscription=SubscriptionOut.model_validate(sub) if sub else None,
    )


@router.get("/users", response_model=list[UserOut])
async def list_users(user: CurrentUser, session: SessionDep, limit: Limit = 50, offset: Offset = 0) -> list[UserOut]:
    """Live users of the caller's account (paginated with limit/offset)."""
    rows = await UserRepository(session).list_for_account(user.account_id, limit=limit, offset=offset)
    return [UserOut.model_validate(u) for u in rows]


def _check_may_grant(actor: User, role: str) -> None:
    # An admin may not mint owners or admins above their own rank.
    if ROLE_RANK[role] > ROLE_RANK[actor.account_role]:
        raise Forbidden(f"You may not grant the {role} role (you are {actor.account_role})")


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserOut,
             responses=error_responses(400, 403, described={409: "A user with this email already exists"},
                                       examples={409: "A user with this email already exists"}))
async def create_user(body: CreateUserRequest, actor: AdminUser, session: SessionDep, sessions: SessionFactoryDep,
                      idem: Idempotent) -> Response:
    """Add a user to the caller's account."""

    async def command() -> UserOut:
        _check_may_grant(actor, body.account_role)
        # A short read of its own: no pooled connection is held while hashing.
        async with unit_of_work(sessions) as check:
            taken = await UserRepository(check).get_by_email(body.email) is not None
        if taken:
            raise Conflict("A user with this email already exists")
        hashed = await hash_password_async(body.password)
        user = await UserRepository(session).create(  # Conflict when a concurrent request took the email meanwhile
            account_id=actor.account_id, email=body.email, name=body.name,
            hashed_password=hashed, account_role=body.account_role,
        )
        log.info("user %s added %s (%s) to account %s", actor.id, user.id, user.account_role, actor.account_id)
        return UserOut.model_validate(user)

    return await idem.run(command, status_code=status.HTTP_201_CREATED)


async def _member(session: SessionDep, actor: User, user_id: uuid.UUID) -> User:
    user = await UserRepository(session).get_in_account(actor.account_id, user_id)
    if user is None:
        raise NotFound("User not found")
    return user


@router.patch("/users/{user_id}", response_model=UserOut, responses=error_responses(
    403, 404, described={400: "You cannot deactivate or demote yourself, or the body is not valid JSON"}))
async def update_user(
    user_id: uuid.UUID, body: UpdateUserRequest, actor: AdminUser, session: SessionDep, idem: Idempotent
) -> Response:
    """Change a user's role or active flag."""

    async def command() -> UserOut:
        user = await _member(session, actor, user_id)
        if body.account_role is not None:
            _check_may_grant(actor, body.account_role)
        if ROLE_RANK[user.account_role] > ROLE_RANK[actor.account_role]:
            raise Forbidden("You may not change a user whose role is above yours")
        if user.id == actor.id and (body.is_active is False or body.account_role not in (None, actor.account_role)):
            raise RuleViolation("You cannot deactivate or demote yourself; ask another admin")
        user = await UserRepository(session).update(user, account_role=body.account_role, is_active=body.is_active)
        return UserOut.model_validate(user)

    return await idem.run(command)


@router.delete("/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses=error_responses(403, 404, described={400: "You cannot delete yourself"}))
async def delete_user(user_id: uuid.UUID, actor: AdminUser, session: SessionDep, idem: Idempotent) -> Response:
    """Soft-delete a user (they can no longer log in)."""

    async def command() -> None:
        user = await _member(session, actor, user_id)
        if user.id == actor.id:
            raise RuleViolation("You cannot delete yourself")
        if ROLE_RANK[user.account_role] > ROLE_RANK[actor.account_role]:
            raise Forbidden("You may not delete a user whose role is above yours")
        await UserRepository(session).soft_delete(user)
        return None

    return await idem.run(command, status_code=status.HTTP_204_NO_CONTENT)


BillingSecret = Annotated[str | None, Header(
    alias="X-Billing-Secret", description="The billing system's shared secret (`BILLING_SECRET`); not a user token.",
)]


def _check_billing_secret(settings: Settings, given: str | None) -> None:
    if not settings.billing_secret:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            "Billing is not configured on this server (BILLING_SECRET is not set)")
    if not given:
        raise NotAuthenticated("Only the billing system may change a subscription: send its secret in the "
                               "X-Billing-Secret header (a user token is not enough)")
    if not hmac.compare_digest(given.encode(), settings.billing_secret.encode()):
        raise NotAuthenticated("Invalid billing secret")


@router.put("/subscription", response_model=SubscriptionOut, responses=error_responses(400, 404, described={
    401: "Missing or wrong X-Billing-Secret (a user token cannot change the plan)",
    503: "Billing is not configured (BILLING_SECRET unset), or the database is unreachable",
}))
async def put_subscription(body: SubscriptionUpdate, session: SessionDep, settings: SettingsDep,
                           billing_secret: BillingSecret = None) -> SubscriptionOut:
    """Set an account's plan and status: the billing system's hook, authenticated by its shared secret."""
    _check_billing_secret(settings, billing_secret)
    repo = AccountRepository(session)
    if await repo.get(body.account_id) is None:
        raise NotFound("Account not found")
    sub = await repo.set_subscription(body.account_id, plan=body.plan, status=body.status)
    log.info("billing set account %s subscription -> %s/%s", body.account_id, body.plan, body.status)
    return SubscriptionOut.model_validate(sub)


@router.get("/settings", response_model=SettingsOut, responses=error_responses(403))
async def get_settings_(actor: AdminUser, session: SessionDep) -> SettingsOut:
    """The account's preferences."""
    # The row is created on first read for accounts made before settings existed (the request commits it).
    row = await AccountRepository(session).merge_preferences(actor.account_id, {})
    return SettingsOut(preferences=row.preferences, updated_at=row.updated_at)


@router.put("/settings", response_model=SettingsOut, responses=error_responses(400, 403))
async def put_settings(
    body: AccountPreferences, actor: AdminUser, session: SessionDep, settings: SettingsDep, idem: Idempotent
) -> Response:
    """Merge the given preferences into the stored ones (a key set to null is removed)."""

    async def command() -> SettingsOut:
        recipients = body.default_escalation_recipient_ids
        if recipients:  # escalation emails go to these: only people who can act on them
            live = await UserRepository(session).active_in_account(actor.account_id, recipients)
            missing = set(recipients) - {u.id for u in live}
            if missing:
                raise RuleViolation(f"default_escalation_recipient_ids must be active users of your account: "
                                    f"{', '.join(sorted(map(str, missing)))}")
        minimum = timedelta(seconds=1) if settings.dev_mode else timedelta(minutes=1)
        short = [name for name, value in body.durations().items() if value < minimum]
        if short:  # demos and black-box tests need seconds; production reminders every few seconds are a mistake
            least = "one second" if settings.dev_mode else "one minute"
            raise RuleViolation(f"{', '.join(short)} must be at least {least} (seconds are allowed only in dev mode)")
        changes = body.model_dump(mode="json", exclude_unset=True)
        row = await AccountRepository(session).merge_preferences(actor.account_id, changes)
        stored = len(json.dumps(row.preferences))
        if stored > MAX_STORED_PREFERENCES_BYTES:  # many small PUTs of new keys must not grow it without end
            # The error rolls the merge back with the rest of the request.
            raise RuleViolation(f"The account's preferences would be {stored:,} bytes as JSON; at most "
                                f"{MAX_STORED_PREFERENCES_BYTES:,}: remove keys you no longer need (set them to null)")
        return SettingsOut(preferences=row.preferences, updated_at=row.updated_at)


    return await idem.run(command)
