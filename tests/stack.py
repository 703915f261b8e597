"""Shared fixtures: an SMTP sink and a second API+worker stack with its own settings and task queue."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from activities.registry import ActivityDeps
from api.app import create_app
from core.config import Settings
from integrations.llm.base import LlmProvider
from worker import build_worker


class SmtpSink:
    """Collects every message a local SMTP server receives."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"

    def to(self, address: str) -> list[str]:
        """Bodies of the messages addressed to `address`."""
        return [m.content.decode() for m in self.messages if address in m.rcpt_tos]

    async def wait_for(self, count: int, seconds: float = 15) -> None:
        """Wait until `count` messages arrived (emails go out after the update returns)."""
        async with asyncio.timeout(seconds):
            # Messages arrive on the SMTP server's own thread and loop, so poll rather than share an Event.
            while len(self.messages) < count:  # noqa: ASYNC110
                await asyncio.sleep(0.05)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_sink() -> Any:
    """A local SMTP server on a free port."""
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield sink, controller.port
    controller.stop()


@dataclass
class Stack:
    """An API client, the settings its app runs with, and what a worker for its queue needs."""

    client: httpx.AsyncClient
    settings: Settings
    deps: ActivityDeps
    app: FastAPI


StackFactory = Callable[..., AbstractAsyncContextManager[Stack]]


@pytest.fixture
def make_stack(
    settings: Settings, session_factory: async_sessionmaker[AsyncSession], temporal_client: Client
) -> StackFactory:
    """`async with make_stack(with_worker=True, **setting_overrides) as stack:` an API (and worker) of its own.

    Each stack has its own task queue, so a test can stop and start workers without touching others.
    """

    @asynccontextmanager
    async def stack(*, with_worker: bool = True, llm: LlmProvider | None = None,
                    **overrides: Any) -> AsyncIterator[Stack]:
        custom = settings.model_copy(update={"temporal_task_queue": f"l1-{uuid.uuid4().hex[:10]}", **overrides})
        deps = ActivityDeps(settings=custom, session_factory=session_factory, llm=llm)
        app = create_app(custom)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
                if not with_worker:
                    yield Stack(client, custom, deps, app)
                    return
                async with build_worker(temporal_client, deps, task_queue=custom.temporal_task_queue):
                    yield Stack(client, custom, deps, app)

    return stack
