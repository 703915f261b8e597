"""The persist floor the command benches measure against: it really persists before answering, and only in
dev mode (or with BENCH_ROUTES) is it mounted at all."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from core.config import Settings
from db.models import PersistFloorRow


async def _version(session_factory: async_sessionmaker[AsyncSession], row_id: str) -> int:
    async with session_factory() as session:
        return int((await session.scalar(select(PersistFloorRow.version).where(
            PersistFloorRow.id == uuid.UUID(row_id)))) or 0)


async def test_each_bump_is_in_postgres_before_its_answer(
    client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession],
) -> None:
    row = (await client.post("/api/v1/bench/persist-floor")).json()["row_id"]
    for expected in range(1, 4):
        resp = await client.post(f"/api/v1/bench/persist-floor/{row}/bump")
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"version": expected}
        assert await _version(session_factory, row) == expected
    # Concurrent bumps on one row apply one at a time: none is lost, none conflicts.
    answers = await asyncio.gather(*(client.post(f"/api/v1/bench/persist-floor/{row}/bump") for _ in range(8)))
    assert sorted(a.json()["version"] for a in answers) == list(range(4, 12))
    assert await _version(session_factory, row) == 11


async def test_a_row_moved_behind_the_workflow_is_a_409_not_a_lost_write(
    client: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession],
) -> None:
    row = (await client.post("/api/v1/bench/persist-floor")).json()["row_id"]
    assert (await client.post(f"/api/v1/bench/persist-floor/{row}/bump")).status_code == 200
    async with session_factory() as session, session.begin():
        await session.execute(update(PersistFloorRow).where(PersistFloorRow.id == uuid.UUID(row)).values(version=7))
    resp = await client.post(f"/api/v1/bench/persist-floor/{row}/bump")
    assert resp.status_code == 409, resp.text
    assert await _version(session_factory, row) == 7


async def _bump_status(app: Any) -> int:
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        resp = await http.post("/api/v1/bench/persist-floor")
        if resp.status_code != 201:
            return resp.status_code
        return (await http.post(f"/api/v1/bench/persist-floor/{resp.json()['row_id']}/bump")).status_code


async def test_outside_dev_mode_the_bench_routes_are_not_mounted(settings: Settings) -> None:
    assert await _bump_status(create_app(settings.model_copy(update={"dev_mode": False}))) == 404
    assert await _bump_status(create_app(settings.model_copy(update={"dev_mode": False, "bench_routes": True}))) == 200
