"""Register, log in, and who-am-I."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.deps import CurrentUser, SessionDep, SessionFactoryDep, SettingsDep
from api.errors import error_responses
from api.schemas.account import LoginRequest, RegisterRequest, TokenResponse, UserOut
from api.schemas.common import unstorable
from core.config import Settings
from core.errors import Conflict, NotAuthenticated
from core.security import create_access_token, hash_password_async, verify_password_async
from db.repositories.accounts import AccountRepository
from db.repositories.login_throttle import Attempt, LoginThrottleRepository
from db.repositories.users import EMAIL_TAKEN, UserRepository
from db.session import unit_of_work

log = logging.getLogger(__name__)
router = APIRouter(prefix="/auth", tags=["auth"], responses=error_responses(503))
LOGIN_ERRORS = error_responses(400, described={
    401: "Bad credentials",
    429: "Too many failed logins for this email or from this address; `Retry-After` says when to try again",
})


@router.post("/register", status_code=status.HTTP_201_CREATED, response_model=UserOut,
             responses=error_responses(400, described={409: "Email already registered"},
                                       examples={409: EMAIL_TAKEN}))
async def register(body: RegisterRequest, session: SessionDep, sessions: SessionFactoryDep) -> UserOut:
    """Create an account and its owner."""
    # A short read of its own: no pooled connection is held while hashing (a burst would starve the pool).
    async with unit_of_work(sessions) as check:
        taken = await UserRepository(check).get_by_email(body.email) is not None
    if taken:
        raise Conflict(EMAIL_TAKEN)  # the common case, answered before paying for a hash
    hashed = await hash_password_async(body.password)
    account = await AccountRepository(session).create(body.account_name or body.name)
    user = await UserRepository(session).create(  # raises Conflict when a concurrent register took the email
        account_id=account.id,
        email=body.email,
        name=body.name,
        hashed_password=hashed,
        account_role="owner",
    )
    log.info("registered account %s with owner %s", account.id, user.id)
    return UserOut.model_validate(user)


def _too_many(attempt: Attempt, what: str) -> HTTPException:
    at = (datetime.now(UTC) + timedelta(seconds=attempt.retry_after_s)).strftime("%H:%M:%S UTC")
    detail = f"Too many failed logins {what}; try again in {attempt.retry_after_s} s (at {at})"
    return HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, detail, headers={"Retry-After": str(attempt.retry_after_s)})


async def _issue_token(request: Request, session: AsyncSession, sessions: async_sessionmaker[AsyncSession],
                       settings: Settings, email: str, password: str) -> TokenResponse:
    window = settings.login_throttle_window_s
    # Always email first, then address: concurrent logins lock the counter rows in one order (no deadlock).
    keys = (f"email:{email.lower()}", f"addr:{request.client.host if request.client else 'unknown'}")
    # Counted (and committed) before the (slow) check, so concurrent guesses see each other.
    async with unit_of_work(sessions) as counting:
        by_email = await LoginThrottleRepository(counting).count_attempt(keys[0], window_s=window)
        by_address = await LoginThrottleRepository(counting).count_attempt(keys[1], window_s=window)
    refusal = None
    if by_email.failures > settings.login_max_failures_per_email:
        refusal = _too_many(by_email, "for this email")
    elif by_address.failures > settings.login_max_failures_per_address:
        refusal = _too_many(by_address, "from your address")
    if refusal is not None:
        async with unit_of_work(sessions) as giving_back:  # kept although the request fails with the 429
            for key in keys:  # a refused attempt checked nothing: it is no failure
                await LoginThrottleRepository(giving_back).give_back(key)
        raise refusal
    # A short read of its own: no pooled connection is held while verifying (a burst would starve the pool).
    async with unit_of_work(sessions) as lookup:
        user = await UserRepository(lookup).get_by_email(email)
    # An unknown email is verified against a dummy hash: it costs what a wrong password costs (no oracle).
    valid = await verify_password_async(password, user.hashed_password if user else None)
    if user is None or not valid or not user.can_log_in:
        raise NotAuthenticated("Incorrect email or password")
    throttle = LoginThrottleRepository(session)  # the request's unit of work commits these
    await throttle.reset(keys[0])
    await throttle.give_back(keys[1])
    await throttle.purge_expired(window_s=window)
    token = create_access_token(
        user.id, secret=settings.jwt_secret, algorithm=settings.jwt_algorithm,
        expire_minutes=settings.jwt_expire_minutes,
    )
    return TokenResponse(access_token=token)


@router.post("/login/json", response_model=TokenResponse, responses=LOGIN_ERRORS)
async def login_json(body: LoginRequest, request: Request, session: SessionDep, sessions: SessionFactoryDep,
                     settings: SettingsDep) -> TokenResponse:
    """Exchange email and password for a bearer token (failed attempts are throttled per email and address)."""
    return await _issue_token(request, session, sessions, settings, body.email, body.password)


@router.post("/login", response_model=TokenResponse, include_in_schema=True, responses=LOGIN_ERRORS)
async def login_form(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request, session: SessionDep,
    sessions: SessionFactoryDep, settings: SettingsDep,
) -> TokenResponse:
    """OAuth2 password form (the OpenAPI "Authorize" button); `username` is the email."""
    # A form is not a RequestBody model, so check what reaches the database here (a NUL would crash the query).
    for field, value in (("username", form.username), ("password", form.password)):
        problem = unstorable(value, field)
        if problem:
            raise RequestValidationError([{"type": "unstorable_value", "loc": ("body", field), "msg": problem}])
    return await _issue_token(request, session, sessions, settings, form.username, form.password)


@router.get("/me", response_model=UserOut, responses=error_responses(401))
async def me(user: CurrentUser) -> UserOut:
    """The caller."""
    return UserOut.model_validate(user)
