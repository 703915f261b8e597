"""The Autotask simulator served over real HTTP (uvicorn on a free port, in its own thread and loop)."""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from integrations.psa.autotask import AutotaskConfig
from integrations.psa.autotask_simulator import DISCOVERY_PREFIX, ZONE_PREFIX, build_autotask_simulator_app
from integrations.psa.autotask_simulator_state import AutotaskSimulatorCredentials, AutotaskSimulatorState
from tests.psa.simulator_fixture import serving_simulator


def random_credentials() -> AutotaskSimulatorCredentials:
    """Fresh credentials for one run (no secret is a constant in the source)."""
    return AutotaskSimulatorCredentials(
        username=f"api-{secrets.token_hex(4)}@sim{secrets.token_hex(2)}.example",
        # Autotask secrets mix letters, digits and symbols; the symbols must survive the header untouched.
        secret=secrets.token_urlsafe(12) + "*$#@~",
        integration_code="".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(27)),
    )


@dataclass
class AutotaskSimulatorHandle:
    """A running simulator: its URL, its live state and the credentials it accepts."""

    url: str
    state: AutotaskSimulatorState

    @property
    def credentials(self) -> AutotaskSimulatorCredentials:
        """The API user the simulator accepts."""
        return self.state.credentials

    @property
    def discovery_url(self) -> str:
        """The discovery root, as `AutotaskConfig.discovery_url` takes it."""
        return f"{self.url}{DISCOVERY_PREFIX}"

    @property
    def zone_url(self) -> str:
        """The zone root, as `AutotaskConfig.zone_url` takes it."""
        return f"{self.url}{ZONE_PREFIX}"

    def config(self, **overrides: Any) -> AutotaskConfig:
        """An AutotaskConfig that discovers this simulator's zone (fields overridable, e.g. zone_url, secret)."""
        c = self.credentials
        fields: dict[str, Any] = {
            "username": c.username, "secret": c.secret, "integration_code": c.integration_code,
            "discovery_url": self.discovery_url, **overrides,
        }
        return AutotaskConfig(**fields)


@contextmanager
def running_autotask_simulator(state: AutotaskSimulatorState | None = None) -> Iterator[AutotaskSimulatorHandle]:
    """Serve the simulator on 127.0.0.1 until the block ends."""
    st = state if state is not None else AutotaskSimulatorState(random_credentials())
    with serving_simulator(build_autotask_simulator_app(st), "at-simulator", label="the Autotask simulator") as url:
        yield AutotaskSimulatorHandle(url=url, state=st)


@pytest.fixture
def at_sim() -> Iterator[AutotaskSimulatorHandle]:
    """A fresh simulated Autotask tenant (seeded state, random credentials) for one test."""
    with running_autotask_simulator() as handle:
        yield handle
