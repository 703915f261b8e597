"""GET /healthz against the real database and Temporal."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid

import httpx
import pytest
from httpx import AsyncClient
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.worker import Worker

from activities.registry import ActivityDeps
from api.app import create_app
from core.config import Settings
from worker import build_worker


@pytest.fixture
async def polled(worker: Worker, temporal_client: Client, settings: Settings) -> None:
    """The session's worker, once the server has seen it poll our task queue (what /healthz calls "workers ok")."""
    # Run alone, a test would otherwise ask /healthz before the just-started worker's first poll arrived.
    request = DescribeTaskQueueRequest(namespace=settings.temporal_namespace,
                                       task_queue=TaskQueue(name=settings.temporal_task_queue),
                                       task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)
    deadline = time.monotonic() + 30
    while not (await temporal_client.workflow_service.describe_task_queue(request)).pollers:
        assert time.monotonic() < deadline, "the test worker never polled its task queue"
        await asyncio.sleep(0.05)


async def test_healthz_reports_every_part_ok(client: AsyncClient, polled: None) -> None:
    resp = await client.get("/healthz")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"database": "ok", "temporal": "ok", "workers": "ok"}


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
    assert resp.json() == {"database": "ok", "temporal": "down", "workers": "down"}


async def test_healthz_names_the_database_when_it_is_down(settings: Settings, polled: None) -> None:
    down = settings.model_copy(update={"database_url": f"postgresql://nobody@127.0.0.1:{_free_port()}/none"})
    resp = await _health_of(down)
    assert resp.status_code == 503
    assert resp.json() == {"database": "down", "temporal": "ok", "workers": "ok"}


async def test_requests_while_database_is_down_get_503_not_500(settings: Settings) -> None:
    down = settings.model_copy(update={"database_url": f"postgresql://nobody@127.0.0.1:{_free_port()}/none"})
    app = create_app(down)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            resp = await c.post("/api/v1/auth/login/json", json={"email": "a@example.com", "password": "x"})
    assert resp.status_code == 503
    assert "database" in resp.json()["detail"]


async def test_healthz_says_workers_are_down_until_one_polls_the_task_queue(
    settings: Settings, activity_deps: ActivityDeps, temporal_client: Client
) -> None:
    queue = f"health-{uuid.uuid4().hex[:10]}"
    alone = settings.model_copy(update={"temporal_task_queue": queue})
    app = create_app(alone)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            started = time.monotonic()
            resp = await c.get("/healthz")
            assert time.monotonic() - started < 5  # the probes are bounded
            assert resp.status_code == 503
            assert resp.json() == {"database": "ok", "temporal": "ok", "workers": "down"}
            deps = ActivityDeps(settings=alone, session_factory=activity_deps.session_factory)
            async with build_worker(temporal_client, deps, task_queue=queue):
                for _ in range(50):  # the worker's first poll reaches the server within moments
                    resp = await c.get("/healthz")
                    if resp.status_code == 200:
                        break
                    await asyncio.sleep(0.1)
                assert resp.status_code == 200, resp.text
                assert resp.json()["workers"] == "ok"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
