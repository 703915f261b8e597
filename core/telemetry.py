"""What the API and the worker share for observability: the request id across Temporal, tracing, the SDK's metrics.

The request id of an HTTP request rides in a Temporal header on the workflow start, update or signal it sends; the
worker puts it on the log lines of that command's handler and of the activities (and further workflow commands) it
runs. Entity workflows started by update-with-start get it on the update only: their main loop outlives the request.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import temporalio.client
import temporalio.worker
from temporalio import activity
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadConverter
from temporalio.runtime import LogForwardingConfig, LoggingConfig, PrometheusConfig, Runtime, TelemetryConfig

from core.config import ConfigError, Settings
from core.logging import current_request_id, log_fields

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

REQUEST_ID_HEADER = "rflow-request-id"
Headers = Mapping[str, Payload]


def _with_request_id(headers: Headers) -> Headers:
    request_id = current_request_id()
    if request_id is None:
        return headers
    return {**headers, REQUEST_ID_HEADER: PayloadConverter.default.to_payloads([request_id])[0]}


def _request_id_of(headers: Headers) -> str | None:
    payload = headers.get(REQUEST_ID_HEADER)
    if payload is None:
        return None
    value = PayloadConverter.default.from_payloads([payload])[0]
    return value if isinstance(value, str) else None


class _ClientOutbound(temporalio.client.OutboundInterceptor):
    async def start_workflow(self, input: temporalio.client.StartWorkflowInput) -> Any:
        input.headers = _with_request_id(input.headers)
        return await super().start_workflow(input)

    async def start_workflow_update(self, input: temporalio.client.StartWorkflowUpdateInput) -> Any:
        input.headers = _with_request_id(input.headers)
        return await super().start_workflow_update(input)

    async def start_update_with_start_workflow(self, input: temporalio.client.StartWorkflowUpdateWithStartInput) -> Any:
        # The update is the command; the started run goes on after this request (no header on the start).
        input.update_workflow_input.headers = _with_request_id(input.update_workflow_input.headers)
        return await super().start_update_with_start_workflow(input)

    async def signal_workflow(self, input: temporalio.client.SignalWorkflowInput) -> None:
        input.headers = _with_request_id(input.headers)
        await super().signal_workflow(input)


class _ActivityInbound(temporalio.worker.ActivityInboundInterceptor):
    async def execute_activity(self, input: temporalio.worker.ExecuteActivityInput) -> Any:
        info = activity.info()
        with log_fields(request_id=_request_id_of(input.headers), workflow_id=info.workflow_id,
                        activity_type=info.activity_type):
            return await super().execute_activity(input)


class _WorkflowOutbound(temporalio.worker.WorkflowOutboundInterceptor):
    def start_activity(self, input: temporalio.worker.StartActivityInput) -> Any:
        input.headers = _with_request_id(input.headers)
        return super().start_activity(input)

    def start_local_activity(self, input: temporalio.worker.StartLocalActivityInput) -> Any:
        input.headers = _with_request_id(input.headers)
        return super().start_local_activity(input)

    async def start_child_workflow(self, input: temporalio.worker.StartChildWorkflowInput) -> Any:
        input.headers = _with_request_id(input.headers)
        return await super().start_child_workflow(input)


class _WorkflowInbound(temporalio.worker.WorkflowInboundInterceptor):
    # Runs inside the sandbox but is the worker's own class: LOG_FIELDS is the one the log formatter reads.
    # Setting a context variable issues no command, so histories replay unchanged.
    def init(self, outbound: temporalio.worker.WorkflowOutboundInterceptor) -> None:
        super().init(_WorkflowOutbound(outbound))

    async def execute_workflow(self, input: temporalio.worker.ExecuteWorkflowInput) -> Any:
        with log_fields(request_id=_request_id_of(input.headers)):
            return await super().execute_workflow(input)

    async def handle_signal(self, input: temporalio.worker.HandleSignalInput) -> None:
        with log_fields(request_id=_request_id_of(input.headers)):
            await super().handle_signal(input)

    async def handle_update_handler(self, input: temporalio.worker.HandleUpdateInput) -> Any:
        with log_fields(request_id=_request_id_of(input.headers)):
            return await super().handle_update_handler(input)


class RequestIdInterceptor(temporalio.client.Interceptor, temporalio.worker.Interceptor):
    """Carries the request id from the API through workflow commands into activities (and back out to clients)."""

    def intercept_client(self, next: temporalio.client.OutboundInterceptor) -> temporalio.client.OutboundInterceptor:
        """Adds the header to starts, updates and signals."""
        return _ClientOutbound(next)

    def intercept_activity(
        self, next: temporalio.worker.ActivityInboundInterceptor
    ) -> temporalio.worker.ActivityInboundInterceptor:
        """Puts the header's request id (and the workflow and activity) on the activity's log lines."""
        return _ActivityInbound(next)

    def workflow_interceptor_class(
        self, input: temporalio.worker.WorkflowInterceptorClassInput
    ) -> type[temporalio.worker.WorkflowInboundInterceptor]:
        """Reads the header on commands, passes it to the activities they schedule."""
        return _WorkflowInbound


def temporal_interceptors(tracer_provider: TracerProvider | None) -> list[temporalio.client.Interceptor]:
    """A client's interceptors (a worker built on the client gets them too): request id, then tracing if on."""
    interceptors: list[temporalio.client.Interceptor] = [RequestIdInterceptor()]
    if tracer_provider is not None:
        from temporalio.contrib.opentelemetry import TracingInterceptor

        interceptors.append(TracingInterceptor(tracer_provider.get_tracer("temporalio")))
    return interceptors


def tracer_provider(settings: Settings, service: str) -> TracerProvider | None:
    """Spans exported over OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT, or None (no tracing) when it is unset."""
    if not settings.otel_exporter_otlp_endpoint:
        return None
    # Imported only when tracing is on: nothing of OpenTelemetry's SDK loads otherwise.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": settings.otel_service_name or service}))
    endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def worker_runtime(settings: Settings) -> Runtime | None:
    """The worker's Temporal runtime: the SDK's Prometheus /metrics on WORKER_METRICS_ADDRESS, its own log lines
    forwarded into ours (so LOG_FORMAT applies to them); None when WORKER_METRICS_ADDRESS is empty."""
    address = settings.worker_metrics_address.strip()
    if not address:
        return None
    logs = LoggingConfig(filter="WARN", forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")))
    try:
        # Seconds, as Prometheus expects (the SDK's default is integer milliseconds).
        metrics = PrometheusConfig(bind_address=address, durations_as_seconds=True)
        return Runtime(telemetry=TelemetryConfig(logging=logs, metrics=metrics))
    except ValueError as exc:  # a taken port, an address that does not parse
        raise ConfigError(f"WORKER_METRICS_ADDRESS ({address}): {exc}; set another host:port, or empty to turn "
                          "the worker's metrics off") from None

