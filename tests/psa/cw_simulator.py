"""The ConnectWise simulator served over real HTTP (uvicorn on a free port, in its own thread and loop)."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn

from integrations.psa.connectwise import ConnectWiseConfig
from integrations.psa.connectwise_simulator import SimulatorCredentials, SimulatorState, build_simulator_app
from tests.stack import free_port


def random_credentials() -> SimulatorCredentials:
    """Fresh credentials for one run (no secret is a constant in the source)."""
    return SimulatorCredentials(
        company_id=f"sim{secrets.token_hex(3)}",
        public_key=secrets.token_urlsafe(12),
        private_key=secrets.token_urlsafe(12),
        client_id=f"{secrets.token_hex(4)}-{secrets.token_hex(2)}-{secrets.token_hex(2)}-{secrets.token_hex(6)}",
    )


@dataclass
class SimulatorHandle:
    """A running simulator: its URL, its live state and the credentials it accepts."""

    url: str
    state: SimulatorState
    credentials: SimulatorCredentials

    def config(self, **overrides: Any) -> ConnectWiseConfig:
        """A ConnectWiseConfig pointing at this simulator (fields overridable, e.g. timeout_s)."""
        c = self.credentials
        fields: dict[str, Any] = {
            "site_url": self.url, "company_id": c.company_id, "public_key": c.public_key,
            "private_key": c.private_key, "client_id": c.client_id, **overrides,
        }
        return ConnectWiseConfig(**fields)


@contextmanager
def running_simulator(
    credentials: SimulatorCredentials | None = None, state: SimulatorState | None = None
) -> Iterator[SimulatorHandle]:
    """Serve the simulator on 127.0.0.1 until the block ends."""
    creds = credentials or random_credentials()
    st = state if state is not None else SimulatorState()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(
        build_simulator_app(creds, st), host="127.0.0.1", port=port, log_level="warning", lifespan="off",
        # A request sleeping on delay_s must not hold the shutdown for long.
        timeout_graceful_shutdown=2,
    ))
    # server.run() calls asyncio.run in this thread, so the simulator never shares a test's event loop.
    thread = threading.Thread(target=server.run, name=f"cw-simulator-{port}", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the ConnectWise simulator did not start on port {port}")
            time.sleep(0.02)
        httpx.get(f"{url}/_simulator/state", timeout=5).raise_for_status()
        yield SimulatorHandle(url=url, state=st, credentials=creds)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def cw_sim() -> Iterator[SimulatorHandle]:
    """A fresh simulated ConnectWise site (seeded state, random credentials) for one test."""
    with running_simulator() as handle:
        yield handle
