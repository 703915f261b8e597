"""The live escalation stream over real HTTP: two API processes fanned out through LISTEN/NOTIFY, tenancy,
resuming with Last-Event-ID, and the heartbeat."""

from __future__ import annotations

import asyncio

import httpx
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.worker import Worker

from core.config import Settings
from tests.handoffs.sse import STREAM, api_server, subscribe
from tests.handoffs.support import claim, escalated, make_handoff_desk
from tests.helpers import make_user


async def test_an_escalation_made_through_one_api_reaches_subscribers_of_another(
    settings: Settings, worker: Worker, client: AsyncClient, db: AsyncSession
) -> None:
    desk = await make_handoff_desk(client, db)
    stranger = await make_user(client, db, role="owner")
    async with (api_server(settings) as first, api_server(settings) as second,
                subscribe(second, desk.senior.headers) as senior_on_second,
                subscribe(first, desk.admin.headers) as admin_on_first,
                subscribe(second, stranger["headers"]) as other_account):
        ready = senior_on_second.of("ready")[0].json()
        assert ready["account_id"] == desk.account_id

        async with httpx.AsyncClient(base_url=first, timeout=30) as via_first:
            session_id, handoff = await escalated(via_first, desk.engineer.headers, priority="high")
            created = (await senior_on_second.wait_for("handoff_created"))[0]
            assert created.json() == {"handoff_id": handoff["id"], "session_id": session_id, "priority": "high"}
            assert created.id is not None and int(created.id) > int(senior_on_second.of("ready")[0].id or 0)
            await admin_on_first.wait_for("handoff_created")
            assessed = (await senior_on_second.wait_for("handoff_assessment_ready"))[0]
            assert assessed.json()["handoff_id"] == handoff["id"]

            assert (await claim(via_first, desk.senior.headers, session_id, handoff["id"])).status_code == 200
            claimed = (await senior_on_second.wait_for("handoff_claimed"))[0]
            assert claimed.json()["claimed_by_id"] == desk.senior.id
        ids = [int(e.id or 0) for e in senior_on_second.events if e.event.startswith("handoff_")]
        assert ids == sorted(ids) and len(ids) == len(set(ids)) == 3
        await asyncio.sleep(0.3)
        assert [e.event for e in other_account.events if e.event != "comment"] == ["ready"]


async def test_last_event_id_replays_what_happened_while_disconnected(
    settings: Settings, worker: Worker, client: AsyncClient, db: AsyncSession
) -> None:
    desk = await make_handoff_desk(client, db)
    async with api_server(settings) as base:
        async with subscribe(base, desk.senior.headers) as before:
            cursor = before.of("ready")[0].id
        assert cursor is not None
        # Disconnected: two escalations happen (and their assessments land).
        made = [(await escalated(client, desk.engineer.headers, text=f"Problem {i}"))[1]["id"] for i in range(2)]
        async with asyncio.timeout(15):
            while True:
                async with subscribe(base, desk.senior.headers, last_event_id=cursor) as after:
                    await asyncio.sleep(0.3)
                    if len(after.of("handoff_assessment_ready")) == 2:
                        break
        replayed = [e.json()["handoff_id"] for e in after.of("handoff_created")]
        assert replayed == made
        assert after.of("ready")[0].id == cursor  # the cursor is kept until the replay has been sent
        # Resuming from the newest id replays nothing.
        newest = after.events[-1].id
        async with subscribe(base, desk.senior.headers, last_event_id=newest) as latest:
            await asyncio.sleep(0.3)
            assert [e.event for e in latest.events if e.event != "comment"] == ["ready"]


async def test_the_stream_sends_a_heartbeat(settings: Settings, worker: Worker, client: AsyncClient,
                                            db: AsyncSession) -> None:
    desk = await make_handoff_desk(client, db)
    async with (api_server(settings.model_copy(update={"escalation_heartbeat_s": 0.2})) as base,
                subscribe(base, desk.senior.headers) as sub):
        await sub.wait_for("comment", count=2, seconds=5)
    assert all(e.comment == "ping" or e.comment for e in sub.of("comment"))


async def test_one_user_may_hold_only_so_many_streams(settings: Settings, worker: Worker, client: AsyncClient,
                                                      db: AsyncSession) -> None:
    desk = await make_handoff_desk(client, db)
    async with api_server(settings.model_copy(update={"escalation_streams_per_user": 2})) as base:
        async with subscribe(base, desk.senior.headers), subscribe(base, desk.senior.headers):
            async with httpx.AsyncClient(base_url=base, timeout=10) as http:
                third = await http.get(STREAM, headers=desk.senior.headers)
                assert third.status_code == 429 and third.headers["Retry-After"] == "5"
                assert "2 escalation streams open" in third.json()["detail"]
            async with subscribe(base, desk.admin.headers) as other_user:  # the limit is per user
                assert other_user.of("ready")
        async with asyncio.timeout(10):  # closed streams free their places
            while True:
                try:
                    async with subscribe(base, desk.senior.headers) as again:
                        assert again.of("ready")
                        break
                except AssertionError:
                    await asyncio.sleep(0.1)
