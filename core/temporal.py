"""Connecting to Temporal the same way in the API, the worker and the tests."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime

from core.config import Settings
from core.telemetry import temporal_interceptors
from workflows.contracts.search_attributes import CUSTOM_SEARCH_ATTRIBUTES

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider


def search_attribute_cli_args() -> list[str]:
    """`--search-attribute Name=Keyword` arguments for `temporal server start-dev`."""
    args: list[str] = []
    for key in CUSTOM_SEARCH_ATTRIBUTES:
        args += ["--search-attribute", f"{key.name}=Keyword"]
    return args


# The engine settings the project runs with (the dev server's flags here, docker-compose's dynamic config file):
# - eager activity dispatch hands an activity a workflow schedules straight back to the worker that completed the
#   workflow task when it has a free slot, instead of a round trip through the task queue (docs/performance.md);
# - fairness: matching dispatches each account's tasks (fairness key = account id) in turn, and by priority key
#   first, so one account's burst queues behind itself (docs/fairness.md);
# - one task-queue partition: with the default four, each partition orders only its own share of the tasks and
#   a poller takes from whichever answers first, which blurs both priority and fairness at our scale.
ENGINE_DYNAMIC_CONFIG = {
    "system.enableActivityEagerExecution": "true",
    "matching.enableFairness": "true",
    "matching.numTaskqueueReadPartitions": "1",
    "matching.numTaskqueueWritePartitions": "1",
}


def dynamic_config_cli_args() -> list[str]:
    """`--dynamic-config-value key=value` arguments for `temporal server start-dev`."""
    args: list[str] = []
    for key, value in ENGINE_DYNAMIC_CONFIG.items():
        args += ["--dynamic-config-value", f"{key}={value}"]
    return args


async def connect_temporal(settings: Settings, *, runtime: Runtime | None = None,
                           tracer_provider: TracerProvider | None = None) -> Client:
    """A client with the pydantic converter, the request-id (and, with a provider, tracing) interceptors, on
    `runtime` (default: the SDK's); raises TimeoutError/RuntimeError when unreachable."""
    return await asyncio.wait_for(
        Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=pydantic_data_converter,
            interceptors=temporal_interceptors(tracer_provider),
            runtime=runtime,
        ),
        timeout=settings.temporal_connect_timeout_s,
    )


# A poller's last_access_time is when its current long poll began, and an idle worker's polls last about a
# minute (the server's long-poll expiry): a poller last seen longer ago than this is no longer polling.
POLLER_SEEN_WITHIN_S = 90.0


async def workflow_poller_ages(client: Client, namespace: str, task_queue: str, *,
                               timeout_s: float) -> dict[str, float]:
    """Seconds since each workflow-task poller of `task_queue` last polled, by poller identity."""
    resp = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(namespace=namespace, task_queue=TaskQueue(name=task_queue),
                                 task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
        timeout=timedelta(seconds=timeout_s),
    )
    now = time.time()
    return {p.identity: now - p.last_access_time.ToSeconds() for p in resp.pollers if p.HasField("last_access_time")}
