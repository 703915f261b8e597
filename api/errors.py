"""The one place domain errors become HTTP responses."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError

from core import errors

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[errors.DomainError], int] = {
    errors.RuleViolation: 400,
    errors.NotAuthenticated: 401,
    errors.SubscriptionRequired: 402,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.UpstreamFailed: 502,
    errors.EngineUnavailable: 503,
}


def status_for(exc: errors.DomainError) -> int:
    """The HTTP status of a domain error (the closest registered base class wins)."""
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 400


async def _domain_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.DomainError)
    code = status_for(exc)
    headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
    if code >= 500:
        log.warning("%s %s -> %s: %s", request.method, request.url.path, code, exc.detail)
    return JSONResponse({"detail": exc.detail}, status_code=code, headers=headers)


async def _database_down_handler(request: Request, exc: Exception) -> JSONResponse:
    # Only connection-level failures land here; integrity errors are bugs and stay loud 500s.
    log.error("database unavailable on %s %s: %s", request.method, request.url.path, exc)
    return JSONResponse({"detail": "The database is unreachable; try again shortly"}, status_code=503)


def install_error_handlers(app: FastAPI) -> None:
    """Register the domain-error handler (and the database-down handler) on the app."""
    app.add_exception_handler(errors.DomainError, _domain_error_handler)
    app.add_exception_handler(ConnectionError, _database_down_handler)
    app.add_exception_handler(OperationalError, _database_down_handler)
