"""The PSA simulators as parts of `rflow dev` (ConnectWise, Autotask, HaloPSA): one spec each, their keys kept in
the data dir, their command lines and environments, and the connection bodies that point at them."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cli.atomic_file import write_atomic
from cli.dev_secrets import (
    AT_SIMULATOR_GENERATORS,
    CW_SIMULATOR_GENERATORS,
    HALO_SIMULATOR_GENERATORS,
    load_or_create,
)
from cli.processes import free_port, http_status, port_in_use

if TYPE_CHECKING:
    from cli.dev_options import DevOptions

HOST = "127.0.0.1"  # their /_simulator/ control routes need no auth: loopback only, whatever --host says
DEMO_TICKET_ID = 48291  # every simulator seeds it
HEALTH_PATH = "/_simulator/state"  # each answers 200 here once it serves
# Login names, not secrets: the simulators print them when they start and the API returns them with the
# connection, so readable ones make "authenticated as rflowdev" obvious in the demo.
CW_COMPANY_ID = "rflowdev"
AT_USERNAME = "rflow-api@rflowdev.example"  # an Autotask API user's name is an email address
HALO_CLIENT_ID = "rflowdev-api"
HALO_TENANT = "rflowdev"  # a hosted Halo wants ?tenant= on its token requests: the demo exercises it
AT_DISCOVERY_PATH = "/atservicesrest"  # the simulator's DISCOVERY_PREFIX (not imported: it loads Starlette)
HALO_API_PATH = "/api"  # the simulator's API_PREFIX


def _cw_body(url: str, env: dict[str, str]) -> dict[str, str]:
    return {"provider": "connectwise", "site_url": url, "company_id": env["CW_SIM_COMPANY_ID"],
            "public_key": env["CW_SIM_PUBLIC_KEY"], "private_key": env["CW_SIM_PRIVATE_KEY"],
            "client_id": env["CW_SIM_CLIENT_ID"]}  # codebase left to discovery


def _at_body(url: str, env: dict[str, str]) -> dict[str, str]:
    # No zone_url: the client discovers the zone, as it does against Autotask's own discovery service.
    return {"provider": "autotask", "username": env["AT_SIM_USERNAME"], "secret": env["AT_SIM_SECRET"],
            "integration_code": env["AT_SIM_INTEGRATION_CODE"], "discovery_url": url + AT_DISCOVERY_PATH}


def _halo_body(url: str, env: dict[str, str]) -> dict[str, str]:
    # No auth_url: it defaults to the API host's /auth, where the simulator issues tokens.
    return {"provider": "halopsa", "api_url": url + HALO_API_PATH, "client_id": env["HALO_SIM_CLIENT_ID"],
            "client_secret": env["HALO_SIM_CLIENT_SECRET"], "tenant": env["HALO_SIM_TENANT"]}


@dataclass(frozen=True)
class PsaSimulator:
    """One provider's simulator: how `rflow dev` runs it and the body of `POST /api/v1/psa/connections` for it."""

    name: str  # the child's name, its log's (logs/<name>.log) and its connection file's
    label: str
    module: str
    default_port: int
    port_option: str  # the DevOptions field and, dashed, the flag: cw_port, --cw-port
    generators: dict[str, Callable[[], str]]  # its secrets, generated once into secrets.env
    identity: dict[str, str]  # the environment it reads that is no secret
    body: Callable[[str, dict[str, str]], dict[str, str]]  # (its URL, its environment) -> the connection body

    @property
    def connection_file(self) -> str:
        """The connection body's file name inside the data dir."""
        return f"{self.name}-connection.json"

    @property
    def env_prefix(self) -> str:
        """CW_SIM_, AT_SIM_ or HALO_SIM_: what its variables (and its lines in secrets.env) start with."""
        return next(iter(self.generators)).split("_SIM_")[0] + "_SIM_"

    @property
    def port_flag(self) -> str:
        """The `rflow dev` flag that chooses its port."""
        return "--" + self.port_option.replace("_", "-")

    def url(self, port: int) -> str:
        """Its base URL (the connection body's URLs and the control routes start here)."""
        return f"http://{HOST}:{port}"

    def argv(self, port: int) -> list[str]:
        """Its command line; the secrets come through the environment, never argv (which `ps` shows)."""
        return [sys.executable, "-m", self.module, "--host", HOST, "--port", str(port)]

    def child_env(self, credentials: dict[str, str]) -> dict[str, str]:
        """Its environment: ours plus the identity and the secrets it accepts (the *_SIM_* names it reads)."""
        return {**os.environ, "PYTHONUNBUFFERED": "1", **self.identity, **credentials}

    def connection_body(self, port: int, credentials: dict[str, str]) -> dict[str, str]:
        """The JSON body of `POST /api/v1/psa/connections` for it."""
        return self.body(self.url(port), {**self.identity, **credentials})

    def write_connection_file(self, data_dir: Path, port: int, credentials: dict[str, str]) -> Path:
        """Write the connection body into the data dir (mode 0600: it holds the secrets)."""
        path = data_dir / self.connection_file
        write_atomic(path, json.dumps(self.connection_body(port, credentials), indent=2) + "\n", mode=0o600)
        return path

    def prepare(self, data_dir: Path, requested_port: int | None, claimed: frozenset[int] = frozenset(),
                ) -> tuple[int, dict[str, str], list[str]]:
        """(port, credentials, notes): the secrets generated once per data dir, a port, the connection file.

        `claimed`: ports another part was asked to bind, which the default must not take while they are still free.
        """
        credentials, notes = load_or_create(data_dir, self.generators)
        port = requested_port or self.default_port
        # Like the mail sink: the default moves, a choice does not.
        while requested_port is None and (port in claimed or port_in_use(HOST, port)):
            port = free_port(HOST)
        path = self.write_connection_file(data_dir, port, credentials)
        notes.append(f"starting the {self.label} simulator on {self.url(port)} (connection body in {path})")
        return port, credentials, notes


