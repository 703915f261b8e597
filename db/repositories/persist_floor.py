"""Rows of the persist floor: one insert per bench workflow, one guarded bump per update."""

from __future__ import annotations

import uuid

from sqlalchemy import func, insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import PersistFloorRow


class PersistFloorRepository:
    """Writes `persist_floor_rows` (the bench's own table; no product data)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self) -> uuid.UUID:
        """A new row at version 0."""
        row_id = uuid.uuid4()
        await self.session.execute(insert(PersistFloorRow).values(id=row_id))
        return row_id

    async def bump(self, row_id: uuid.UUID, version: int) -> int | None:
        """Move the row from `version` to the next one: the new version, or None when it was not at `version`."""
        found = await self.session.scalar(
            update(PersistFloorRow)
            .where(PersistFloorRow.id == row_id, PersistFloorRow.version == version)
            .values(version=PersistFloorRow.version + 1, updated_at=func.now())
            .returning(PersistFloorRow.version)
            .execution_options(synchronize_session=False)
        )
        return int(found) if found is not None else None
