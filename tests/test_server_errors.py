"""An unhandled error is one 500 that carries the request's id, logged once with that id."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from api.app import create_app
from core.config import Settings


async def test_an_unhandled_error_is_a_500_carrying_the_request_id_and_logged_once(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings)

    async def boom() -> None:
        raise RuntimeError("a bug, not the client's mistake")

    app.add_api_route("/boom-for-test", boom)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        with caplog.at_level(logging.ERROR):
            answer = await client.get("/boom-for-test", headers={"X-Request-ID": "trace-me-42"})
    assert answer.status_code == 500
    assert answer.headers["X-Request-ID"] == "trace-me-42"
    body: dict[str, Any] = answer.json()
    assert "trace-me-42" in body["detail"] and "a bug" not in body["detail"]  # the id, never the internals
    tracebacks = [r for r in caplog.records if r.exc_info and "a bug" in str(r.exc_info[1])]
    assert len(tracebacks) == 1, [r.getMessage() for r in tracebacks]
