"""Liveness of the parts the API depends on."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import TemporalDep

router = APIRouter(tags=["operations"])


@router.get("/healthz", responses={503: {"description": "A dependency is down; the body names it"}})
async def healthz(request: Request, temporal: TemporalDep) -> JSONResponse:
    """200 `{database:"ok",temporal:"ok"}`, or 503 with the failing part marked `down`."""
    report = {"database": "ok", "temporal": "ok"}
    try:
        async with request.app.state.session_factory() as session:
            await session.execute(text("SELECT 1"))
    except Exception:  # any failure to reach the database is "down"
        report["database"] = "down"
    if not await temporal.ping():
        report["temporal"] = "down"
    healthy = all(v == "ok" for v in report.values())
    return JSONResponse(report, status_code=200 if healthy else 503)
