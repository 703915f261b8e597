"""Readiness (the database, the Temporal frontend, workers polling our task queue) and liveness of the API."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy import text

from api.deps import SettingsDep, TemporalDep
from api.temporal import TemporalGateway
from core.config import Settings
from core.temporal import POLLER_SEEN_WITHIN_S, workflow_poller_ages

log = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])

# Each probe gets this long; they run concurrently, so /healthz answers within about this bound.
PROBE_TIMEOUT_S = 2.0


class HealthOut(BaseModel):
    """Each part "ok" or "down"."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"database": "ok", "temporal": "ok", "workers": "ok"}]})

    database: str
    temporal: str
    workers: str


async def _probe_database(app: FastAPI) -> bool:
    async with app.state.session_factory() as session:
        await session.execute(text("SELECT 1"))
    return True


async def _database_ok(app: FastAPI) -> bool:
    # The probe runs as its own task, shielded from our timeout: cancelling a statement mid-flight leaves the
    # connection unusable, and a frozen server would then hold the close. One probe at a time, so health
    # checks polled during an outage do not pile up connections (the engine's own bounds end a stuck probe).
    task: asyncio.Task[bool] | None = getattr(app.state, "database_probe", None)
    if task is None or task.done():
        task = asyncio.create_task(_probe_database(app))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved: no "never retrieved" noise
        app.state.database_probe = task
    try:
        return await asyncio.wait_for(asyncio.shield(task), PROBE_TIMEOUT_S)
    except Exception as exc:  # any failure to reach the database is "down"
        log.warning("health: database down: %r", exc)
        return False


async def _temporal_ok(temporal: TemporalGateway) -> bool:
    try:
        return await asyncio.wait_for(temporal.ping(), PROBE_TIMEOUT_S)
    except TimeoutError:
        return False


async def _workers_ok(temporal: TemporalGateway, settings: Settings) -> bool:
    """True when some worker polled the task queue for workflow tasks recently."""
    try:
        client = await asyncio.wait_for(temporal.client(), PROBE_TIMEOUT_S)
        ages = await workflow_poller_ages(client, settings.temporal_namespace, settings.temporal_task_queue,
                                          timeout_s=PROBE_TIMEOUT_S)
    except Exception as exc:  # Temporal unreachable or slow: no worker can be confirmed
        log.warning("health: cannot list pollers of %r: %r", settings.temporal_task_queue, exc)
        return False
    return any(age <= POLLER_SEEN_WITHIN_S for age in ages.values())


class LiveOut(BaseModel):
    """The process answers."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "alive"}]})

    status: str


@router.get("/livez", response_model=LiveOut)
async def livez() -> LiveOut:
    """200 while this process serves requests, whatever the database, Temporal or the workers do: the liveness
    probe (restart the process when it fails). `/healthz` is readiness: whether commands can run."""
    return LiveOut(status="alive")


def _word(ok: bool) -> str:
    return "ok" if ok else "down"


@router.get("/healthz", response_model=HealthOut, responses={
    503: {"model": HealthOut, "description": "A part is down; the body marks it `down`"},
})
async def healthz(request: Request, temporal: TemporalDep, settings: SettingsDep) -> Any:
    """200 `{database, temporal, workers}` all "ok" (commands can run), or 503 with the failing parts "down"."""
    database, engine, workers = await asyncio.gather(
        _database_ok(request.app), _temporal_ok(temporal), _workers_ok(temporal, settings)
    )
    report = HealthOut(database=_word(database), temporal=_word(engine), workers=_word(workers))
    healthy = database and engine and workers
    return JSONResponse(report.model_dump(), status_code=200 if healthy else 503)
