"""What an ops team sees: /metrics of the API and the worker, JSON logs with a request id that follows a command into
its workflow and activities, tracing when an exporter is configured, offline /docs, error examples, liveness."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx import AsyncClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity as temporal_activity
from temporalio import workflow as temporal_workflow
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateStage
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.worker import Replayer, Worker

from activities.registry import ActivityDeps
from api.app import create_app
from cli.dev import DevOptions, DevStack
from cli.dev_summary import summary
from core.config import PROJECT_ROOT, ConfigError, Settings
from core.logging import JsonFormatter, configure_logging, log_fields
from core.telemetry import RequestIdInterceptor, tracer_provider, worker_runtime
from core.temporal import connect_temporal
from tests.handoffs.support import hand_off, open_session, wait_for_assessment
from tests.helpers import make_user
from tests.logging_workflow import LoggingWorkflow, log_activity
from worker import SANDBOX, build_worker


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class JsonLines(logging.Handler):
    """Every record, formatted as LOG_FORMAT=json formats it."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def parsed(self) -> list[dict[str, Any]]:
        """Every line as JSON (each one must parse)."""
        return [json.loads(line) for line in self.lines]

    async def wait_for(self, predicate: Any, seconds: float = 20) -> dict[str, Any]:
        """The first line matching `predicate` (logged after the command answered, or just before)."""
        async with asyncio.timeout(seconds):
            while True:
                for line in self.parsed():
                    if predicate(line):
                        return line
                await asyncio.sleep(0.05)


@pytest.fixture
def json_lines() -> Iterator[JsonLines]:
    """A JSON handler on the root logger at INFO for the test."""
    handler, root = JsonLines(), logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


