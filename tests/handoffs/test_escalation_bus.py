"""The escalation bus: NOTIFY fan-out across API processes, reconnects with gap fill, lossless streams."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from db.models import Account, AiSession, SessionHandoff
from db.repositories.escalation_events import CHANNEL, EscalationEventRepository
from db.session import make_engine, make_session_factory
from services.escalation_stream import EscalationBus, EscalationListener, StreamEvent, Subscription, event_stream
from tests.stack import free_port
from tests.test_db_outage import FreezableProxy

WAIT_S = 15.0
Factory = async_sessionmaker[AsyncSession]
MakeListener = Callable[..., Awaitable[tuple[EscalationBus, EscalationListener]]]


class LateProxy(FreezableProxy):
    """A proxy that starts listening on a port chosen in advance: a database that comes up late."""

    async def listen_on(self, port: int) -> None:
        """Accept connections on `port` from now on."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = port


class HookedFactory:
    """A session factory that, once armed, runs `hook` before handing out its next session."""

    def __init__(self, inner: Factory) -> None:
        self.inner = inner
        self.hook: Callable[[], Awaitable[None]] | None = None

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[AsyncSession]:
        hook, self.hook = self.hook, None
        if hook is not None:
            await hook()
        async with self.inner() as session:
            yield session


@dataclass(frozen=True)
class Desk:
    """An account with one escalated session and its open handoff: what events hang off."""

    account_id: uuid.UUID
    session_id: uuid.UUID
    handoff_id: uuid.UUID


async def make_desk(session_factory: Factory) -> Desk:
    """Insert the rows an escalation event needs (account, session, handoff)."""
    async with session_factory() as db:
        account = Account(name=f"Acme {uuid.uuid4().hex[:6]}")
        db.add(account)
        await db.flush()
        ai = AiSession(account_id=account.id, session_type="chat", intake_type="free_text", status="escalated",
                       last_activity_at=datetime.now(UTC))
        db.add(ai)
        await db.flush()
        handoff = SessionHandoff(account_id=account.id, session_id=ai.id, intent="escalate")
        db.add(handoff)
        await db.commit()
        return Desk(account.id, ai.id, handoff.id)


async def publish(session_factory: Factory, desk: Desk, count: int = 1) -> list[int]:
    """Publish `count` events, each in its own transaction; their log ids (what listeners follow)."""
    return [log_id for log_id, _ in await publish_numbered(session_factory, desk, count)]


async def publish_numbered(session_factory: Factory, desk: Desk, count: int = 1) -> list[tuple[int, int]]:
    """Publish `count` events; their (log id, number in the account's log: what streams show)."""
    ids = []
    for _ in range(count):
        async with session_factory() as db:
            event = await EscalationEventRepository(db).publish(
                account_id=desk.account_id, kind="handoff_created", handoff_id=desk.handoff_id,
                data={"handoff_id": str(desk.handoff_id), "session_id": str(desk.session_id), "priority": "normal"},
                dedupe_key=f"test-{uuid.uuid4().hex}")
            assert event is not None
            await db.commit()
            ids.append((event.id, event.account_seq))
    return ids


