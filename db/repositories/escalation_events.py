"""The escalation event log: written in the transaction of the change it reports, read back to resume a stream.

Publishing takes one transaction-scoped advisory lock, so ids are handed out in commit order across the whole
database: a stream that resumes after id N misses nothing, and `pg_notify` (sent at commit, in commit order)
tells every API process's listener at once.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import EscalationEvent

CHANNEL = "escalation_events"
# Any bigint works; it only has to be the same for every publisher ("rf-esc" in ASCII).
PUBLISH_LOCK_KEY = 0x72662D657363


def notify_payload(event: EscalationEvent) -> str:
    """The NOTIFY payload: the event itself (ids and a priority, far below Postgres's 8000-byte limit)."""
    return json.dumps({"id": event.id, "account_id": str(event.account_id), "kind": event.kind,
                       "data": event.data}, separators=(",", ":"))


class EscalationEventRepository:
    """Appends events (with NOTIFY) and reads them back for replay."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def publish(self, *, account_id: uuid.UUID, kind: str, handoff_id: uuid.UUID, data: dict[str, Any],
                      dedupe_key: str) -> EscalationEvent | None:
        """Log the event and NOTIFY at commit; None when `dedupe_key` was logged already. Call it last in the
        transaction: the lock it takes is held until commit."""
        await self.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PUBLISH_LOCK_KEY})
        stmt = (insert(EscalationEvent)
                .values(account_id=account_id, kind=kind, handoff_id=handoff_id, data=data, dedupe_key=dedupe_key)
                .on_conflict_do_nothing(index_elements=["dedupe_key"])
                .returning(EscalationEvent))
        event = (await self.session.scalars(stmt)).one_or_none()
        if event is not None:
            await self.session.execute(select(func.pg_notify(CHANNEL, notify_payload(event))))
        return event

    async def after(self, after_id: int, *, account_id: uuid.UUID | None = None,
                    limit: int = 500) -> Sequence[EscalationEvent]:
        """Events with an id above `after_id` (of one account, or all), oldest first."""
        query = select(EscalationEvent).where(EscalationEvent.id > after_id)
        if account_id is not None:
            query = query.where(EscalationEvent.account_id == account_id)
        return (await self.session.scalars(query.order_by(EscalationEvent.id).limit(limit))).all()

    async def latest_id(self) -> int:
        """The newest committed event id (0 when the log is empty): a stream's starting cursor."""
        return int(await self.session.scalar(select(func.coalesce(func.max(EscalationEvent.id), 0))) or 0)
