"""The ConnectWise simulator as a part of `rflow dev`: its command line, its environment and the connection file."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from cli.atomic_file import write_atomic
from cli.dev_secrets import CW_SIMULATOR_GENERATORS, load_or_create
from cli.processes import free_port, port_in_use

DEFAULT_PORT = 8123
HOST = "127.0.0.1"  # its /_simulator/ control routes need no auth: loopback only, whatever --host says
CONNECTION_FILE = "cw-simulator-connection.json"  # inside the data dir
DEMO_TICKET_ID = 48291  # seeded by SimulatorState
# A company id is a login name, not a secret (it is in every URL and in the connection the API returns):
# a readable one makes "authenticated as company rflowdev" obvious in the demo.
COMPANY_ID = "rflowdev"


def url(port: int) -> str:
    """The simulator's site URL (also what a connection's site_url names)."""
    return f"http://{HOST}:{port}"


def argv(port: int) -> list[str]:
    """The simulator's command line; its keys come through the environment, never argv (which `ps` shows)."""
    return [sys.executable, "-m", "integrations.psa.connectwise_simulator", "--host", HOST, "--port", str(port)]


def child_env(credentials: dict[str, str]) -> dict[str, str]:
    """The simulator's environment: ours plus the API member it accepts (the CW_SIM_* names it reads)."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "CW_SIM_COMPANY_ID": COMPANY_ID, **credentials}


def connection_body(port: int, credentials: dict[str, str]) -> dict[str, str]:
    """The JSON body of `POST /api/v1/psa/connections` for the simulator (codebase left to discovery)."""
    return {
        "provider": "connectwise", "site_url": url(port), "company_id": COMPANY_ID,
        "public_key": credentials["CW_SIM_PUBLIC_KEY"], "private_key": credentials["CW_SIM_PRIVATE_KEY"],
        "client_id": credentials["CW_SIM_CLIENT_ID"],
    }


def write_connection_file(data_dir: Path, port: int, credentials: dict[str, str]) -> Path:
    """Write the connection body to `<data dir>/cw-simulator-connection.json` (mode 0600: it holds the keys)."""
    path = data_dir / CONNECTION_FILE
    write_atomic(path, json.dumps(connection_body(port, credentials), indent=2) + "\n", mode=0o600)
    return path


def prepare(data_dir: Path, requested_port: int | None) -> tuple[int, dict[str, str], list[str]]:
    """(port, credentials, notes): the keys generated once per data dir, a port, and the connection file written."""
    credentials, notes = load_or_create(data_dir, CW_SIMULATOR_GENERATORS)
    port = requested_port or DEFAULT_PORT
    if requested_port is None and port_in_use(HOST, port):  # like the mail sink: the default moves, a choice not
        port = free_port(HOST)
    path = write_connection_file(data_dir, port, credentials)
    notes.append(f"starting the ConnectWise simulator on {url(port)} (connection body in {path})")
    return port, credentials, notes
