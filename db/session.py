"""Engine and session factory for the async Postgres driver, and the unit of work that commits."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from core.config import Settings

log = logging.getLogger(__name__)


def to_async_url(url: str) -> str:
    """Accept plain `postgresql://` URLs (as psql uses them) and point them at asyncpg."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got {url.split(':', 1)[0]}://")


def with_database(url: str, name: str) -> str:
    """`url` pointed at database `name` (query parameters such as ?host= kept)."""
    base, sep, query = url.partition("?")
    head, _, _ = base.rpartition("/")
    return f"{head}/{name}{sep}{query}"


# The client gives up this long after the server-side statement_timeout: normally the server cancels the
# statement first (a clean error, the connection stays usable); the client bound covers a silent server.
CLIENT_GRACE_S = 2.0
# A pooled connection idle longer than this is pinged before reuse. SQLAlchemy's pre-ping pings on every
# checkout, and asyncpg's ping is three round trips (BEGIN, ';', ROLLBACK): 12% of the API's CPU per walk step.
# A connection in steady use has just proven itself; one that sat idle may have been cut by a database restart.
IDLE_PING_AFTER_S = 2.0


def make_engine(
    url: str, *, pool_size: int = 10, connect_timeout_s: float | None = None,
    statement_timeout_s: float | None = None, pool_timeout_s: float | None = None,
) -> AsyncEngine:
    """An engine that pings connections idle over IDLE_PING_AFTER_S (a restarted database does not fail the first
    request) with optional bounds.

    `connect_timeout_s` bounds opening a connection, `statement_timeout_s` every statement (server-side
    `statement_timeout`, and asyncpg's `command_timeout` a little later for a server that stopped answering),
    `pool_timeout_s` the wait for a free pooled connection. None keeps the driver's default (unbounded
    statements), which migrations and admin tools want.
    """
    connect_args: dict[str, Any] = {}
    if connect_timeout_s is not None:
        connect_args["timeout"] = connect_timeout_s
    if statement_timeout_s is not None:
        connect_args["command_timeout"] = statement_timeout_s + CLIENT_GRACE_S
        connect_args["server_settings"] = {"statement_timeout": str(max(1, round(statement_timeout_s * 1000)))}
    extra: dict[str, Any] = {} if pool_timeout_s is None else {"pool_timeout": pool_timeout_s}
    engine = create_async_engine(to_async_url(url), pool_size=pool_size, connect_args=connect_args, **extra)
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: AsyncEngine) -> None:
    """Ping a pooled connection on checkout only when it sat idle; a failed ping makes the pool retry afresh."""
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_AFTER_S:
            return
        try:
            dbapi_connection.ping()  # runs in the pool's greenlet, like SQLAlchemy's own pre-ping
        except Exception as exc:
            # The pool discards this connection and checks out (or opens) another, up to three times.
            raise DisconnectionError(f"pooled connection failed its idle ping: {exc}") from exc


def engine_for(settings: Settings, *, pool_size: int = 10) -> AsyncEngine:
    """The engine of the API and the worker: `settings.database_url` with the configured bounds."""
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set (use `rflow dev` for the embedded database)")
    return make_engine(
        settings.database_url, pool_size=pool_size, connect_timeout_s=settings.database_connect_timeout_s,
        statement_timeout_s=settings.database_statement_timeout_s, pool_timeout_s=settings.database_pool_timeout_s,
    )


def asyncpg_connect_args(url: str) -> dict[str, Any]:
    """Keyword arguments for `asyncpg.connect` from a DATABASE_URL (the same parsing the engine uses, ?host= too)."""
    from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
    from sqlalchemy.engine import make_url

    _, kwargs = PGDialect_asyncpg().create_connect_args(make_url(to_async_url(url)))
    return dict(kwargs)


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes after commit (we return them in responses)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def make_read_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions for single-statement reads: autocommit, so a read is one round trip (no BEGIN and COMMIT).

    Same pool as `make_session_factory`; nothing written through one of these is atomic with anything else.
    """
    return async_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)


# Told whether the unit of work committed (True) or rolled back (False).
Settled = Callable[[bool], Awaitable[None]]
_SETTLED = "rflow.when_settled"


def when_settled(session: AsyncSession, callback: Settled) -> None:
    """Have the unit of work that owns `session` call `callback(committed)` once it has committed or rolled back."""
    session.info.setdefault(_SETTLED, []).append(callback)


@asynccontextmanager
async def unit_of_work(session_factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session whose work commits when the block exits cleanly and rolls back when it raises (code inside
    flushes at most); then its `when_settled` callbacks run."""
    async with session_factory() as session:
        try:
            yield session
            if session.in_transaction():  # a session nobody used (not even `add`) has nothing to commit
                await session.commit()
        except BaseException:
            try:
                await session.rollback()
            finally:
                await _settle(session, committed=False)
            raise
        await _settle(session, committed=True)


async def _settle(session: AsyncSession, *, committed: bool) -> None:
    for callback in session.info.pop(_SETTLED, []):
        try:
            await callback(committed)
        except Exception:  # the outcome stands: a follow-up's failure must neither undo nor hide it
            log.exception("a callback after the unit of work %s failed", "committed" if committed else "rolled back")
