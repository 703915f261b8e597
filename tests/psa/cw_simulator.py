"""The ConnectWise simulator served over real HTTP (uvicorn on a free port, in its own thread and loop)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from integrations.psa.connectwise import ConnectWiseConfig
from integrations.psa.connectwise_simulator import SimulatorCredentials, SimulatorState, build_simulator_app
from tests.psa.simulator_fixture import serving_simulator


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
    with serving_simulator(build_simulator_app(creds, st), "cw-simulator", label="the ConnectWise simulator") as url:
        yield SimulatorHandle(url=url, state=st, credentials=creds)


@pytest.fixture
def cw_sim() -> Iterator[SimulatorHandle]:
    """A fresh simulated ConnectWise site (seeded state, random credentials) for one test."""
    with running_simulator() as handle:
        yield handle
