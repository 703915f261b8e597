"""The worker processes of `rflow dev --workers N`: their names, which one serves the SDK's metrics, and whether
every one of them polls the task queue (stdlib only: `rflow --help` imports it)."""

from __future__ import annotations

import argparse
import socket
from collections.abc import Iterable

# Workflow code is CPU-bound under the GIL, so processes beyond the cores gain nothing; and each one holds its
# own database pool (up to 20 connections against PostgreSQL's default max_connections of 100).
MAX_WORKERS = 32


def worker_names(count: int) -> list[str]:
    """`worker` alone (so its log stays logs/worker.log and dev.pids keeps its key), else `worker-1` … `worker-N`."""
    return ["worker"] if count == 1 else [f"worker-{i}" for i in range(1, count + 1)]


def is_worker(name: str) -> bool:
    """Whether the child `name` is one of the worker processes."""
    return name == "worker" or name.startswith("worker-")


def describe(count: int) -> str:
    """'the worker' or 'the 3 workers', for progress lines."""
    return "the worker" if count == 1 else f"the {count} workers"


def metrics_address(name: str, address: str) -> str:
    """WORKER_METRICS_ADDRESS for worker `name`: the first one serves it, the others run without (empty)."""
    # Two processes cannot bind one port, and the SDK stops a worker whose address is taken. Ports of their own
    # would change every run and need a scrape target each; the queue as a whole is in Temporal's /metrics.
    return address if name in ("worker", "worker-1") else ""


def worker_count(text: str) -> int:
    """argparse type of --workers: a whole number from 1 to MAX_WORKERS."""
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"a whole number from 1 to {MAX_WORKERS} (worker processes), not {text!r}")
    return count


def identity(pid: int) -> str:
    """The Temporal SDK's default identity of a worker process on this host (`<pid>@<hostname>`)."""
    return f"{pid}@{socket.gethostname()}"


def all_polling(pids: Iterable[int], pollers: set[str]) -> bool:
    """True when every process in `pids` is among the task queue's `pollers` (identities).

    By identity, not by count: the last run's workers stay listed as pollers for up to 5 minutes after they stop.
    """
    return {identity(pid) for pid in pids} <= pollers
