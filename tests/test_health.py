"""GET /healthz against the real database and Temporal."""

from __future__ import annotations

import socket

import httpx
from httpx import AsyncClient

from api.app import create_app
from core.config import Settings


async def test_healthz_reports_both_parts_ok(client: AsyncClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"database": "ok", "temporal": "ok"}


async def _health_of(settings: Settings) -> httpx.Response:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            return await c.get("/healthz")


async def test_healthz_names_temporal_when_it_is_down(settings: Settings) -> None:
    down = settings.model_copy(update={"temporal_address": f"127.0.0.1:{_free_port()}",
                                       "temporal_connect_timeout_s": 1.0})
    resp = await _health_of(down)
    assert resp.status_code == 503
    assert resp.json() == {"database": "ok", "temporal": "down"}


async def test_healthz_names_the_database_when_it_is_down(settings: Settings) -> None:
    down = settings.model_copy(update={"database_url": f"postgresql://nobody@127.0.0.1:{_free_port()}/none"})
    resp = await _health_of(down)
    assert resp.status_code == 503
    assert resp.json() == {"database": "down", "temporal": "ok"}


async def test_requests_while_database_is_down_get_503_not_500(settings: Settings) -> None:
    down = settings.model_copy(update={"database_url": f"postgresql://nobody@127.0.0.1:{_free_port()}/none"})
    app = create_app(down)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            resp = await c.post("/api/v1/auth/login/json", json={"email": "a@example.com", "password": "x"})
    assert resp.status_code == 503
    assert "database" in resp.json()["detail"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
