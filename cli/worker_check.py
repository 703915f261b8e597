"""`rflow worker --check`: a worker container's health check: has Temporal seen a worker on this host poll lately?"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from typing import NoReturn

from core.config import Settings

CHECK_TIMEOUT_S = 10.0


async def _problem(settings: Settings) -> str | None:
    from core.temporal import POLLER_SEEN_WITHIN_S, connect_temporal, workflow_poller_ages

    client = await connect_temporal(settings)
    ages = await workflow_poller_ages(client, settings.temporal_namespace, settings.temporal_task_queue,
                                      timeout_s=CHECK_TIMEOUT_S / 2)
    # A worker's identity is the SDK's default, "<pid>@<hostname>": in a container, the hostname is the container's.
    host = socket.gethostname()
    ours = [age for identity, age in ages.items() if identity.endswith(f"@{host}")]
    if not ours:
        return f"no worker on {host} polls task queue {settings.temporal_task_queue!r}"
    if min(ours) > POLLER_SEEN_WITHIN_S:
        return f"the worker on {host} last polled {min(ours):.0f} s ago"
    return None


def check(settings: Settings) -> int:
    """0 when this host's worker polled our task queue within POLLER_SEEN_WITHIN_S, else 1 (printing why)."""
    try:
        problem = asyncio.run(asyncio.wait_for(_problem(settings), CHECK_TIMEOUT_S))
    except Exception as exc:  # unreachable, slow or refusing: not healthy, and say which
        problem = f"cannot ask Temporal at {settings.temporal_address}: {exc!r}"
    print(f"rflow worker --check: {problem or 'ok'}", flush=True)
    return 1 if problem else 0


def exit_with(code: int) -> NoReturn:
    """Leave with `code` without finalizing the interpreter. A health check is its exit code, and the SDK's Rust
    threads can abort the process while the interpreter finalizes (SIGABRT, temporalio/sdk-python#300; as in
    worker.py): seen as -6 instead of 1 from this check on a fresh clone's suite run."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
