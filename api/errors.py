"""The one place domain errors become HTTP responses."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from starlette.exceptions import HTTPException

from api.schemas.common import ErrorOut, ValidationErrorOut, printable
from core import errors

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[errors.DomainError], int] = {
    errors.RuleViolation: 400,
    errors.NotAuthenticated: 401,
    errors.SubscriptionRequired: 402,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.UnprocessableRequest: 422,
    errors.Overloaded: 429,
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
    422: "The request body is invalid, or its Idempotency-Key was used with another body",
    429: "Too many requests of this kind; `Retry-After` says when to try again",
    502: "A third party (PSA, AI) failed; try again",
    503: "The database or workflow engine is unreachable; try again shortly",
}


# What each status's body looks like in /docs: a real `detail` this API gives with that status. A route whose
# error reads differently (or is structured, like the claim's 409) passes its own in `examples=`.
EXAMPLES: dict[int, str | dict[str, Any]] = {
    400: "target_user_id names you; escalate to someone else or leave it out",
    401: "Not authenticated: send 'Authorization: Bearer <token>'",
    402: "This account's subscription is 'past_due'; an active or trialing subscription is required",
    403: "This action requires the admin role or higher (you are engineer)",
    404: "AI session not found",
    409: "A request with this Idempotency-Key is still being processed; retry in a moment",
    429: "Too many failed logins for this email; try again in 840 s (at 14:32:05 UTC)",
    502: "ConnectWise could not list the statuses: 503 Service Unavailable",
    503: "No workflow worker accepted the command within 15s; retry later (with the same Idempotency-Key)",
}


def error_responses(*codes: int, described: Mapping[int, str] | None = None,
                    examples: Mapping[int, str | dict[str, Any]] | None = None) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries documenting these error statuses (and `described`'s, with its wording), each with an
    example body of its own (`examples` overrides the generic one of a status)."""
    wording = {**DESCRIPTIONS, **(described or {})}
    sample = {**EXAMPLES, **(examples or {})}
    # A 422 is either the validation list or a domain 422 (an Idempotency-Key reused); naming it replaces
    # FastAPI's own 422 entry, which documents only the list (its examples are on ValidationErrorOut).
    return {code: {"model": ValidationErrorOut if code == 422 else ErrorOut, "description": wording[code],
                   **({} if code == 422 else {"content": {"application/json": {"example": {"detail": sample[code]}}}})}
            for code in sorted({*codes, *(described or {})})}


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
    if isinstance(exc, errors.Overloaded):
        headers = {"Retry-After": str(exc.retry_after_s)}
    if code >= 500:
        log.warning("%s %s -> %s: %s", request.method, request.url.path, code, exc.detail)
    return JSONResponse({"detail": exc.detail}, status_code=code, headers=headers)


# SQLSTATEs that mean "the database cannot serve this now", not "this request is wrong": query_canceled (our
# statement_timeout), admin/crash shutdown, cannot_connect_now (starting up), too_many_connections; class 08
# (connection exceptions) is matched by prefix.
UNAVAILABLE_SQLSTATES = frozenset({"57014", "57P01", "57P02", "57P03", "53300"})
DRIVER_MODULES = ("sqlalchemy.", "asyncpg.")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return seen


def _raised_in_driver(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if str(tb.tb_frame.f_globals.get("__name__", "")).startswith(DRIVER_MODULES):
            return True
        tb = tb.tb_next
    return False


def is_database_unavailable(exc: BaseException) -> bool:
    """True when `exc` says the database is unreachable, overloaded or too slow (a 503), not that a query is wrong."""
    if isinstance(exc, SATimeoutError | OperationalError):  # pool checkout timed out; connection-level failure
        return True
    for link in _chain(exc):
        sqlstate = str(getattr(link, "sqlstate", None) or "")
        if sqlstate in UNAVAILABLE_SQLSTATES or sqlstate.startswith("08"):
            return True
        if isinstance(link, ConnectionError):
            return True
        # asyncpg's connect timeout and command_timeout surface as a bare TimeoutError: only one raised inside
        # the driver is the database's (a workflow wait has its own handling).
        if isinstance(link, TimeoutError) and _raised_in_driver(link):
            return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


async def _database_down_handler(request: Request, exc: Exception) -> JSONResponse:
    # Integrity errors, bad SQL and the like are bugs: re-raised, they stay loud 500s with a traceback.
    if not is_database_unavailable(exc):
        raise exc
    log.error("database unavailable on %s %s: %r", request.method, request.url.path, exc)
    timed_out = any(isinstance(link, TimeoutError | SATimeoutError) or getattr(link, "sqlstate", None) == "57014"
                    for link in _chain(exc))
    detail = ("The database did not answer in time; try again shortly" if timed_out
              else "The database is unreachable; try again shortly")
    return JSONResponse({"detail": detail}, status_code=503)


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


# Field names that suggest a secret: their constraint details (ctx) are dropped from a 422 as well.
SECRET_NAME = re.compile(r"pass|secret|token|key|credential|auth|private|otp", re.IGNORECASE)


def _printable_tree(value: Any) -> Any:
    # Keys and messages can carry a lone surrogate (a free-form key, a dict-typed field's location); written as
    # its escape, the reply can always be encoded.
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable(str(k)): _printable_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_printable_tree(v) for v in value]
    return value


def client_error(error: dict[str, Any]) -> dict[str, Any]:
    """One validation error as the client sees it: where and why, never the offending input.

    The input is never echoed: the client has it already, and echoing put passwords (and, for a missing field,
    the whole body around it) into replies and the logs of everything in between; it was also what failed to
    encode (NaN, lone surrogates) and turned a 422 into a 500. Constraint details (`ctx`) stay, except for
    secret-looking fields and values that repeat the input.
    """
    given = error.get("input")
    kept = {key: value for key, value in error.items() if key != "input"}
    ctx = kept.pop("ctx", None)
    secret = any(isinstance(part, str) and SECRET_NAME.search(part) for part in error.get("loc", ()))
    echoed = given if isinstance(given, str) and len(given) >= 3 else None  # short values repeat by chance
    if isinstance(ctx, dict) and not secret:
        kept_ctx = {k: v for k, v in ctx.items() if not (echoed and isinstance(v, str) and echoed in v)}
        if kept_ctx:
            kept["ctx"] = kept_ctx
    if secret and echoed and echoed in str(kept.get("msg", "")):
        kept["msg"] = "Invalid value"
    encoded: dict[str, Any] = _printable_tree(jsonable_encoder(kept))
    try:
        json.dumps(encoded, allow_nan=False)
    except ValueError:  # a non-finite bound in ctx (cannot happen with our models, but never a 500)
        encoded.pop("ctx", None)
    return encoded


async def _validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": [client_error(error) for error in exc.errors()]}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    """Register the domain-error handler and the ones that keep FastAPI's own 400/422s clear and renderable."""
    app.add_exception_handler(errors.DomainError, _domain_error_handler)
    app.add_exception_handler(HTTPException, _http_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    # Starlette picks the handler of the nearest class in the exception's MRO: these cover connection failures,
    # asyncpg timeouts (TimeoutError), statement_timeout cancels (DBAPIError) and pool timeouts.
    for exc_class in (ConnectionError, TimeoutError, DBAPIError, SATimeoutError):
        app.add_exception_handler(exc_class, _database_down_handler)
