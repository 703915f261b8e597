"""Real HTTP servers for stream tests (ASGI transports buffer whole responses) and an SSE reader."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

from api.app import create_app
from core.config import Settings
from tests.stack import free_port

STREAM = "/api/v1/ai-sessions/escalations/stream"


@asynccontextmanager
async def api_server(settings: Settings) -> AsyncIterator[str]:
    """An API process of its own (own engine, own LISTEN connection) served by uvicorn; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on"))
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(20):
        while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class Event:
    """One server-sent event (or a comment, with `comment` set)."""

    event: str = "message"
    id: str | None = None
    data: str = ""
    comment: str | None = None

    def json(self) -> Any:
        """The data, decoded."""
        return json.loads(self.data)


@dataclass
class Subscriber:
    """A stream being read in the background; events land in `events`."""

    events: list[Event] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def of(self, kind: str) -> list[Event]:
        """The received events of one kind."""
        return [e for e in self.events if e.event == kind]

    async def wait_for(self, kind: str, count: int = 1, seconds: float = 15) -> list[Event]:
        """Wait until `count` events of `kind` arrived."""
        async with asyncio.timeout(seconds):
            while len(self.of(kind)) < count:  # noqa: ASYNC110 - filled by the reader task as lines arrive
                await asyncio.sleep(0.02)
        return self.of(kind)


async def read_events(response: httpx.Response, into: Subscriber) -> None:
    """Parse the SSE wire format line by line into `into.events`."""
    current = Event()
    async for line in response.aiter_lines():
        if line.startswith(":"):
            into.events.append(Event(event="comment", comment=line[1:].strip()))
        elif line == "":
            if current.data or current.event != "message":
                into.events.append(current)
                if current.event == "ready":
                    into.ready.set()
            current = Event()
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                current.event = value
            elif name == "id":
                current.id = value
            elif name == "data":
                current.data = f"{current.data}\n{value}" if current.data else value


@asynccontextmanager
async def subscribe(base_url: str, headers: dict[str, str], last_event_id: str | None = None
                    ) -> AsyncIterator[Subscriber]:
    """Open the stream and read it in the background until the block ends."""
    sub = Subscriber()
    extra = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    async with (httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(30, read=None)) as client,
                client.stream("GET", STREAM, headers={**headers, **extra}) as response):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        sub.task = asyncio.create_task(read_events(response, sub))
        try:
            async with asyncio.timeout(15):
                await sub.ready.wait()
            yield sub
        finally:
            sub.task.cancel()
