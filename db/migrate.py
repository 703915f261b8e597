"""Apply Alembic migrations programmatically (used by `rflow migrate`, `rflow dev` and the tests)."""

from __future__ import annotations

import asyncio
import logging

from alembic import command
from alembic.config import Config

from core.config import PROJECT_ROOT

log = logging.getLogger(__name__)


def alembic_config(database_url: str) -> Config:
    """The project's Alembic config pointed at `database_url`."""
    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade_to_head(database_url: str) -> None:
    """Bring the schema to the newest revision (idempotent)."""
    command.upgrade(alembic_config(database_url), "head")


async def upgrade_to_head_async(database_url: str) -> None:
    """`upgrade_to_head` from inside a running event loop (Alembic's env runs its own loop)."""
    await asyncio.to_thread(upgrade_to_head, database_url)
