"""The Temporal worker: registers every workflow and activity and runs until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Sequence
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Interceptor, PollerBehaviorAutoscaling, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.registry import ActivityDeps, build_activities
from core.config import ConfigError, Settings, get_settings
from core.logging import configure_logging
from core.telemetry import RequestIdInterceptor, tracer_provider, worker_runtime
from core.temporal import connect_temporal
from db.session import engine_for, make_session_factory
from workflows.registry import ALL_WORKFLOWS

log = logging.getLogger("worker")
# Both runners keep every workflow instance in its own sandbox; they differ in which modules each new instance
# (a run's first task, and every task after an eviction from the cache) imports afresh inside it.
# Shared, what the worker runs: our whole `workflows` package is imported once and shared, as the SDK shares
# temporalio and pydantic. Rebuilding an evicted workflow takes half the CPU (bench/replay_cost.py) and a cached
# one less memory. Safe because those modules keep no mutable state (tests/test_seams.py checks), but the
# sandbox then no longer sees what they call: its guard against the clock, randomness or I/O in workflow code
# only covers modules imported inside it.
SANDBOX = SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows"))
# Strict, what the suite's in-process workers run (`WORKFLOW_SANDBOX=strict`): each workflow module imported
# inside each instance's sandbox, so a workflow that reads the clock or the network fails its tests at once.
# Only the contracts (pydantic models and constants) and the skeleton (only temporalio calls) are shared.
STRICT_SANDBOX = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("workflows.contracts", "workflows.skeleton"))
RUNNERS = {"shared": SANDBOX, "strict": STRICT_SANDBOX}


def build_worker(client: Client, deps: ActivityDeps, *, task_queue: str | None = None,
                 interceptors: Sequence[Interceptor] = ()) -> Worker:
    """A worker on `task_queue` (default: the configured one) with everything registered."""
    queue = task_queue or deps.settings.temporal_task_queue
    # A client from connect_temporal carries the request-id interceptor (and the worker inherits it); any other
    # client (the tests' environment's) gets it here, so request ids reach the log lines either way.
    inherited = any(isinstance(i, RequestIdInterceptor) for i in client.config()["interceptors"])
    return Worker(
        client,
        task_queue=queue,
        workflows=ALL_WORKFLOWS,
        workflow_runner=RUNNERS[deps.settings.workflow_sandbox],
        activities=build_activities(deps, client, task_queue=queue),
        graceful_shutdown_timeout=timedelta(seconds=10),
        max_cached_workflows=deps.settings.worker_max_cached_workflows,
        max_concurrent_workflow_tasks=deps.settings.worker_max_concurrent_workflow_tasks,
        # The default (5 pollers, one of them on the shared queue) starves the first task of new
        # workflows when many walks start at once: measured 5-16 s waits and 503s on intake with 50
        # concurrent walks. Autoscaling adds pollers while tasks are waiting.
        workflow_task_poller_behavior=PollerBehaviorAutoscaling(),
        interceptors=[*([] if inherited else [RequestIdInterceptor()]), *interceptors],
    )


async def run_worker(settings: Settings) -> None:
    """Connect, serve until a stop signal, then drain in-flight tasks and exit."""
    if not settings.database_url:
        raise SystemExit("DATABASE_URL is not set (use `rflow dev` for the embedded database)")
    # The strict sandbox imports each workflow module afresh for every new workflow instance. Without bytecode
    # files (PYTHONDONTWRITEBYTECODE) each of those imports compiles the module's source again: ~5 % of the
    # worker's CPU when parked work wakes up. The first sandboxed import writes them; later ones read them.
    sys.dont_write_bytecode = False
    runtime = worker_runtime(settings)  # the SDK's Prometheus /metrics; before connecting, as the client runs on it
    tracing = tracer_provider(settings, "resolutionflow-worker")
    engine = engine_for(settings)
    client = await connect_temporal(settings, runtime=runtime, tracer_provider=tracing)
    deps = ActivityDeps(settings=settings, session_factory=make_session_factory(engine))
    worker = build_worker(client, deps)
    # Everything imported so far lives as long as the process: move it out of the collector's generations, so
    # full collections stay cheap and run often enough to free evicted workflows' sandboxes (cyclic garbage)
    # before it piles up (docs/performance.md).
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    metrics = f"; metrics on http://{settings.worker_metrics_address}/metrics" if runtime else ""
    log.info("worker polling task queue %r on %s%s", settings.temporal_task_queue, settings.temporal_address, metrics)
    async with worker:
        await stop.wait()
        log.info("stop signal received; finishing in-flight tasks")
    await engine.dispose()
    if tracing is not None:
        tracing.shutdown()  # exports the spans still buffered
    log.info("worker stopped")


def main() -> None:
    """Entry point for `python worker.py` and `rflow worker`."""
    configure_logging()
    try:
        settings = get_settings()
    except ValueError as exc:  # names each variable to fix; a traceback would bury it
        raise SystemExit(f"worker: {exc}") from None
    try:
        asyncio.run(run_worker(settings))
    except ConfigError as exc:
        raise SystemExit(f"worker: {exc}") from None
    # The SDK's Rust threads can still call into Python while the interpreter finalizes, which aborts the process
    # (SIGABRT, "PyGILState_Release ... finalizing"; temporalio/sdk-python#300): measured on 1 exit in 20 after a
    # clean stop, default runtime or ours. Everything is drained and closed by now: skip the finalization.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
