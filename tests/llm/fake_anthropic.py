"""A local stand-in of Anthropic's `POST /v1/messages`: records requests, answers from a script.

The real `anthropic` SDK talks to it through an httpx2 transport (the SDK's HTTP library), so the
request it builds and the responses it parses are the SDK's own.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from core.config import Settings
from integrations.llm.base import LlmProvider
from integrations.llm.factory import build_llm_provider

BASE_URL = "http://anthropic.test"
USAGE = {"input_tokens": 1200, "output_tokens": 150, "cache_read_input_tokens": 900,
         "cache_creation_input_tokens": 0}


@dataclass
class Scripted:
    """One scripted answer: a JSON body with a status, or a transport timeout."""

    status: int = 200
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    timeout: bool = False
    delay_s: float = 0.0


class FakeAnthropic:
    """Scripted answers in order; every request body is kept in `requests`."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.script: list[Scripted] = []
        self.app = Starlette(routes=[Route("/v1/messages", self._messages, methods=["POST"])])

    # --- scripting -----------------------------------------------------------------------------

    def tool_call(self, name: str, tool_input: dict[str, Any], usage: dict[str, int] | None = None) -> None:
        """Answer with a tool_use block calling `name` with `tool_input`."""
        self._message([{"type": "tool_use", "id": f"toolu_{len(self.script)}", "name": name, "input": tool_input}],
                      "tool_use", usage)

    def text(self, text: str) -> None:
        """Answer with a plain text block (the model ignored the tool)."""
        self._message([{"type": "text", "text": text}], "end_turn", None)

    def error(self, status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> None:
        """Answer with an API error."""
        self.script.append(Scripted(status=status, headers=headers or {},
                                    body={"type": "error", "error": {"type": kind, "message": message}}))

    def slow(self, seconds: float) -> None:
        """Delay the next scripted answer by `seconds` (the model is slow)."""
        self.script[-1].delay_s = seconds

    def hang(self) -> None:
        """Fail the next request with a read timeout."""
        self.script.append(Scripted(timeout=True))

    def _message(self, content: list[dict[str, Any]], stop: str, usage: dict[str, int] | None) -> None:
        self.script.append(Scripted(body={
            "id": f"msg_{len(self.script)}", "type": "message", "role": "assistant", "model": "scripted",
            "content": content, "stop_reason": stop, "stop_sequence": None, "usage": usage or USAGE,
        }))

    # --- serving -------------------------------------------------------------------------------

    async def _messages(self, request: Request) -> JSONResponse:
        self.requests.append(json.loads(await request.body()))
        self.headers.append(dict(request.headers))
        if not self.script:
            return JSONResponse({"type": "error", "error": {"type": "api_error", "message": "no scripted reply"}},
                                status_code=500)
        step = self.script.pop(0)
        if step.delay_s:
            await asyncio.sleep(step.delay_s)
        return JSONResponse(step.body, status_code=step.status, headers=step.headers)

    def http_client(self) -> httpx2.AsyncClient:
        """An httpx2 client whose requests reach this app in-process."""
        return httpx2.AsyncClient(transport=_Transport(self), base_url=BASE_URL)

    def provider(self, **settings: Any) -> LlmProvider:
        """The production factory's provider, with an API key, pointed at this stand-in."""
        config = Settings(dev_mode=True, anthropic_api_key="sk-ant-test", anthropic_base_url=BASE_URL, **settings)
        return build_llm_provider(config, http_client=self.http_client())


class _Transport(httpx2.AsyncBaseTransport):
    """ASGI transport that can also simulate a network timeout."""

    def __init__(self, fake: FakeAnthropic) -> None:
        self._fake = fake
        self._asgi = httpx2.ASGITransport(app=fake.app)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self._fake.script and self._fake.script[0].timeout:
            self._fake.script.pop(0)
            self._fake.requests.append(json.loads(request.content))
            raise httpx2.ReadTimeout("scripted timeout", request=request)
        return await self._asgi.handle_async_request(request)
