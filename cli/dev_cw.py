"""The ConnectWise simulator as a part of `rflow dev`: what it was before the three providers shared one spec
(cli/dev_psa.py), kept for the callers that name it."""

from __future__ import annotations

from pathlib import Path

from cli.dev_psa import CONNECTWISE, CW_COMPANY_ID, DEMO_TICKET_ID, HOST

__all__ = ["COMPANY_ID", "CONNECTION_FILE", "DEFAULT_PORT", "DEMO_TICKET_ID", "HOST", "argv", "child_env",
           "connection_body", "prepare", "url", "write_connection_file"]

DEFAULT_PORT = CONNECTWISE.default_port
CONNECTION_FILE = CONNECTWISE.connection_file  # inside the data dir
COMPANY_ID = CW_COMPANY_ID


def url(port: int) -> str:
    """The simulator's site URL (also what a connection's site_url names)."""
    return CONNECTWISE.url(port)


def argv(port: int) -> list[str]:
    """The simulator's command line; its keys come through the environment, never argv (which `ps` shows)."""
    return CONNECTWISE.argv(port)


def child_env(credentials: dict[str, str]) -> dict[str, str]:
    """The simulator's environment: ours plus the API member it accepts (the CW_SIM_* names it reads)."""
    return CONNECTWISE.child_env(credentials)


def connection_body(port: int, credentials: dict[str, str]) -> dict[str, str]:
    """The JSON body of `POST /api/v1/psa/connections` for the simulator (codebase left to discovery)."""
    return CONNECTWISE.connection_body(port, credentials)


def write_connection_file(data_dir: Path, port: int, credentials: dict[str, str]) -> Path:
    """Write the connection body to `<data dir>/cw-simulator-connection.json` (mode 0600: it holds the keys)."""
    return CONNECTWISE.write_connection_file(data_dir, port, credentials)


def prepare(data_dir: Path, requested_port: int | None) -> tuple[int, dict[str, str], list[str]]:
    """(port, credentials, notes): the keys generated once per data dir, a port, and the connection file written."""
    return CONNECTWISE.prepare(data_dir, requested_port)