async def take(sub: Subscription, count: int) -> list[int]:
    """The ids of the next `count` events of the subscription (fails fast instead of hanging)."""
    async with asyncio.timeout(WAIT_S):
        return [(await sub.queue.get()).id for _ in range(count)]


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Poll until `predicate()` holds."""
    async with asyncio.timeout(WAIT_S):
        # The listener's state is plain attributes (no event to await), so poll.
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def next_frames(stream: AsyncIterator[dict[str, str]], count: int) -> list[dict[str, str]]:
    """The next `count` SSE dicts of a stream."""
    async with asyncio.timeout(WAIT_S):
        return [await anext(stream) for _ in range(count)]


@pytest.fixture
async def make_listener(settings: Settings, session_factory: Factory) -> AsyncIterator[MakeListener]:
    """Start bus+listener pairs (one per simulated API process); all are stopped at teardown."""
    started: list[EscalationListener] = []

    async def make(*, queue_size: int = 64, url: str | None = None,
                   factory: Factory | None = None) -> tuple[EscalationBus, EscalationListener]:
        bus = EscalationBus(queue_size)
        listener = EscalationListener(url or settings.database_url or "", bus, factory or session_factory,
                                      liveness_s=0.2, application_name=f"test-esc-{uuid.uuid4().hex[:12]}")
        started.append(listener)
        await listener.start()
        return bus, listener

    yield make
    for listener in started:
        await listener.stop()


async def test_every_process_delivers_an_event_once_to_its_account_only(
        session_factory: Factory, make_listener: MakeListener) -> None:
    desk, other = await make_desk(session_factory), await make_desk(session_factory)
    (bus1, listener1), (bus2, listener2) = await make_listener(), await make_listener()
    assert listener1.connected and listener2.connected
    sub1, sub2, stranger = bus1.subscribe(desk.account_id), bus2.subscribe(desk.account_id), bus1.subscribe(
        other.account_id)

    [event_id] = await publish(session_factory, desk)

    assert await take(sub1, 1) == [event_id]
    assert await take(sub2, 1) == [event_id]
    await wait_until(lambda: listener1.last_id == event_id == listener2.last_id)
    assert stranger.queue.empty() and sub1.queue.empty() and sub2.queue.empty()
    assert bus1.subscriber_count == 2
    bus1.unsubscribe(stranger)
    bus1.unsubscribe(stranger)  # idempotent
    assert bus1.subscriber_count == 1


async def test_a_garbage_notification_is_skipped_and_the_listener_keeps_going(
        session_factory: Factory, make_listener: MakeListener) -> None:
    desk = await make_desk(session_factory)
    bus, listener = await make_listener()
    sub = bus.subscribe(desk.account_id)
    async with session_factory() as db:
        await db.execute(text("SELECT pg_notify(:channel, 'not json'), pg_notify(:channel, '{\"id\": true}')"),
                         {"channel": CHANNEL})
        await db.commit()
    ids = await publish(session_factory, desk)
    assert await take(sub, 1) == ids
    assert listener.connected and listener.reconnects == 0
    with pytest.raises(ValueError):
        StreamEvent.from_payload('{"id": 1, "account_id": "nope", "kind": "x", "data": {}}')


async def test_a_killed_connection_is_replaced_and_nothing_is_lost_or_doubled(
        session_factory: Factory, make_listener: MakeListener) -> None:
    desk = await make_desk(session_factory)
    bus, listener = await make_listener()
    sub = bus.subscribe(desk.account_id)

    async with session_factory() as db:
        killed = (await db.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                        "WHERE application_name = :name"),
                                   {"name": listener.application_name})).scalars().all()
        await db.commit()
    assert killed == [True]
    during = await publish(session_factory, desk, 3)
    await wait_until(lambda: listener.connected and listener.reconnects >= 1)
    after = await publish(session_factory, desk, 2)

    assert await take(sub, 5) == during + after
    await wait_until(lambda: listener.last_id == after[-1])
    await asyncio.sleep(0.3)
    assert sub.queue.empty()


async def test_a_silent_connection_fails_the_liveness_check_and_the_gap_is_read_back_in_order(
        settings: Settings, session_factory: Factory, make_listener: MakeListener) -> None:
    desk = await make_desk(session_factory)
    hooked = HookedFactory(session_factory)
    proxy = FreezableProxy(settings.database_url or "")
    await proxy.start()
    try:
        # Only the LISTEN connection goes through the proxy: the gap fill reads the database directly.
        bus, listener = await make_listener(url=proxy.url(), factory=cast(Factory, hooked))
        sub = bus.subscribe(desk.account_id)
        assert listener.connected
        proxy.freeze()  # no error, no closed socket: only the liveness query can notice
        await wait_until(lambda: not listener.connected)
        missed = await publish(session_factory, desk, 3)  # notified to nobody: no live LISTEN connection

        overlap: list[int] = []

        async def commit_during_the_fill() -> None:
            # After the new LISTEN, before the gap is read: these are both notified and read back, and their
            # (higher) ids are notified while the fill still has the lower `missed` ones to deliver.
            overlap.extend(await publish(session_factory, desk, 2))
            await asyncio.sleep(0.3)

        hooked.hook = commit_during_the_fill
        proxy.thaw()
        await wait_until(lambda: listener.connected)
        assert overlap, "the gap fill did not run"
        live = await publish(session_factory, desk, 2)
        assert await take(sub, 7) == missed + overlap + live
        assert listener.reconnects >= 1
        await asyncio.sleep(0.3)
        assert sub.queue.empty()
    finally:
        proxy.thaw()
        await proxy.close()


async def test_the_api_boots_without_the_database_and_streams_resync_once_it_is_up(
        settings: Settings, session_factory: Factory, make_listener: MakeListener) -> None:
    desk = await make_desk(session_factory)
    earlier = await publish(session_factory, desk, 2)
    proxy = LateProxy(settings.database_url or "")
    proxy.port = free_port()  # nothing listens there yet: the database is "down"
    engine = make_engine(proxy.url(), connect_timeout_s=1.0)
    try:
        bus, listener = await make_listener(url=proxy.url(), factory=make_session_factory(engine))
        assert not listener.connected
        sub = bus.subscribe(desk.account_id)
        await asyncio.sleep(0.5)
        assert not listener.connected

        await proxy.listen_on(proxy.port)
        await wait_until(lambda: listener.connected)
        assert listener.last_id == earlier[-1]
        assert sub.overflowed  # it may have taken its cursor before the listener had one: re-read from Postgres
        live = await publish(session_factory, desk)
        assert await take(sub, 1) == live
    finally:
        await proxy.close()
        await engine.dispose()


async def test_a_full_queue_drops_without_blocking_and_the_stream_catches_up_losslessly(
        session_factory: Factory, make_listener: MakeListener) -> None:
    desk = await make_desk(session_factory)
    bus, listener = await make_listener(queue_size=2)
    sub = bus.subscribe(desk.account_id)
    stream = event_stream(sub, session_factory, last_event_id=None)
    try:
        [ready] = await next_frames(stream, 1)
        assert ready["event"] == "ready"

        numbered = await publish_numbered(session_factory, desk, 20)
        await wait_until(lambda: listener.last_id == numbered[-1][0])
        assert sub.overflowed and sub.queue.qsize() == 2  # the listener dropped 18 rather than wait

        frames = await next_frames(stream, 20)
        assert [int(f["id"]) for f in frames] == [seq for _, seq in numbered] == list(range(1, 21))
        assert {f["event"] for f in frames} == {"handoff_created"}
        assert not sub.overflowed

        await publish(session_factory, desk)
        assert [int(f["id"]) for f in await next_frames(stream, 1)] == [21]
    finally:
        await stream.aclose()

    # publish itself is synchronous: no consumer at all, and it still returns at once.
    solo = EscalationBus(2)
    lonely = solo.subscribe(desk.account_id)
    for i in range(1, 21):
        solo.publish(StreamEvent(id=i, seq=i, account_id=desk.account_id, kind="handoff_created", data={}))
    assert lonely.overflowed and [lonely.queue.get_nowait().id for _ in range(2)] == [1, 2]


async def test_last_event_id_replays_the_accounts_missed_events_then_goes_live(
        session_factory: Factory, make_listener: MakeListener) -> None:
    desk, other = await make_desk(session_factory), await make_desk(session_factory)
    bus, _ = await make_listener()
    [(_, seen)] = await publish_numbered(session_factory, desk)
    missed = await publish_numbered(session_factory, desk, 2)
    await publish(session_factory, other, 2)
    missed += await publish_numbered(session_factory, desk)

    sub = bus.subscribe(desk.account_id)
    stream = event_stream(sub, session_factory, last_event_id=seen)
    try:
        ready, *replayed = await next_frames(stream, 4)
        assert ready["id"] == str(seen)
        assert json.loads(ready["data"]) == {"account_id": str(desk.account_id), "last_event_id": seen}
        assert [int(f["id"]) for f in replayed] == [seq for _, seq in missed] == [2, 3, 4]  # own numbers only
        body: dict[str, Any] = json.loads(replayed[0]["data"])
        assert body == {"handoff_id": str(desk.handoff_id), "session_id": str(desk.session_id), "priority": "normal"}

        live = await publish_numbered(session_factory, other) + await publish_numbered(session_factory, desk)
        [frame] = await next_frames(stream, 1)
        assert int(frame["id"]) == live[1][1] == 5  # the other account's event never reached this stream
    finally:
        await stream.aclose()
        bus.unsubscribe(sub)


async def test_ready_carries_the_latest_id_when_no_last_event_id_is_sent(
        session_factory: Factory, make_listener: MakeListener) -> None:
    desk = await make_desk(session_factory)
    bus, _ = await make_listener()
    old = [seq for _, seq in await publish_numbered(session_factory, desk, 3)]

    sub = bus.subscribe(desk.account_id)
    stream = event_stream(sub, session_factory, last_event_id=None)
    try:
        [ready] = await next_frames(stream, 1)
        assert ready["event"] == "ready" and ready["id"] == str(old[-1])
        assert json.loads(ready["data"])["last_event_id"] == old[-1]
        new = await publish_numbered(session_factory, desk)
        [frame] = await next_frames(stream, 1)
        assert int(frame["id"]) == new[0][1] == 4  # no replay of what came before the cursor
    finally:
        await stream.aclose()


async def test_a_log_that_went_back_restarts_the_streams_instead_of_muting_them(
        session_factory: Factory, make_listener: MakeListener) -> None:
    desk = await make_desk(session_factory)
    bus, listener = await make_listener()
    sub = bus.subscribe(desk.account_id)
    stream = event_stream(sub, session_factory, last_event_id=None)
    try:
        await next_frames(stream, 1)  # ready
        numbered = await publish_numbered(session_factory, desk, 3)
        assert [int(f["id"]) for f in await next_frames(stream, 3)] == [1, 2, 3]
        await wait_until(lambda: listener.last_id == numbered[-1][0])
        # A restore to a point before those three: the rows and the id sequence go back, the server restarts.
        async with session_factory() as db:
            await db.execute(text("DELETE FROM escalation_events WHERE account_id = :a"), {"a": desk.account_id})
            await db.execute(text(f"ALTER TABLE escalation_events ALTER COLUMN id RESTART WITH {numbered[0][0]}"))
            await db.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE application_name = :name"), {"name": listener.application_name})
            await db.commit()
        await wait_until(lambda: listener.reconnects >= 1 and listener.connected)
        assert listener.last_id < numbered[0][0]  # back to the log's newest
        async with asyncio.timeout(WAIT_S):
            assert [frame async for frame in stream] == []  # the stream ended: its browser reconnects
        # The next events reuse ids the listener had delivered before the restore: delivered all the same.
        fresh = bus.subscribe(desk.account_id)
        again = await publish_numbered(session_factory, desk, 2)
        assert again == [(numbered[0][0], 1), (numbered[1][0], 2)]
        assert await take(fresh, 2) == [log_id for log_id, _ in again]
    finally:
        await stream.aclose()
