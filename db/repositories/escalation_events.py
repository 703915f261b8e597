"""The escalation event log: written in the transaction of the change it reports, read back to resume a stream.

Publishing takes one transaction-scoped advisory lock, so ids are handed out in commit order across the whole
database: a listener that resumes after id N misses nothing, and `pg_notify` (sent at commit, in commit order)
tells every API process's listener at once. Under the same lock each event also gets the next number of its
account's own log (`account_seq`, also in commit order): that is the id streams show, so a tenant's ids count
only its own events.
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
    return json.dumps({"id": event.id, "seq": event.account_seq, "account_id": str(event.account_id),
                       "kind": event.kind, "data": event.data}, separators=(",", ":"))


class EscalationEventRepository:
    """Appends events (with NOTIFY) and reads them back for replay."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def publish(self, *, account_id: uuid.UUID, kind: str, handoff_id: uuid.UUID, data: dict[str, Any],
                      dedupe_key: str) -> EscalationEvent | None:
        """Log the event and NOTIFY at commit; None when `dedupe_key` was logged already. Call it last in the
        transaction: the lock it takes is held until commit."""
        await self.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PUBLISH_LOCK_KEY})
        # Read under the lock, so no other publisher can take the same number or commit out of order.
        seq = (select(func.coalesce(func.max(EscalationEvent.account_seq), 0) + 1)
               .where(EscalationEvent.account_id == account_id).scalar_subquery())
        stmt = (insert(EscalationEvent)
                .values(account_id=account_id, account_seq=seq, kind=kind, handoff_id=handoff_id, data=data,
                        dedupe_key=dedupe_key)
                .on_conflict_do_nothing(index_elements=["dedupe_key"])
                .returning(EscalationEvent))
        event = (await self.session.scalars(stmt)).one_or_none()
        if event is not None:
            await self.session.execute(select(func.pg_notify(CHANNEL, notify_payload(event))))
        return event

    async def after(self, after_id: int, *, limit: int = 500) -> Sequence[EscalationEvent]:
        """Events of every account with a log id above `after_id`, oldest first (for the listeners)."""
        query = select(EscalationEvent).where(EscalationEvent.id > after_id)
        return (await self.session.scalars(query.order_by(EscalationEvent.id).limit(limit))).all()

    async def account_after(self, account_id: uuid.UUID, after_seq: int, *,
                            limit: int = 500) -> Sequence[EscalationEvent]:
        """One account's events numbered above `after_seq`, oldest first (a stream's replay)."""
        query = select(EscalationEvent).where(EscalationEvent.account_id == account_id,
                                              EscalationEvent.account_seq > after_seq)
        return (await self.session.scalars(query.order_by(EscalationEvent.account_seq).limit(limit))).all()

    async def latest_id(self) -> int:
        """The newest committed log id (0 when the log is empty): a listener's starting cursor."""
        return int(await self.session.scalar(select(func.coalesce(func.max(EscalationEvent.id), 0))) or 0)

    async def latest_seq(self, account_id: uuid.UUID) -> int:
        """The account's newest committed event number (0 when it has none): a stream's starting cursor."""
        return int(await self.session.scalar(
            select(func.coalesce(func.max(EscalationEvent.account_seq), 0))
            .where(EscalationEvent.account_id == account_id)) or 0)
