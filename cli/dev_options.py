"""What `rflow dev` is asked to do (its flags as options), and the ports it refuses before it starts anything."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cli import dev_psa
from cli.mail_sink import DEFAULT_HOST as MAIL_HOST
from cli.processes import port_in_use


@dataclass(frozen=True)
class DevOptions:
    """What `rflow dev` binds and where it keeps its state."""

    host: str
    api_port: int
    temporal_port: int
    ui_port: int
    data_dir: Path
    timeout_s: float
    cw_simulator: bool = True  # --no-cw-simulator turns off only ConnectWise's
    cw_port: int | None = None  # None: the simulator's default (cli/dev_psa.py), or a free port when that is taken
    workers: int = 1  # worker processes (--workers)
    psa_simulators: bool = True  # --no-psa-simulators: none of the three
    at_port: int | None = None
    halo_port: int | None = None
    mail_port: int | None = None  # the local SMTP sink's; None: 1025, or a free port when that is taken

    @property
    def connect_host(self) -> str:
        """The address clients use (a wildcard bind is reached over loopback)."""
        return "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host

    @property
    def stack_ports(self) -> frozenset[int]:
        """The ports the API and Temporal bind: a simulator's default port keeps off them."""
        return frozenset((self.api_port, self.temporal_port, self.ui_port))


class StartupError(Exception):
    """The stack cannot start; the message says why and what to do."""


def refuse_busy_ports(options: DevOptions) -> None:
    """Raise StartupError when a port asked for is taken, or asked for twice (a default that is taken moves)."""
    host = options.connect_host
    ports = [("--api-port", host, options.api_port), ("--temporal-port", host, options.temporal_port),
             ("--ui-port", host, options.ui_port)]
    ports += [(flag, dev_psa.HOST, port) for flag, port in dev_psa.requested_ports(options)]
    if options.mail_port is not None:
        ports.append(("--mail-port", MAIL_HOST, options.mail_port))
    for flag, where, port in ports:
        if twice := [other for other, _, same in ports if same == port and other != flag]:
            raise StartupError(f"port {port} is asked for twice ({flag} and {twice[0]}); pass another to one of them")
        if port_in_use(where, port):
            raise StartupError(f"port {port} is already in use; stop what holds it or pass {flag}")