CONNECTWISE = PsaSimulator("cw-simulator", "ConnectWise", "integrations.psa.connectwise_simulator", 8123, "cw_port",
                           CW_SIMULATOR_GENERATORS, {"CW_SIM_COMPANY_ID": CW_COMPANY_ID}, _cw_body)
AUTOTASK = PsaSimulator("at-simulator", "Autotask", "integrations.psa.autotask_simulator", 8124, "at_port",
                        AT_SIMULATOR_GENERATORS, {"AT_SIM_USERNAME": AT_USERNAME}, _at_body)
HALOPSA = PsaSimulator("halo-simulator", "HaloPSA", "integrations.psa.halopsa_simulator", 8125, "halo_port",
                       HALO_SIMULATOR_GENERATORS,
                       {"HALO_SIM_CLIENT_ID": HALO_CLIENT_ID, "HALO_SIM_TENANT": HALO_TENANT}, _halo_body)
SIMULATORS = (CONNECTWISE, AUTOTASK, HALOPSA)
NAMES = tuple(sim.name for sim in SIMULATORS)


@dataclass(frozen=True)
class Running:
    """A simulator this run of `rflow dev` starts: on which port, with which secrets."""

    spec: PsaSimulator
    port: int
    credentials: dict[str, str]

    @property
    def url(self) -> str:
        """Its base URL."""
        return self.spec.url(self.port)

    @property
    def health_url(self) -> str:
        """What answers 200 once it serves."""
        return self.url + HEALTH_PATH

    def argv(self) -> list[str]:
        """Its command line."""
        return self.spec.argv(self.port)

    def child_env(self) -> dict[str, str]:
        """Its environment (the API's and the worker's never hold its secrets)."""
        return self.spec.child_env(self.credentials)

    def serving(self) -> bool:
        """Whether it answers its state route."""
        return http_status(self.health_url) == 200


def described(running: dict[str, Running]) -> dict[str, str]:
    """{child name: "the <label> simulator"}, to say what is being stopped."""
    return {name: f"the {sim.spec.label} simulator" for name, sim in running.items()}


def off_flag(spec: PsaSimulator, options: DevOptions) -> str | None:
    """The flag that turned this simulator off, or None when it runs."""
    if not options.psa_simulators:
        return "--no-psa-simulators"
    if spec is CONNECTWISE and not options.cw_simulator:
        return "--no-cw-simulator"
    return None


def requested_ports(options: DevOptions) -> list[tuple[str, int]]:
    """(flag, port) of each port asked for explicitly, for a simulator that runs: a taken one is refused."""
    return [(spec.port_flag, port) for spec in SIMULATORS
            if off_flag(spec, options) is None and (port := getattr(options, spec.port_option)) is not None]


def start(data_dir: Path, options: DevOptions, claimed: frozenset[int] = frozenset(),
          ) -> tuple[dict[str, Running], list[str]]:
    """Prepare the simulators that run ({child name: Running}) and say so; drop the others' connection files.

    `claimed`: the ports the rest of the stack binds (the simulators' own explicit ones are added here).
    """
    claimed = claimed | {port for _, port in requested_ports(options)}
    running: dict[str, Running] = {}
    notes: list[str] = []
    for spec in SIMULATORS:
        if (flag := off_flag(spec, options)) is not None:
            (data_dir / spec.connection_file).unlink(missing_ok=True)  # it would name no running simulator
            if flag == "--no-cw-simulator":
                notes.append(f"no {spec.label} simulator ({flag})")
            continue
        port, credentials, said = spec.prepare(data_dir, getattr(options, spec.port_option), claimed)
        running[spec.name] = Running(spec, port, credentials)
        claimed |= {port}  # a default that moved must not land on the next one's
        notes += said
    if not options.psa_simulators:
        notes.append("no PSA simulators (--no-psa-simulators)")
    return running, notes