# --- metrics ----------------------------------------------------------------------------------------------------


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one series in Prometheus text, 0 when absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{"):
            series, value = line.rsplit(" ", 1)
            found = ",".join(sorted(series[len(name) + 1:-1].split(",")))
            if found == wanted:
                return float(value)
    return 0.0


async def test_api_metrics_count_requests_by_route_template_and_status(client: AsyncClient) -> None:
    route = "/api/v1/ai-sessions/{session_id}"
    before = (await client.get("/metrics")).text
    for _ in range(2):
        assert (await client.get(f"/api/v1/ai-sessions/{uuid.uuid4()}")).status_code == 401  # no token
    assert (await client.get(f"/no/such/{uuid.uuid4()}")).status_code == 404
    assert (await client.get("/static-offline-docs/swagger-ui.css")).status_code == 200
    resp = await client.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    after = resp.text
    counted = {"method": "GET", "route": route, "status": "401"}
    assert _sample(after, "rflow_http_requests_total", **counted) == _sample(
        before, "rflow_http_requests_total", **counted) + 2
    timed = {"method": "GET", "route": route}
    assert _sample(after, "rflow_http_request_duration_seconds_count", **timed) == _sample(
        before, "rflow_http_request_duration_seconds_count", **timed) + 2
    # A path no route matches is one series, not one per path a scanner tries.
    assert _sample(after, "rflow_http_requests_total", method="GET", route="unmatched", status="404") >= 1
    assert "/no/such/" not in after
    assert _sample(after, "rflow_http_requests_total", method="GET", route="/static-offline-docs/{path}",
                   status="200") >= 1  # a mounted app: its prefix


async def test_worker_process_serves_temporal_sdk_metrics_and_logs_json(settings: Settings) -> None:
    port, queue = _free_port(), f"metrics-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DATABASE_URL": settings.database_url or "", "TEMPORAL_ADDRESS": settings.temporal_address,
           "TEMPORAL_TASK_QUEUE": queue, "JWT_SECRET": settings.jwt_secret, "CREDENTIALS_KEY": settings.credentials_key,
           "WORKER_METRICS_ADDRESS": f"127.0.0.1:{port}", "LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(sys.executable, "worker.py", cwd=PROJECT_ROOT, env=env,
                                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    stderr = asyncio.ensure_future(proc.stderr.read())
    failure: BaseException | None = None
    text = ""
    try:
        async with httpx.AsyncClient() as http, asyncio.timeout(90):
            while proc.returncode is None:  # the worker's first polls put its task queue into the SDK's series
                try:
                    text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                except httpx.TransportError:
                    text = ""
                if f'task_queue="{queue}"' in text:
                    break
                await asyncio.sleep(0.2)
    except TimeoutError as exc:
        failure = exc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
    output = (await stderr).decode()
    assert failure is None and f'task_queue="{queue}"' in text, f"no metrics of {queue}; the worker said:\n{output}"
    assert re.search(r"^temporal_\w+\{", text, re.MULTILINE), text[:2000]
    assert proc.returncode == 0, output
    parsed = [json.loads(line) for line in output.splitlines() if line.strip()]  # every line is one JSON object
    polling = [p for p in parsed if p["message"].startswith("worker polling")]
    assert polling and f"http://127.0.0.1:{port}/metrics" in polling[0]["message"], output
    assert {"time", "level", "logger", "message"} <= set(polling[0])


def test_a_taken_worker_metrics_address_is_refused_naming_the_variable(settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(ConfigError, match="WORKER_METRICS_ADDRESS"):
            worker_runtime(settings.model_copy(update={"worker_metrics_address": address}))
    assert worker_runtime(settings.model_copy(update={"worker_metrics_address": ""})) is None  # off


# --- logs -------------------------------------------------------------------------------------------------------


def test_json_lines_hold_the_traceback_and_the_context() -> None:
    handler = JsonLines()
    logger = logging.getLogger("tests.observability.traceback")
    logger.addHandler(handler)
    try:
        with log_fields(request_id="req-1"):
            try:
                raise ValueError("boom\nsecond line")
            except ValueError:
                logger.exception("it failed")
    finally:
        logger.removeHandler(handler)
    assert len(handler.lines) == 1 and "\n" not in handler.lines[0]  # one line, whatever the traceback
    line = handler.parsed()[0]
    assert (line["message"], line["level"], line["request_id"]) == ("it failed", "ERROR", "req-1")
    assert line["exception"].startswith("Traceback") and "ValueError: boom" in line["exception"]


def test_the_cli_logs_json_lines(settings: Settings) -> None:
    env = {**os.environ, "DATABASE_URL": settings.database_url or "", "LOG_FORMAT": "json", "LOG_LEVEL": "INFO"}
    code = "import logging, sys\nfrom core.logging import configure_logging\nconfigure_logging()\n" \
           "logging.getLogger('cli').info('hello')\ntry:\n    1/0\nexcept ZeroDivisionError:\n" \
           "    logging.getLogger('cli').exception('failed')\n"
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                            timeout=60, check=True)
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [line["message"] for line in lines] == ["hello", "failed"]
    assert "ZeroDivisionError" in lines[1]["exception"]
    # The same for `rflow migrate` (Alembic's lines).
    migrate = subprocess.run([sys.executable, "-m", "cli.main", "migrate"], cwd=PROJECT_ROOT, env=env,
                             capture_output=True, text=True, timeout=120, check=True)
    assert all(json.loads(line)["level"] for line in migrate.stderr.splitlines()), migrate.stderr


async def test_request_id_reaches_the_activities_of_the_command(client: AsyncClient, db: AsyncSession,
                                                                json_lines: JsonLines) -> None:
    owner = await make_user(client, db, role="owner")
    session = await open_session(client, owner["headers"])
    request_id = f"req-{uuid.uuid4().hex}"
    resp = await hand_off(client, {**owner["headers"], "X-Request-ID": request_id}, session["id"])
    assert resp.status_code == 201, resp.text
    assert resp.headers["X-Request-ID"] == request_id
    line = await json_lines.wait_for(lambda ln: "escalated by" in ln["message"] and session["id"] in ln["message"])
    assert line["request_id"] == request_id
    assert line["logger"] == "activities.persistence.handoffs" and line["activity_type"] and line["workflow_id"]
    await wait_for_assessment(client, owner["headers"], session["id"])  # nothing left running into the next test


async def test_a_missing_or_unusable_request_id_is_replaced_by_a_new_one(client: AsyncClient) -> None:
    made = (await client.get("/livez")).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    unusable = (await client.get("/livez", headers={"X-Request-ID": 'x" "level": "FAKE'})).headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", unusable) and unusable != made


async def test_request_id_reaches_the_workflow_command_and_its_activity_lines(
        settings: Settings, temporal_client: Client, json_lines: JsonLines, monkeypatch: pytest.MonkeyPatch) -> None:
    # As a worker with LOG_FORMAT=json sets up its logging (the SDK's loggers' settings restored afterwards).
    for logger, flag in ((temporal_workflow.logger, "workflow_info_on_message"),
                         (temporal_activity.logger, "activity_info_on_message")):
        monkeypatch.setattr(logger, flag, getattr(logger, flag))
    monkeypatch.setenv("LOG_FORMAT", "json")
    configure_logging()
    queue = f"logging-{uuid.uuid4().hex[:8]}"
    api_client = await connect_temporal(settings)  # as the API connects: with the request-id interceptor
    async with Worker(temporal_client, task_queue=queue, workflows=[LoggingWorkflow], activities=[log_activity],
                      workflow_runner=SANDBOX, interceptors=[RequestIdInterceptor()]):
        request_id = f"req-{uuid.uuid4().hex}"
        workflow_id = f"logging-{uuid.uuid4()}"
        start = WithStartWorkflowOperation(LoggingWorkflow.run, id=workflow_id, task_queue=queue,
                                           id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING)
        with log_fields(request_id=request_id):  # what the API's middleware sets for a request
            handle = await api_client.start_update_with_start_workflow(
                LoggingWorkflow.command, "hello", start_workflow_operation=start,
                wait_for_stage=WorkflowUpdateStage.ACCEPTED)
        assert await handle.result() == "hello"
    command = await json_lines.wait_for(lambda ln: ln["message"] == "command says hello")  # details are fields
    activity = await json_lines.wait_for(lambda ln: ln["message"] == "activity says hello")
    assert command["request_id"] == activity["request_id"] == request_id
    assert command["workflow_id"] == activity["workflow_id"] == workflow_id
    assert activity["activity_type"] == "obs_log_activity"
    # The header changes no command: the history replays with the interceptor and without it (a rollback).
    history = await temporal_client.get_workflow_handle(workflow_id).fetch_history()
    for interceptors in ([RequestIdInterceptor()], []):
        replayer = Replayer(workflows=[LoggingWorkflow], workflow_runner=SANDBOX, interceptors=interceptors,
                            data_converter=temporal_client.data_converter)
        await replayer.replay_workflow(history)


# --- tracing ----------------------------------------------------------------------------------------------------


class OtlpReceiver:
    """An OTLP/HTTP collector's trace endpoint: the spans it was sent, by service name."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, str, bytes]] = []  # (service, span name, trace id)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                for resource_spans in request.resource_spans:
                    service = next(a.value.string_value for a in resource_spans.resource.attributes
                                   if a.key == "service.name")
                    receiver.spans.extend((service, span.name, span.trace_id) for scope in resource_spans.scope_spans
                                          for span in scope.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    """A local OTLP/HTTP receiver."""
    receiver = OtlpReceiver()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


async def test_tracing_is_off_unless_an_exporter_is_configured(settings: Settings) -> None:
    assert settings.otel_exporter_otlp_endpoint == ""
    assert tracer_provider(settings, "resolutionflow-api") is None
    client = await connect_temporal(settings)
    assert not any(isinstance(i, TracingInterceptor) for i in client.config()["interceptors"])


async def test_spans_follow_a_command_from_the_api_into_the_worker(
        settings: Settings, activity_deps: ActivityDeps, db: AsyncSession, otlp: OtlpReceiver) -> None:
    traced = settings.model_copy(update={"otel_exporter_otlp_endpoint": otlp.url,
                                         "temporal_task_queue": f"traced-{uuid.uuid4().hex[:8]}"})
    worker_tracing = tracer_provider(traced, "resolutionflow-worker")  # as the worker process makes it
    assert worker_tracing is not None
    worker_client = await connect_temporal(traced, tracer_provider=worker_tracing)
    deps = ActivityDeps(settings=traced, session_factory=activity_deps.session_factory)
    app = create_app(traced)
    async with app.router.lifespan_context(app), build_worker(worker_client, deps):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as http:
            owner = await make_user(http, db, role="owner")
            await open_session(http, owner["headers"])
    # Leaving the lifespan shut the API's provider down, which exported what it held; the worker's does the same.
    worker_tracing.shutdown()
    names = {(service, name) for service, name, _ in otlp.spans}
    assert ("resolutionflow-api", "POST /api/v1/ai-sessions") in names, names
    assert any(s == "resolutionflow-api" and n.startswith("StartUpdateWithStartWorkflow:") for s, n in names), names
    for worker_span in ("HandleUpdate:", "StartActivity:", "RunActivity:"):
        assert any(s == "resolutionflow-worker" and n.startswith(worker_span) for s, n in names), names
    post_trace = next(t for s, n, t in otlp.spans if n == "POST /api/v1/ai-sessions")
    assert any(t == post_trace for s, n, t in otlp.spans if s == "resolutionflow-worker")  # one trace across both


# --- docs, error examples, liveness -----------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_only_assets_the_app_serves(client: AsyncClient, page: str) -> None:
    html = (await client.get(page)).text
    assert not re.search(r"https?://|//cdn|fonts\.googleapis", html), html  # nothing from another origin
    assets = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"(?:url|openapi_url)\s*[:=]\s*'([^']+)'", html)
    scripts = [a for a in assets if a.endswith(".js")]
    assert scripts, html
    for asset in {*assets, "/openapi.json"}:
        assert asset.startswith("/"), asset
        resp = await client.get(asset)
        assert resp.status_code == 200 and resp.content, asset
    for script in scripts:
        assert len((await client.get(script)).content) > 100_000, script  # the real bundles, not a stub


async def test_every_error_status_has_its_own_example(client: AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert "examples" not in spec["components"]["schemas"]["ErrorOut"]  # one example shown for every status
    seen: dict[str, set[str]] = {}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            examples = {}
            for code, response in operation["responses"].items():
                content = response.get("content", {}).get("application/json", {})
                if content.get("schema", {}).get("$ref") != "#/components/schemas/ErrorOut":
                    continue  # 422's list and /healthz's report carry examples of their own
                assert "example" in content, f"{method.upper()} {path} {code} has no example"
                examples[code] = json.dumps(content["example"], sort_keys=True)
                seen.setdefault(code, set()).add(examples[code])
            assert len(set(examples.values())) == len(examples), f"{method.upper()} {path} repeats an example"
    for code, bodies in seen.items():
        others = set().union(*(b for c, b in seen.items() if c != code))
        assert not bodies & others, f"{code} shares an example with another status"
    claim = spec["paths"]["/api/v1/ai-sessions/{session_id}/handoffs/{handoff_id}/claim"]["post"]
    conflict = claim["responses"]["409"]["content"]["application/json"]["example"]["detail"]
    assert {"message", "claimed_by_id", "claimed_by_name", "claimed_at"} <= set(conflict)


async def test_liveness_answers_while_workers_are_down(settings: Settings) -> None:
    no_workers = settings.model_copy(update={"temporal_task_queue": f"nobody-{uuid.uuid4().hex[:8]}"})
    app = create_app(no_workers)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        health = await http.get("/healthz")
        live = await http.get("/livez")
    assert health.status_code == 503 and health.json()["workers"] == "down"
    assert live.status_code == 200 and live.json() == {"status": "alive"}



def test_rflow_dev_lists_every_metrics_endpoint_and_moves_the_worker_s_off_a_taken_port(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("WORKER_METRICS_ADDRESS", raising=False)
    options = DevOptions(host="127.0.0.1", api_port=8000, temporal_port=7233, ui_port=8233, data_dir=tmp_path,
                         timeout_s=10, cw_simulator=False)
    with socket.socket() as taken:  # another stack's worker holds the default port (one of ours stands in for 9464)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        held = f"127.0.0.1:{taken.getsockname()[1]}"
        unset = Settings(dev_mode=True, _env_file=None).model_copy(update={"worker_metrics_address": held})
        unset.model_fields_set.discard("worker_metrics_address")  # a default, not a choice
        default = DevStack(unset, options)
        moved = default._worker_metrics_address()
    assert moved.startswith("127.0.0.1:") and moved != held
    assert Settings.model_fields["worker_metrics_address"].default == "127.0.0.1:9464"
    for chosen in ("127.0.0.1:9999", ""):  # set explicitly: used as given (empty turns the worker's off)
        explicit = DevStack(Settings(dev_mode=True, worker_metrics_address=chosen), options)
        assert explicit._worker_metrics_address() == chosen
    default.temporal_metrics_port, default.worker_metrics_address = 40123, moved
    row = next(line for line in summary(default, 1.0).splitlines() if line.strip().startswith("Metrics"))
    assert "http://127.0.0.1:8000/metrics (API)" in row and f"http://{moved}/metrics (worker)" in row
    assert "http://127.0.0.1:40123/metrics (Temporal)" in row
