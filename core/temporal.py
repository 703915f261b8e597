"""Connecting to Temporal the same way in the API, the worker and the tests."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

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
# eager activity dispatch hands an activity a workflow schedules straight back to the worker that completed the
# workflow task when it has a free slot, instead of a round trip through the task queue (docs/performance.md).
ENGINE_DYNAMIC_CONFIG = {"system.enableActivityEagerExecution": "true"}


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
