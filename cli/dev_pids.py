"""`<data dir>/dev.pids`: which `rflow dev` uses a data dir, and the pid of each of its parts."""

from __future__ import annotations

import json
import os
from pathlib import Path

from cli.atomic_file import write_atomic
from cli.processes import pid_alive

PIDS_FILE = "dev.pids"


def other_owner(data_dir: Path) -> int | None:
    """The pid of another `rflow dev` still running on this data dir, else None (a stale file is ignored)."""
    try:
        owner = int(json.loads((data_dir / PIDS_FILE).read_text())["rflow"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return owner if owner != os.getpid() and pid_alive(owner) else None


def write(data_dir: Path, pids: dict[str, int | None]) -> None:
    """Record the stack's processes by part (atomically: tests and a second `rflow dev` read it meanwhile)."""
    write_atomic(data_dir / PIDS_FILE, json.dumps(pids) + "\n")


def remove_if_ours(data_dir: Path) -> None:
    """Delete the file if this process wrote it."""
    pids_file = data_dir / PIDS_FILE
    try:
        if json.loads(pids_file.read_text()).get("rflow") == os.getpid():
            pids_file.unlink()
    except (OSError, ValueError, AttributeError):
        pass  # absent, or another instance's file: leave it
