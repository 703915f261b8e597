"""The persist floor's one write (see workflows/persist_floor.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from db.repositories.persist_floor import PersistFloorRepository
from workflows.contracts.common import REJECT_STALE, reject
from workflows.contracts.persist_floor import BUMP_ROW, BumpResult, BumpRow


class PersistFloorPersistence:
    """One guarded `UPDATE … RETURNING` in its own transaction, as a command's write is."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory

    def all(self) -> list[Callable[..., Any]]:
        """Every activity of this class."""
        return [self.bump]

    @activity.defn(name=BUMP_ROW.name)
    async def bump(self, inp: BumpRow) -> BumpResult:
        """Bump the row from the workflow's version; Stale when it moved on."""
        async with self._session_factory() as session, session.begin():
            version = await PersistFloorRepository(session).bump(inp.row_id, inp.version)
        if version is None:
            raise reject(REJECT_STALE, f"persist-floor row {inp.row_id} is not at version {inp.version}")
        return BumpResult(version=version)
