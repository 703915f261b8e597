"""Escalation event ids over real HTTP: per account, so they tell nothing of other accounts (issue 20 item 7); a
`Last-Event-ID` above the newest id does not mute the stream (item 8); a malformed one is a 422 (item 11)."""

from __future__ import annotations

import asyncio

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.worker import Worker

from core.config import Settings
from tests.handoffs.sse import STREAM, api_server, subscribe
from tests.handoffs.support import escalated, make_handoff_desk


async def test_event_ids_count_only_the_callers_own_account(
    settings: Settings, worker: Worker, client: AsyncClient, db: AsyncSession
) -> None:
    ours, theirs, fresh = [await make_handoff_desk(client, db) for _ in range(3)]
    async with api_server(settings) as base:
        async with subscribe(base, ours.senior.headers) as sub:
            start = int(sub.of("ready")[0].id or 0)
            # Another account is busy: three escalations, each with its created and assessment events.
            for i in range(3):
                await escalated(client, theirs.engineer.headers, text=f"Their problem {i}")
            _, handoff = await escalated(client, ours.engineer.headers)
            created = (await sub.wait_for("handoff_created"))[0]
            assessed = (await sub.wait_for("handoff_assessment_ready"))[0]
        assert created.json()["handoff_id"] == handoff["id"]
        # Our ids go on from our own last one, whatever the other account did meanwhile.
        assert [int(created.id or 0), int(assessed.id or 0)] == [start + 1, start + 2]
        async with subscribe(base, fresh.senior.headers) as newcomer:
            assert newcomer.of("ready")[0].id == "0"
            assert newcomer.of("ready")[0].json()["last_event_id"] == 0


async def test_a_cursor_above_the_newest_id_starts_from_the_newest_and_hears_new_events(
    settings: Settings, worker: Worker, client: AsyncClient, db: AsyncSession
) -> None:
    desk = await make_handoff_desk(client, db)
    async with api_server(settings) as base:
        await escalated(client, desk.engineer.headers, text="Before the restore")
        async with subscribe(base, desk.senior.headers) as plain:
            newest = plain.of("ready")[0].id
        # A browser kept an id from before a restore (or from another deployment): larger than any we have.
        async with subscribe(base, desk.senior.headers, last_event_id="987654321") as restored:
            ready = restored.of("ready")[0]
            assert ready.id == newest and ready.json()["last_event_id"] == int(newest or 0)
            _, handoff = await escalated(client, desk.engineer.headers, text="After the restore")
            created = (await restored.wait_for("handoff_created"))[0]
            assert created.json()["handoff_id"] == handoff["id"]
            assert int(created.id or 0) > int(newest or 0)


async def test_a_malformed_last_event_id_is_a_422_naming_the_header(client: AsyncClient, db: AsyncSession) -> None:
    desk = await make_handoff_desk(client, db)
    for bad in ("null", "-1", "1.5", "abc", "9" * 19):
        resp = await asyncio.wait_for(client.get(STREAM, headers={**desk.senior.headers, "Last-Event-ID": bad}), 10)
        assert resp.status_code == 422, (bad, resp.text)
        assert "Last-Event-ID" in str(resp.json()["detail"])
