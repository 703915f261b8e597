"""The pool pings a connection only after it sat idle: a dead idle one is replaced, a recent one is trusted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.pool import QueuePool

from core.config import Settings
from db import session as db_session
from db.session import make_engine

PID = text("SELECT pg_backend_pid()")


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """An engine of one pooled connection."""
    made = make_engine(settings.database_url or "", pool_size=1)
    yield made
    await made.dispose()


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(PID) or 0)


async def _terminate(session_factory: async_sessionmaker[AsyncSession], pid: int) -> None:
    """Kill the backend from another connection and wait until the server has let it go."""
    async with session_factory() as s:
        assert await s.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        await s.commit()
    for _ in range(200):
        async with session_factory() as s:  # a new transaction each time: pg_stat_activity is a snapshot
            if not await s.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}):
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"backend {pid} still runs 10 s after pg_terminate_backend")


async def test_a_dead_connection_that_sat_idle_is_replaced_by_the_ping(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_session, "IDLE_PING_AFTER_S", 0.3)  # the module global the listener reads per checkout
    first = await _backend_pid(engine)
    returned = time.monotonic()
    await _terminate(session_factory, first)
    await asyncio.sleep(max(0.0, 0.4 - (time.monotonic() - returned)))  # now idle past the threshold

    second = await _backend_pid(engine)  # the ping failed, the pool reconnected: no error reaches the caller

    assert second != first
    pool = engine.sync_engine.pool
    assert isinstance(pool, QueuePool) and pool.checkedin() == 1  # replaced in place: still one pooled connection
    assert await _backend_pid(engine) == second


async def test_a_connection_used_within_the_window_is_not_pinged(
    engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_session, "IDLE_PING_AFTER_S", 3600.0)
    first = await _backend_pid(engine)
    await _terminate(session_factory, first)

    # No ping: the query itself meets the dead connection, and SQLAlchemy reports it as a disconnect.
    with pytest.raises(DBAPIError) as failed:
        await _backend_pid(engine)
    assert failed.value.connection_invalidated, failed.value

    second = await _backend_pid(engine)  # the invalidated connection was dropped: the pool recovers at once
    assert second != first
