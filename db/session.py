"""Engine and session factory for the async Postgres driver."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine


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


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An engine with pre-ping so a restarted database does not fail the first request."""
    return create_async_engine(to_async_url(url), pool_size=pool_size, pool_pre_ping=True)


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes after commit (we return them in responses)."""
    return async_sessionmaker(engine, expire_on_commit=False)
