"""Request dependencies and their `Annotated` aliases: DB session, settings, caller, role, plan."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.temporal import TemporalGateway
from core.config import Settings
from core.errors import Forbidden, NotAuthenticated, NotFound, SubscriptionRequired
from core.security import decode_access_token
from db.models import User
from db.models.account import PAYING_STATUSES
from db.repositories.access import (
    Access,
    AccessRepository,
    Lookup,
    ai_session_lookup,
    fix_lookup,
    handoff_lookup,
    walk_lookup,
)
from db.session import unit_of_work
from services.ai_sessions import AiSessionRef, FixCommands, FixRef, SessionCommands
from services.handoffs import HandoffCommands, HandoffRef
from services.psa_connections import PsaConnections
from services.walks import WalkCommands, WalkRef
from services.workflow_client import WorkflowClient

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/login", auto_error=False)


async def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: it commits when the route returns and rolls back when it raises (a domain
    error too). Routes and services flush at most. Function-scoped (`SessionDep`), so the commit runs before
    the response is sent: a commit that fails is an error answer, never a 200."""
    async with unit_of_work(request.app.state.session_factory) as session:
        request.state.unit_of_work = session
        yield session


def request_unit_of_work(request: Request) -> AsyncSession | None:
    """The request's unit of work (`get_db`'s session) when the route opened one, else None."""
    session: AsyncSession | None = getattr(request.state, "unit_of_work", None)
    return session


async def get_session_factory(request: Request) -> async_sessionmaker[AsyncSession]:
    """The process's session factory, for a short `unit_of_work` of a route's own (e.g. released before a slow
    step, or kept although the request then fails)."""
    factory: async_sessionmaker[AsyncSession] = request.app.state.session_factory
    return factory


async def get_read_db(request: Request) -> AsyncIterator[AsyncSession]:
    """An autocommit session for reads after a command: each statement is one round trip (no BEGIN/COMMIT)."""
    async with request.app.state.read_session_factory() as session:
        yield session


async def get_temporal(request: Request) -> TemporalGateway:
    """The process's Temporal gateway."""
    gateway: TemporalGateway = request.app.state.temporal
    return gateway


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[AsyncSession, Depends(get_db, scope="function")]
SessionFactoryDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_session_factory)]
ReadSessionDep = Annotated[AsyncSession, Depends(get_read_db)]
TemporalDep = Annotated[TemporalGateway, Depends(get_temporal)]
TokenDep = Annotated[str | None, Depends(oauth2_scheme)]


@dataclass(frozen=True)
class Caller:
    """The authenticated user and its account's subscription status (None when it has no subscription)."""

    user: User
    subscription_status: str | None


async def _access(request: Request, settings: Settings, token: str | None,
                  lookup: Lookup | None = None) -> Access:
    """The caller (and, with `lookup`, the entity the path names) in one autocommit read; 401 when the token is
    missing, garbled or expired, or names a user that is gone or inactive. The caller is kept for the request,
    so `get_caller` after an owned-entity dependency costs no query."""
    if not token:
        raise NotAuthenticated("Not authenticated: send 'Authorization: Bearer <token>'")
    user_id = decode_access_token(token, secret=settings.jwt_secret, algorithm=settings.jwt_algorithm,
                                  lifetime_minutes=settings.jwt_expire_minutes)
    # Its own short-lived session: a command route must not hold a pooled connection while it waits on a
    # workflow (objects stay loaded: the factory does not expire them).
    async with request.app.state.read_session_factory() as session:
        found = await AccessRepository(session).caller(user_id, lookup)
    if found is None or not found.user.can_log_in:
        raise NotAuthenticated("This user no longer exists or is inactive")
    request.state.caller = Caller(user=found.user, subscription_status=found.subscription_status)
    return found


async def _owned(request: Request, settings: Settings, token: str | None, lookup: Lookup,
                 not_found: str) -> dict[str, Any]:
    """The looked-up entity's columns, read with the caller; `NotFound(not_found)` when it is not in the account."""
    entity = (await _access(request, settings, token, lookup)).entity
    if entity is None:
        raise NotFound(not_found)
    return entity


async def get_caller(request: Request, settings: SettingsDep, token: TokenDep) -> Caller:
    """The user named by the bearer token, with its account's subscription status (see `_access`)."""
    cached: Caller | None = getattr(request.state, "caller", None)
    if cached is not None:
        return cached
    await _access(request, settings, token)
    caller: Caller = request.state.caller
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_current_user(caller: CallerDep) -> User:
    """The authenticated user (see `get_caller`)."""
    return caller.user


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


