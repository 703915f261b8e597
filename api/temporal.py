"""The API process's one Temporal client, connected lazily so the API can start before Temporal."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from temporalio.client import Client

from core.config import Settings
from core.errors import EngineUnavailable
from core.temporal import connect_temporal

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger(__name__)


class TemporalGateway:
    """Holds the client; `client()` connects on first use and raises 503 while Temporal is down."""

    def __init__(self, settings: Settings, client: Client | None = None, *,
                 tracer_provider: TracerProvider | None = None) -> None:
        self._settings = settings
        self._client = client
        self._tracer_provider = tracer_provider
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        """The connected client, or `EngineUnavailable`."""
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await connect_temporal(self._settings, tracer_provider=self._tracer_provider)
                except (TimeoutError, RuntimeError, OSError) as exc:
                    log.warning("Temporal unreachable at %s: %s", self._settings.temporal_address, exc)
                    raise EngineUnavailable(
                        f"The workflow engine is unreachable at {self._settings.temporal_address}"
                    ) from exc
            return self._client

    async def ping(self) -> bool:
        """True when the Temporal frontend answers a health check."""
        try:
            client = await self.client()
            return await asyncio.wait_for(client.service_client.check_health(), timeout=3)
        except Exception:  # any failure means "down" for the health endpoint
            return False
