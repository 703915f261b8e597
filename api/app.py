"""The FastAPI application factory and its lifespan (one engine and one Temporal client per process)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from api.errors import install_error_handlers
from api.idempotency import document_idempotency
from api.observability import fastapi_telemetry, install_observability
from api.routes import (
    account,
    ai_sessions,
    ai_usage,
    auth,
    bench,
    flow_proposals,
    handoffs,
    health,
    l1,
    notifications,
    psa,
    suggested_fixes,
)
from api.temporal import TemporalGateway
from core.config import Settings, get_settings
from core.logging import configure_logging
from core.telemetry import tracer_provider
from db.session import engine_for, make_read_session_factory, make_session_factory
from services.admission import Admission
from services.escalation_stream import EscalationBus, EscalationListener

log = logging.getLogger(__name__)
API_PREFIX = "/api/v1"

DESCRIPTION = """
Backend for MSP help desks: L1 decision-tree walks, AI-assisted troubleshooting sessions,
fix verification, escalation handoffs and PSA write-back (ConnectWise, Autotask, HaloPSA). Every long-lived
process is a durable Temporal workflow; this API validates, authorizes and forwards.

Authenticate with `POST /api/v1/auth/login/json` (or the **Authorize** button) and send
`Authorization: Bearer <token>`. Errors are `{"detail": ...}`; lists take `limit`/`offset`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; `settings` defaults to the environment's."""
    configure_logging()  # under `uvicorn --factory` nothing else has; a no-op after `rflow api` did
    settings = settings or get_settings()
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set (use `rflow dev` for the embedded database)")
    tracing = tracer_provider(settings, "resolutionflow-api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = engine_for(settings)  # with the configured connect/statement/pool bounds
        app.state.settings = settings
        app.state.engine = engine
        app.state.session_factory = make_session_factory(engine)
        app.state.read_session_factory = make_read_session_factory(engine)
        app.state.temporal = TemporalGateway(settings, tracer_provider=tracing)
        app.state.admission = Admission(settings.admission_max_in_flight,
                                        max_queued_per_account=settings.admission_max_queued_per_account,
                                        max_wait_s=settings.admission_max_wait_s,
                                        retry_after_s=settings.admission_retry_after_s,
                                        reserve=settings.admission_reserve,
                                        account_share=settings.admission_account_share)
        # One LISTEN connection per process feeds every escalation stream this process serves.
        bus = app.state.escalation_bus = EscalationBus(settings.escalation_subscriber_queue)
        listener = app.state.escalation_listener = EscalationListener(
            settings.database_url or "", bus, app.state.session_factory,
            liveness_s=settings.escalation_listener_liveness_s)
        await listener.start()
        log.info("API ready (temporal %s, namespace %s)", settings.temporal_address, settings.temporal_namespace)
        try:
            yield
        finally:
            await listener.stop()
            await engine.dispose()
            if tracing is not None:
                tracing.shutdown()  # exports the spans still buffered

    # Swagger UI and ReDoc from files the app serves itself (fastapi-offline), not a CDN: /docs works offline.
    app = FastAPIOffline(
        title="ResolutionFlow API",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from swagger.io
        telemetry=fastapi_telemetry(tracing),
    )
    install_observability(app)
    install_error_handlers(app)
    document_idempotency(app)
    app.include_router(health.router)
    # handoffs before ai_sessions: its /ai-sessions/queue and /escalations/stream must match before /{session_id}.
    for module in (auth, account, ai_usage, l1, flow_proposals, notifications, psa, handoffs, ai_sessions,
                   suggested_fixes):
        app.include_router(module.router, prefix=API_PREFIX)
    if settings.dev_mode or settings.bench_routes:
        app.include_router(bench.router, prefix=API_PREFIX)
    return app
