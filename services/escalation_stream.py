"""The live escalation queue: one LISTEN connection per API process fans events out to its SSE streams.

Postgres is the source of truth (`escalation_events`, ids in commit order); NOTIFY only wakes streams up.
Whatever a stream or the listener may have missed (a full queue, a dropped connection) is read back by id.
Listeners follow the global log id; streams show and resume by the account's own number (`seq`), so an id
a tenant sees counts only its own events.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from db.models import EscalationEvent
from db.repositories.escalation_events import CHANNEL, EscalationEventRepository
from db.session import asyncpg_connect_args

log = logging.getLogger(__name__)

PAGE_SIZE = 500
BACKOFF_START_S = 0.1
BACKOFF_MAX_S = 5.0
CONNECT_TIMEOUT_S = 5.0
# A busy server may take a moment to answer; a short liveness interval must not turn that into a reconnect.
MIN_LIVENESS_TIMEOUT_S = 1.0
CLOSE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class StreamEvent:
    """One escalation event: `id` orders the whole log (internal), `seq` its account's log (the SSE id)."""

    id: int
    seq: int
    account_id: uuid.UUID
    kind: str
    data: dict[str, Any]

    @classmethod
    def from_row(cls, row: EscalationEvent) -> StreamEvent:
        """The event of a stored row."""
        return cls(id=row.id, seq=row.account_seq, account_id=row.account_id, kind=row.kind, data=dict(row.data))

    @classmethod
    def from_payload(cls, payload: str) -> StreamEvent:
        """The event of a NOTIFY payload; ValueError when it is not one."""
        try:
            raw = json.loads(payload)
            event_id, seq, kind, data = raw["id"], raw["seq"], raw["kind"], raw["data"]
            account_id = uuid.UUID(raw["account_id"])
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not an escalation event payload: {exc!r}") from exc
        # bool is an int subclass; a non-positive id or number is never handed out.
        if (any(type(n) is not int or n <= 0 for n in (event_id, seq))
                or not isinstance(kind, str) or not isinstance(data, dict)):
            raise ValueError("not an escalation event payload: bad field types")
        return cls(id=event_id, seq=seq, account_id=account_id, kind=kind, data=data)


