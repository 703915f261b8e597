"""A database that stops answering (no error, no closed socket) costs a bounded wait and a 503, never a hang."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as SATimeoutError

from api.app import create_app
from api.errors import is_database_unavailable
from api.routes.health import PROBE_TIMEOUT_S
from core.config import Settings
from db.session import make_engine
from tests.helpers import PASSWORD, unique_email

# With the 1 s bounds below, a request waits at most about: pre-ping (statement + 2 s) + connect (1 s).
BOUND_S = 8.0
FAST = {"database_connect_timeout_s": 1.0, "database_statement_timeout_s": 1.0, "database_pool_timeout_s": 1.0}


class FreezableProxy:
    """A TCP proxy in front of PostgreSQL that can stop forwarding bytes without closing anything."""

    def __init__(self, upstream_url: str) -> None:
        self._url = make_url(upstream_url)
        self._running = asyncio.Event()
        self._running.set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        socket_dir = self._url.query.get("host")
        port = self._url.port or 5432
        if isinstance(socket_dir, str) and socket_dir.startswith("/"):  # the embedded server listens on a socket
            return await asyncio.open_unix_connection(str(Path(socket_dir) / f".s.PGSQL.{port}"))
        return await asyncio.open_connection(self._url.host or "127.0.0.1", port)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while True:
                await self._running.wait()  # frozen: hold the bytes, keep the socket open
                data = await reader.read(65536)
                await self._running.wait()
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await self._open_upstream()
        for task in (asyncio.create_task(self._pump(reader, up_writer)),
                     asyncio.create_task(self._pump(up_reader, writer))):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        """Listen on a free local port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def url(self) -> str:
        """The upstream URL pointed at this proxy."""
        query = {k: v for k, v in self._url.query.items() if k != "host"}
        return self._url.set(host="127.0.0.1", port=self.port, query=query).render_as_string(hide_password=False)

    def freeze(self) -> None:
        """Stop forwarding in both directions (new connections are accepted and then hang too)."""
        self._running.clear()

    def thaw(self) -> None:
        """Forward again."""
        self._running.set()

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def _app_behind(proxy: FreezableProxy, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    custom = settings.model_copy(update={"database_url": proxy.url(), **FAST})
    app = create_app(custom)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as client:
            yield client


@contextlib.asynccontextmanager
async def _proxy(settings: Settings) -> AsyncIterator[FreezableProxy]:
    proxy = FreezableProxy(settings.database_url or "")
    await proxy.start()
    try:
        yield proxy
    finally:
        proxy.thaw()
        await proxy.close()


async def _timed(coro: Coroutine[Any, Any, httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    resp = await asyncio.wait_for(coro, timeout=30)
    return resp, time.monotonic() - started


async def test_a_frozen_database_is_a_prompt_503_naming_it_and_the_api_recovers(settings: Settings) -> None:
    async with _proxy(settings) as proxy, _app_behind(proxy, settings) as client:
        email = unique_email()
        body = {"email": email, "password": PASSWORD, "name": "Dana"}
        assert (await client.post("/api/v1/auth/register", json=body)).status_code == 201
        creds = {"email": email, "password": PASSWORD}
        assert (await client.post("/api/v1/auth/login/json", json=creds)).status_code == 200

        proxy.freeze()
        resp, took = await _timed(client.post("/api/v1/auth/login/json", json=creds))
        assert resp.status_code == 503, resp.text
        assert "database" in resp.json()["detail"]
        assert took < BOUND_S, took

        proxy.thaw()
        resp = await client.post("/api/v1/auth/login/json", json=creds)
        assert resp.status_code == 200, resp.text


async def test_healthz_says_the_database_is_down_when_it_stops_answering(settings: Settings) -> None:
    async with _proxy(settings) as proxy, _app_behind(proxy, settings) as client:
        ok = await client.get("/healthz")
        assert ok.json()["database"] == "ok", ok.text
        proxy.freeze()
        resp, took = await _timed(client.get("/healthz"))
        assert resp.status_code == 503, resp.text
        assert resp.json()["database"] == "down"
        assert took < PROBE_TIMEOUT_S + 1.5, took  # the probe's own short bound, not the engine's


async def test_a_statement_that_runs_too_long_is_cancelled_by_the_server(settings: Settings) -> None:
    # The server-side statement_timeout ends the query cleanly, and it counts as "the database is unavailable".
    engine = make_engine(settings.database_url or "", statement_timeout_s=0.5)
    try:
        async with engine.connect() as conn:
            started = time.monotonic()
            with pytest.raises(DBAPIError) as info:
                await conn.execute(text("SELECT pg_sleep(5)"))
            assert time.monotonic() - started < 3
            assert is_database_unavailable(info.value), repr(info.value)
            await conn.rollback()
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1  # the connection is still usable
    finally:
        await engine.dispose()


def test_only_unavailability_is_classified_as_a_database_outage() -> None:
    assert is_database_unavailable(SATimeoutError("QueuePool limit reached, connection timed out"))
    assert is_database_unavailable(ConnectionRefusedError())
    assert not is_database_unavailable(IntegrityError("INSERT", {}, Exception("duplicate key")))  # a bug: stays 500
    try:
        raise TimeoutError  # not raised inside the driver: not the database's
    except TimeoutError as exc:
        assert not is_database_unavailable(exc)
