"""GET /healthz against the real database and Temporal."""

from __future__ import annotations

from httpx import AsyncClient


async def test_healthz_reports_both_parts_ok(client: AsyncClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"database": "ok", "temporal": "ok"}
