"""Request dependencies and their `Annotated` aliases: DB session, settings, caller, role, plan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from api.temporal import TemporalGateway
from core.config import Settings
from core.errors import Forbidden, NotAuthenticated, SubscriptionRequired
from core.security import decode_access_token
from db.models import User
from db.models.account import PAYING_STATUSES
from db.repositories.accounts import AccountRepository
from db.repositories.users import UserRepository

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)


def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request; routes commit what they change, anything else rolls back."""
    async with request.app.state.session_factory() as session:
        yield session


def get_temporal(request: Request) -> TemporalGateway:
    """The process's Temporal gateway."""
    gateway: TemporalGateway = request.app.state.temporal
    return gateway


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_db)]
TemporalDep = Annotated[TemporalGateway, Depends(get_temporal)]
TokenDep = Annotated[str | None, Depends(oauth2_scheme)]


async def get_current_user(session: SessionDep, settings: SettingsDep, token: TokenDep) -> User:
    """The user named by the bearer token; 401 when missing, garbled, expired, inactive or deleted."""
    if not token:
        raise NotAuthenticated("Not authenticated: send 'Authorization: Bearer <token>'")
    user_id = decode_access_token(token, secret=settings.jwt_secret, algorithm=settings.jwt_algorithm)
    user = await UserRepository(session).get(user_id)
    if user is None or not user.can_log_in:
        raise NotAuthenticated("This user no longer exists or is inactive")
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def require_role(minimum: str) -> Callable[[User], Awaitable[User]]:
    """A dependency that passes users with `minimum` role or above and refuses the rest with 403."""

    async def dependency(user: CurrentUser) -> User:
        if not user.has_role(minimum):
            label = minimum.replace("_", " ")
            raise Forbidden(f"This action requires the {label} role or higher (you are {user.account_role})")
        return user

    dependency.__name__ = f"require_{minimum}"
    return dependency


L1User = Annotated[User, Depends(require_role("l1_tech"))]
EngineerUser = Annotated[User, Depends(require_role("engineer"))]
AdminUser = Annotated[User, Depends(require_role("admin"))]
OwnerUser = Annotated[User, Depends(require_role("owner"))]


async def require_active_subscription(user: CurrentUser, session: SessionDep) -> None:
    """402 unless the caller's account is `active` or `trialing`."""
    sub = await AccountRepository(session).get_subscription(user.account_id)
    if sub is None or sub.status not in PAYING_STATUSES:
        status = sub.status if sub else "none"
        raise SubscriptionRequired(
            f"This account's subscription is '{status}'; an active or trialing subscription is required"
        )


ActiveSubscription = Depends(require_active_subscription)
