"""`rflow worker --check`: a worker container's health check: has Temporal seen a worker on this host poll lately?"""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import timedelta

from core.config import Settings

# As /healthz: a poller's last access is when its current long poll began, and an idle poll lasts about a minute.
SEEN_WITHIN_S = 90.0
CHECK_TIMEOUT_S = 10.0


async def _problem(settings: Settings) -> str | None:
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    from core.temporal import connect_temporal

    client = await connect_temporal(settings)
    resp = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(namespace=settings.temporal_namespace,
                                 task_queue=TaskQueue(name=settings.temporal_task_queue),
                                 task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
        timeout=timedelta(seconds=CHECK_TIMEOUT_S / 2),
    )
    # A worker's identity is the SDK's default, "<pid>@<hostname>": in a container, the hostname is the container's.
    host = socket.gethostname()
    ours = [p for p in resp.pollers if p.identity.endswith(f"@{host}") and p.HasField("last_access_time")]
    if not ours:
        return f"no worker on {host} polls task queue {settings.temporal_task_queue!r}"
    last = max(p.last_access_time.ToSeconds() for p in ours)
    if last < time.time() - SEEN_WITHIN_S:
        return f"the worker on {host} last polled {time.time() - last:.0f} s ago"
    return None


def check(settings: Settings) -> int:
    """0 when this host's worker polled our task queue within SEEN_WITHIN_S, else 1 (printing why)."""
    try:
        problem = asyncio.run(asyncio.wait_for(_problem(settings), CHECK_TIMEOUT_S))
    except Exception as exc:  # unreachable, slow or refusing: not healthy, and say which
        problem = f"cannot ask Temporal at {settings.temporal_address}: {exc!r}"
    print(f"rflow worker --check: {problem or 'ok'}", flush=True)
    return 1 if problem else 0
