"""The one place domain errors become HTTP responses."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException

from api.schemas.common import ErrorOut
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


DESCRIPTIONS: dict[int, str] = {
    400: "A rule was broken, or the body is not valid JSON",
    401: "Missing, invalid or expired bearer token",
    402: "The account has no active subscription",
    403: "Your role may not do this",
    404: "Not found in your account",
    409: "The current state does not allow this",
    502: "A third party (PSA, AI) failed; try again",
    503: "The database or workflow engine is unreachable; try again shortly",
}


def error_responses(*codes: int, described: Mapping[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries documenting these error statuses (and `described`'s, with its wording)."""
    wording = {**DESCRIPTIONS, **(described or {})}
    return {code: {"model": ErrorOut, "description": wording[code]} for code in sorted({*codes, *(described or {})})}


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


PARSE_ERROR = "There was an error parsing the body"  # FastAPI's own wording, replaced below


async def _http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    # FastAPI answers a body it cannot decode (not UTF-8, a number too long to convert, too deep) with a bare
    # "There was an error parsing the body"; name the cause so the client knows what to fix.
    if exc.status_code == 400 and exc.detail == PARSE_ERROR:
        if isinstance(exc.__cause__, RecursionError):
            return JSONResponse({"detail": "The request body is nested too deeply to parse"}, status_code=400)
        if isinstance(exc.__cause__, ValueError):
            detail = f"The request body is not valid UTF-8 JSON: {exc.__cause__}"
            return JSONResponse({"detail": detail}, status_code=400)
    return await http_exception_handler(request, exc)


def _echo_safe(error: Any) -> Any:
    # A 422 echoes the offending input; NaN/Infinity (which json.loads accepts) cannot be sent back as JSON,
    # and failing to render them turned the client's mistake into a 500: echo no input then.
    if not isinstance(error, dict) or "input" not in error:
        return error
    try:
        json.dumps(jsonable_encoder(error["input"]), allow_nan=False)
    except (ValueError, RecursionError):
        return {key: value for key, value in error.items() if key != "input"}
    return error


async def _validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [_echo_safe(error) for error in exc.errors()]
    return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    """Register the domain-error handler and the ones that keep FastAPI's own 400/422s clear and renderable."""
    app.add_exception_handler(errors.DomainError, _domain_error_handler)
    app.add_exception_handler(HTTPException, _http_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(ConnectionError, _database_down_handler)
    app.add_exception_handler(OperationalError, _database_down_handler)