@dataclass(eq=False)
class Subscription:
    """One stream's bounded inbox; `overflowed` means events were dropped and must be read from Postgres."""

    account_id: uuid.UUID
    queue: asyncio.Queue[StreamEvent]
    user_id: uuid.UUID | None = None
    overflowed: bool = False
    ended: bool = False  # the log went back (a restore): the stream ends and its browser reconnects
    # Set on every delivery or overflow, so a stream waits without a pending `queue.get()` task to cancel.
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class EscalationBus:
    """In-process fan-out of events to the subscriptions of their account."""

    def __init__(self, queue_size: int) -> None:
        self.queue_size = queue_size
        self._subs: dict[uuid.UUID, set[Subscription]] = {}

    def subscribe(self, account_id: uuid.UUID, user_id: uuid.UUID | None = None) -> Subscription:
        """A new subscription to the account's events (register it before reading the stream's cursor)."""
        sub = Subscription(account_id=account_id, queue=asyncio.Queue(maxsize=self.queue_size), user_id=user_id)
        self._subs.setdefault(account_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering to `sub` (idempotent)."""
        subs = self._subs.get(sub.account_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.account_id]

    def publish(self, event: StreamEvent) -> None:
        """Deliver to the account's subscribers without ever waiting: a full queue drops it and flags overflow."""
        for sub in self._subs.get(event.account_id, ()):
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                # A slow browser must not slow the listener (or other streams): it catches up from Postgres.
                sub.overflowed = True
            sub.wake.set()

    def restart(self) -> None:
        """End every subscriber's stream: the log went back, so their cursors may skip events numbered anew."""
        for subs in self._subs.values():
            for sub in subs:
                sub.ended = True
                sub.wake.set()

    def resync(self) -> None:
        """Make every subscriber catch up from Postgres (the listener cannot tell what they missed)."""
        for subs in self._subs.values():
            for sub in subs:
                sub.overflowed = True
                sub.wake.set()

    def open_for(self, account_id: uuid.UUID, user_id: uuid.UUID) -> int:
        """How many subscriptions `user_id` holds in this process."""
        return sum(1 for sub in self._subs.get(account_id, ()) if sub.user_id == user_id)

    @property
    def subscriber_count(self) -> int:
        """Subscriptions currently registered."""
        return sum(len(subs) for subs in self._subs.values())


async def _read_after(session_factory: async_sessionmaker[AsyncSession], after_id: int,
                      account_id: uuid.UUID | None) -> AsyncIterator[StreamEvent]:
    """Every event above `after_id` (a log id; with `account_id`, that account's number), paged, oldest first;
    no session is held while the consumer works."""
    while True:
        async with session_factory() as session:
            events = EscalationEventRepository(session)
            rows = (await events.after(after_id, limit=PAGE_SIZE) if account_id is None
                    else await events.account_after(account_id, after_id, limit=PAGE_SIZE))
        for row in rows:
            yield StreamEvent.from_row(row)
        if len(rows) < PAGE_SIZE:
            return
        after_id = rows[-1].id if account_id is None else rows[-1].account_seq


async def _latest_id(session_factory: async_sessionmaker[AsyncSession]) -> int:
    async with session_factory() as session:
        return await EscalationEventRepository(session).latest_id()


async def _latest_seq(session_factory: async_sessionmaker[AsyncSession], account_id: uuid.UUID) -> int:
    async with session_factory() as session:
        return await EscalationEventRepository(session).latest_seq(account_id)


class EscalationListener:
    """The process's one LISTEN connection: dispatches NOTIFYs to the bus, reconnects and fills gaps by id."""

    def __init__(self, database_url: str, bus: EscalationBus, session_factory: async_sessionmaker[AsyncSession],
                 *, liveness_s: float, application_name: str = "rflow-escalation-listener") -> None:
        self.database_url = database_url
        self.bus = bus
        self.session_factory = session_factory
        self.liveness_s = liveness_s
        self.application_name = application_name
        self.connected = False
        self.reconnects = 0
        self.last_id = 0
        self._cursor_known = False
        self._ever_connected = False
        self._conn: Any = None
        # Not None while a (re)connect reads the gap: notifications wait here so the bus sees ids in order.
        self._buffer: list[StreamEvent] | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Read the cursor and connect; a database that is down is retried in the background, never raised."""
        try:
            self.last_id = await _latest_id(self.session_factory)
            self._cursor_known = True
            await self._connect()
        except Exception as exc:
            log.warning("escalation listener: database unavailable at start, retrying in the background: %r", exc)
        self._task = asyncio.create_task(self._run(), name="escalation-listener")

    async def stop(self) -> None:
        """Stop the background task and close the connection."""
        task, self._task = self._task, None
        # Cancel until it is done: a library that swallows one cancel must not make shutdown hang.
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
        conn, self._conn = self._conn, None
        self.connected = False
        if conn is not None and not conn.is_closed():
            try:
                await conn.close(timeout=CLOSE_TIMEOUT_S)
            except Exception:
                conn.terminate()

    async def _run(self) -> None:
        delay, attempt = BACKOFF_START_S, 0
        while True:
            if self._conn is None:
                try:
                    await self._connect()
                except Exception as exc:
                    attempt += 1
                    log.warning("escalation listener: reconnect attempt %d failed (next in %.1fs): %r",
                                attempt, delay, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, BACKOFF_MAX_S)
                    continue
                delay, attempt = BACKOFF_START_S, 0
            if await self._alive():
                continue
            log.warning("escalation listener: connection lost, reconnecting")
            self._drop()

    async def _alive(self) -> bool:
        """Wait one liveness interval; False when the connection died meanwhile or fails the check."""
        try:
            # Not asyncio.wait_for: on 3.11 it swallows a cancel that races the event, and stop() would hang.
            async with asyncio.timeout(self.liveness_s):
                await self._lost.wait()
            return False
        except TimeoutError:
            pass
        try:
            await self._conn.fetchval("SELECT 1", timeout=max(self.liveness_s, MIN_LIVENESS_TIMEOUT_S))
            return True
        except Exception as exc:
            log.warning("escalation listener: liveness check failed: %r", exc)
            return False

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        self.connected = False
        if conn is not None:
            # A dead peer may never answer a polite close; abort the socket.
            conn.terminate()

    async def _connect(self) -> None:
        kwargs = {"timeout": CONNECT_TIMEOUT_S, **asyncpg_connect_args(self.database_url)}
        kwargs["server_settings"] = {**kwargs.get("server_settings", {}), "application_name": self.application_name}
        conn = await asyncpg.connect(**kwargs)
        self._lost.clear()
        self._conn = conn
        self._buffer = []
        try:
            conn.add_termination_listener(self._on_terminated)
            await conn.add_listener(CHANNEL, self._on_notify)
            # Read only after LISTEN: anything committed from here on is notified, anything before is read.
            resync = not self._cursor_known
            newest = await _latest_id(self.session_factory)
            if resync:
                self.last_id = newest
            elif newest < self.last_id:
                # The log went back (a database restore): the ids above `newest` are handed out again, and
                # skipping them as already delivered would mute every stream. Streams end (browsers reconnect,
                # and a Last-Event-ID above the newest starts from the newest).
                log.warning("escalation listener: the event log went back from id %d to %d (restored?); "
                            "restarting the streams", self.last_id, newest)
                self.last_id = newest
                self.bus.restart()
            async for event in _read_after(self.session_factory, self.last_id, None):
                self._dispatch(event)
            # No await from here on, so no notification can slip between the buffer and live dispatch.
            for event in sorted(self._buffer, key=lambda e: e.id):
                self._dispatch(event)
        except BaseException:
            self._buffer = None
            self._drop()
            raise
        self._buffer = None
        self.connected = True
        if self._ever_connected:
            self.reconnects += 1
        self._ever_connected = True
        if resync:
            self._cursor_known = True
            # Streams may have taken their cursor before this cursor existed: let them re-read from Postgres.
            self.bus.resync()

    def _on_notify(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        if conn is not self._conn:
            return  # a late delivery from a replaced connection: the gap fill covered it
        try:
            event = StreamEvent.from_payload(payload)
        except ValueError as exc:
            log.warning("escalation listener: skipping bad payload %.200r: %s", payload, exc)
            return
        if self._buffer is not None:
            self._buffer.append(event)
        else:
            self._dispatch(event)

    def _on_terminated(self, conn: Any) -> None:
        if conn is self._conn:
            self._lost.set()

    def _dispatch(self, event: StreamEvent) -> None:
        if event.id <= self.last_id:
            return  # already delivered (gap fill and notifications overlap)
        self.last_id = event.id
        self.bus.publish(event)


def _frame(event: StreamEvent) -> dict[str, str]:
    return {"event": event.kind, "id": str(event.seq), "data": json.dumps(event.data, separators=(",", ":"))}


async def event_stream(sub: Subscription, session_factory: async_sessionmaker[AsyncSession], *,
                       last_event_id: int | None) -> AsyncGenerator[dict[str, str], None]:
    """SSE dicts for one subscribed stream: `ready`, the replay after `last_event_id`, then live events."""
    newest = await _latest_seq(session_factory, sub.account_id)
    # A cursor above the newest number is none of ours (a browser that kept it across a restore): taken as
    # is it would skip every event up to it, so the stream starts from the newest, and `ready` says so.
    cursor = newest if last_event_id is None or last_event_id > newest else last_event_id
    ready = {"account_id": str(sub.account_id), "last_event_id": cursor}
    yield {"event": "ready", "id": str(cursor), "data": json.dumps(ready, separators=(",", ":"))}
    sent = cursor
    if cursor < newest:
        async for event in _read_after(session_factory, sent, sub.account_id):
            yield _frame(event)
            sent = event.seq
    while not sub.ended:
        if sub.overflowed:
            # Clear first: an overflow during the replay below is seen on the next round.
            sub.overflowed = False
            while not sub.queue.empty():
                sub.queue.get_nowait()
            async for event in _read_after(session_factory, sent, sub.account_id):
                yield _frame(event)
                sent = event.seq
            continue
        if sub.queue.empty():
            sub.wake.clear()
            await sub.wake.wait()
            continue
        event = sub.queue.get_nowait()
        if event.seq > sent:
            yield _frame(event)
            sent = event.seq
