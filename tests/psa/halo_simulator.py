"""The HaloPSA simulator served over real HTTP (uvicorn on a free port, in its own thread and loop)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from integrations.psa.halopsa import HaloConfig
from integrations.psa.halopsa_simulator import API_PREFIX, build_halo_simulator_app
from integrations.psa.halopsa_simulator_state import HaloSimulatorCredentials, HaloSimulatorState
from tests.psa.simulator_fixture import serving_simulator


def random_credentials(tenant: str | None = None) -> HaloSimulatorCredentials:
    """Fresh credentials for one run (no secret is a constant in the source)."""
    return HaloSimulatorCredentials(
        client_id=f"{secrets.token_hex(4)}-{secrets.token_hex(2)}-{secrets.token_hex(2)}-{secrets.token_hex(6)}",
        client_secret=secrets.token_urlsafe(24), tenant=tenant,
    )


@dataclass
class HaloSimulatorHandle:
    """A running simulator: its URL, its live state and the credentials it accepts."""

    url: str
    state: HaloSimulatorState

    @property
    def credentials(self) -> HaloSimulatorCredentials:
        """The API application the simulator accepts."""
        return self.state.credentials

    @property
    def api_url(self) -> str:
        """The API root, as `HaloConfig.api_url` takes it."""
        return f"{self.url}{API_PREFIX}"

    def config(self, **overrides: Any) -> HaloConfig:
        """A HaloConfig for this simulator (auth_url left to its default; fields overridable, e.g. client_secret)."""
        c = self.credentials
        fields: dict[str, Any] = {"api_url": self.api_url, "client_id": c.client_id,
                                  "client_secret": c.client_secret, "tenant": c.tenant, **overrides}
        return HaloConfig(**fields)


@contextmanager
def running_halo_simulator(state: HaloSimulatorState | None = None) -> Iterator[HaloSimulatorHandle]:
    """Serve the simulator on 127.0.0.1 until the block ends."""
    st = state if state is not None else HaloSimulatorState(random_credentials())
    with serving_simulator(build_halo_simulator_app(st), "halo-simulator") as url:
        yield HaloSimulatorHandle(url=url, state=st)


@pytest.fixture
def halo_sim() -> Iterator[HaloSimulatorHandle]:
    """A fresh simulated HaloPSA instance (seeded state, random credentials) for one test."""
    with running_halo_simulator() as handle:
        yield handle
