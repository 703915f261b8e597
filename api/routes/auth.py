"""Register, log in, and who-am-I."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.errors import error_responses
from api.schemas.account import LoginRequest, RegisterRequest, TokenResponse, UserOut
from api.schemas.common import unstorable
from core.config import Settings
from core.errors import Conflict, NotAuthenticated
from core.security import create_access_token, hash_password, verify_password
from db.repositories.accounts import AccountRepository
from db.repositories.users import UserRepository

log = logging.getLogger(__name__)
router = APIRouter(prefix="/auth", tags=["auth"], responses=error_responses(503))


@router.post("/register", status_code=status.HTTP_201_CREATED, response_model=UserOut,
             responses=error_responses(400, described={409: "Email already registered"}))
async def register(body: RegisterRequest, session: SessionDep) -> UserOut:
    """Create an account and its owner."""
    users = UserRepository(session)
    if await users.get_by_email(body.email) is not None:
        raise Conflict("A user with this email already exists")
    account = await AccountRepository(session).create(body.account_name or body.name)
    user = await users.create(
        account_id=account.id,
        email=body.email,
        name=body.name,
        hashed_password=hash_password(body.password),
        account_role="owner",
    )
    await session.commit()
    log.info("registered account %s with owner %s", account.id, user.id)
    return UserOut.model_validate(user)


async def _issue_token(session: AsyncSession, settings: Settings, email: str, password: str) -> TokenResponse:
    user = await UserRepository(session).get_by_email(email)
    if user is None or not verify_password(password, user.hashed_password) or not user.can_log_in:
        raise NotAuthenticated("Incorrect email or password")
    token = create_access_token(
        user.id, secret=settings.jwt_secret, algorithm=settings.jwt_algorithm,
        expire_minutes=settings.jwt_expire_minutes,
    )
    return TokenResponse(access_token=token)


@router.post("/login/json", response_model=TokenResponse,
             responses=error_responses(400, described={401: "Bad credentials"}))
async def login_json(body: LoginRequest, session: SessionDep, settings: SettingsDep) -> TokenResponse:
    """Exchange email and password for a bearer token."""
    return await _issue_token(session, settings, body.email, body.password)


@router.post("/login", response_model=TokenResponse, include_in_schema=True,
             responses=error_responses(400, described={401: "Bad credentials"}))
async def login_form(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep, settings: SettingsDep
) -> TokenResponse:
    """OAuth2 password form (the OpenAPI "Authorize" button); `username` is the email."""
    # A form is not a RequestBody model, so check what reaches the database here (a NUL would crash the query).
    for field, value in (("username", form.username), ("password", form.password)):
        problem = unstorable(value, field)
        if problem:
            raise RequestValidationError([{"type": "unstorable_value", "loc": ("body", field), "msg": problem}])
    return await _issue_token(session, settings, form.username, form.password)


@router.get("/me", response_model=UserOut, responses=error_responses(401))
async def me(user: CurrentUser) -> UserOut:
    """The caller."""
    return UserOut.model_validate(user)