async def require_ai_session_reader(user: CurrentUser) -> User:
    """Engineers and above work AI sessions; viewers may read them; L1 techs have the L1 workspace."""
    if user.account_role == "l1_tech":
        raise Forbidden("AI sessions require the engineer role or higher (viewers may read them); you are l1_tech")
    return user


AiSessionReader = Annotated[User, Depends(require_ai_session_reader)]


async def require_active_subscription(caller: CallerDep) -> None:
    """402 unless the caller's account is `active` or `trialing`."""
    status = caller.subscription_status
    if status not in PAYING_STATUSES:
        raise SubscriptionRequired(
            f"This account's subscription is '{status or 'none'}'; an active or trialing subscription is required"
        )


ActiveSubscription = Depends(require_active_subscription)


# --- workflows and the entities they own ------------------------------------------------------------


async def get_workflow_client(request: Request, temporal: TemporalDep, settings: SettingsDep) -> WorkflowClient:
    """The generic workflow client under the process's admission (503 while Temporal is unreachable)."""
    return WorkflowClient(await temporal.client(), task_queue=settings.temporal_task_queue,
                          accept_timeout_s=settings.workflow_call_timeout_s, admission=request.app.state.admission)


WorkflowClientDep = Annotated[WorkflowClient, Depends(get_workflow_client)]


async def get_walk_commands(workflows: WorkflowClientDep, settings: SettingsDep) -> WalkCommands:
    """Typed commands on walk workflows."""
    return WalkCommands(workflows, settings)


WalkCommandsDep = Annotated[WalkCommands, Depends(get_walk_commands)]


async def get_owned_walk(session_id: uuid.UUID, request: Request, settings: SettingsDep,
                         token: TokenDep) -> WalkRef:
    """The walk named in the path when it belongs to the caller's account (404 otherwise), read with the caller."""
    return WalkRef.of_row(await _owned(request, settings, token, walk_lookup(session_id), "Walk session not found"))


OwnedWalk = Annotated[WalkRef, Depends(get_owned_walk)]


async def get_session_commands(workflows: WorkflowClientDep, settings: SettingsDep) -> SessionCommands:
    """Typed commands on AI session workflows."""
    return SessionCommands(workflows, settings)


async def get_fix_commands(workflows: WorkflowClientDep, settings: SettingsDep) -> FixCommands:
    """Typed commands on fix verification workflows."""
    return FixCommands(workflows, settings)


async def get_psa_connections(session: SessionDep, settings: SettingsDep) -> PsaConnections:
    """The account-facing PSA connection service for this request."""
    return PsaConnections(session, settings)


PsaConnectionsDep = Annotated[PsaConnections, Depends(get_psa_connections)]
SessionCommandsDep = Annotated[SessionCommands, Depends(get_session_commands)]
FixCommandsDep = Annotated[FixCommands, Depends(get_fix_commands)]


async def get_owned_ai_session(session_id: uuid.UUID, request: Request, settings: SettingsDep,
                               token: TokenDep) -> AiSessionRef:
    """The AI session named in the path when it belongs to the caller's account (404 otherwise), read with the
    caller."""
    return AiSessionRef(**await _owned(request, settings, token, ai_session_lookup(session_id), "AI session not found"))


OwnedAiSession = Annotated[AiSessionRef, Depends(get_owned_ai_session)]


async def get_owned_fix(session_id: uuid.UUID, fix_id: uuid.UUID, request: Request, settings: SettingsDep,
                        token: TokenDep) -> FixRef:
    """The fix named in the path when it belongs to that session of the caller's account (404 otherwise)."""
    found = await _owned(request, settings, token, fix_lookup(session_id, fix_id),
                         "Suggested fix not found in this session")
    return FixRef.of_row(found)


OwnedFix = Annotated[FixRef, Depends(get_owned_fix)]


async def get_handoff_commands(workflows: WorkflowClientDep, settings: SettingsDep) -> HandoffCommands:
    """Typed commands on handoff workflows."""
    return HandoffCommands(workflows, settings)


HandoffCommandsDep = Annotated[HandoffCommands, Depends(get_handoff_commands)]


async def get_owned_handoff(session_id: uuid.UUID, handoff_id: uuid.UUID, request: Request, settings: SettingsDep,
                            token: TokenDep) -> HandoffRef:
    """The handoff named in the path when it belongs to that session of the caller's account (404 otherwise)."""
    found = await _owned(request, settings, token, handoff_lookup(session_id, handoff_id),
                         "Handoff not found in this session")
    return HandoffRef(**found)


OwnedHandoff = Annotated[HandoffRef, Depends(get_owned_handoff)]
