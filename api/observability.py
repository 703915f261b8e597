"""What operations sees of the API: a request id on every response and log line, Prometheus /metrics, and spans.

Requests are counted by route *template* (`/api/v1/ai-sessions/{session_id}`), so the series stay bounded
whatever paths clients send; a path no route matches is counted as `unmatched`.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.logging import log_fields

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger(__name__)
REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is kept when it is a plain token (a UUID, a proxy's or a load balancer's id); anything else, or
# nothing, gets a new one: a header value must not be able to forge log structure or grow without bound.
ACCEPTED_REQUEST_ID = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")
UNMATCHED = "unmatched"

REQUESTS = Counter("rflow_http_requests", "HTTP requests answered, by method, route template and status",
                   ["method", "route", "status"])
LATENCY = Histogram("rflow_http_request_duration_seconds", "Time from request to the end of the response body, "
                    "by method and route template (an event stream counts until it closes)", ["method", "route"])

router = APIRouter(tags=["operations"])


def request_id_from(value: str | None) -> str:
    """The caller's X-Request-ID if it is an acceptable token, else a new one."""
    if value and ACCEPTED_REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


def _route_of(scope: Scope) -> str:
    # Set by the router on the (shared) scope once a route matched. A route of an included router knows only its
    # own router's prefix; FastAPI keeps the full template (with the include prefix) in its routing context.
    context = (scope.get("fastapi") or {}).get("effective_route_context")
    route = context if getattr(context, "path_format", None) else scope.get("route")
    if path := getattr(route, "path_format", None) or getattr(route, "path", None):
        return str(path)
    # A mounted app (the docs' static files) leaves no route, only its prefix added to the root path.
    mount = str(scope.get("root_path", ""))[len(str(scope.get("app_root_path", ""))):]
    return f"{mount}/{{path}}" if mount and "endpoint" in scope else UNMATCHED


class ObservabilityMiddleware:
    """Gives each request an id (response header and log lines, and on to the workflows) and counts it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Plain ASGI (not BaseHTTPMiddleware): event streams pass through unbuffered, context variables hold."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(Headers(scope=scope).get(REQUEST_ID_HEADER))
        status: int | None = None  # set once the app starts a response
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()),
                                                  (REQUEST_ID_HEADER.lower().encode(), request_id.encode("latin-1"))]}
            await send(message)

        with log_fields(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                # Logged once, here, inside the request's context, so the traceback line carries its request id;
                # the 500 is answered here too, so it carries the id the operator will search the logs for.
                log.exception("%s %s failed", scope["method"], scope["path"])
                if status is not None:
                    raise  # the response began: nothing else can be sent
                await JSONResponse({"detail": f"Internal server error (request id {request_id})"},
                                   status_code=500)(scope, receive, send_with_id)
            finally:
                route, method = _route_of(scope), scope["method"]
                REQUESTS.labels(method, route, str(status or 500)).inc()
                LATENCY.labels(method, route).observe(time.perf_counter() - started)


def _registry() -> CollectorRegistry:
    # With several API processes on one host (`rflow api --workers N`), PROMETHEUS_MULTIPROC_DIR makes each
    # scrape report all of them; prometheus_client then keeps its values in files there.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


@router.get("/metrics", response_class=Response, responses={
    200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
async def metrics() -> Response:
    """Prometheus metrics of this API process: `rflow_http_requests_total{method,route,status}`, the latency
    histogram `rflow_http_request_duration_seconds{method,route}`, and the Python process's own."""
    return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST)


def fastapi_telemetry(tracing: TracerProvider | None) -> dict[str, Any]:
    """FastAPI's own OpenTelemetry settings: a span per request (and its dependencies, endpoint, serialization)
    into `tracing`, or nothing at all without it. Its metrics and logs stay off: /metrics and our log lines
    cover them."""
    if tracing is None:
        return {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
    return {"tracer_provider": tracing, "metrics": False, "logs": False,
            "exclude": lambda scope: scope.get("path") in ("/metrics", "/livez")}


def install_observability(app: FastAPI) -> None:
    """Add the request-id and metrics middleware, and /metrics."""
    app.add_middleware(ObservabilityMiddleware)
    app.include_router(router)
