"""Serving a PSA simulator (or any ASGI stand-in) over real HTTP for tests: uvicorn on a free port, in its own thread
and event loop, so it never shares a test's loop; and the fault-switch checks every simulator's client shares."""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sized
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from integrations.psa.base import PsaRateLimited
from integrations.psa.simulator_common import FaultSwitches
from tests.stack import free_port


@contextmanager
def serving(app: ASGIApp, name: str, *, label: str | None = None) -> Iterator[str]:
    """Serve an ASGI app on 127.0.0.1 until the block ends; yields its base URL once it listens.

    `name` names the thread; `label` (else `name`) says what did not start.
    """
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
        # A request sleeping on delay_s must not hold the shutdown for long.
        timeout_graceful_shutdown=2,
    ))
    # server.run() calls asyncio.run in this thread, so the app never shares a test's event loop.
    thread = threading.Thread(target=server.run, name=f"{name}-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{label or name} did not start on port {port}")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def serving_simulator(app: ASGIApp, name: str, *, label: str | None = None) -> Iterator[str]:
    """Serve a simulator until the block ends; yields its base URL once its `/_simulator/state` answers."""
    with serving(app, name, label=label) as url:
        httpx.get(f"{url}/_simulator/state", timeout=5).raise_for_status()
        yield url


async def assert_rate_limit_takes_one_call(switches: FaultSwitches, post: Callable[[], Awaitable[Any]],
                                           stored: Callable[[], Sized]) -> None:
    """With rate_limit_next=1 and retry_after_s=3: `post` raises PsaRateLimited carrying Retry-After and stores
    nothing; the switch was for that call only, so posting again stores one record."""
    switches.rate_limit_next = 1
    switches.retry_after_s = 3
    with pytest.raises(PsaRateLimited) as caught:
        await post()
    assert caught.value.retry_after == 3 and caught.value.retryable and caught.value.status_code == 429
    assert len(stored()) == 0
    await post()
    assert len(stored()) == 1
