"""One log format for every process: text for people, or (LOG_FORMAT=json) one JSON object per line for collectors.

Lines carry the context they were logged in: the request id of the HTTP request (or of the workflow command and
activity it led to, carried in Temporal headers by core/telemetry.py), and the workflow and activity.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

# What every line logged in this context carries (request_id, workflow_id, activity_type...). One immutable
# mapping per context: asyncio tasks copy it when they start, so a request's fields never reach another's.
LOG_FIELDS: ContextVar[Mapping[str, str]] = ContextVar("rflow_log_fields", default={})  # noqa: B039
# The per-workflow and per-activity details the Temporal SDK's own loggers attach to their records.
TEMPORAL_EXTRAS = ("temporal_workflow", "temporal_activity")
TEMPORAL_KEYS = ("workflow_id", "run_id", "workflow_type", "activity_id", "activity_type", "attempt")
# Uvicorn configures its own handlers before our app exists; in JSON mode its lines must go through ours.
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def current_request_id() -> str | None:
    """The request id of what this code runs for, if any."""
    return LOG_FIELDS.get().get("request_id")


@contextmanager
def log_fields(**fields: str | None) -> Iterator[None]:
    """Add `fields` (None values skipped) to every line logged inside the block, in this task and those it starts."""
    token = LOG_FIELDS.set({**LOG_FIELDS.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        # An evicted workflow's coroutine is closed later, from another context: there is nothing to restore.
        with suppress(ValueError):
            LOG_FIELDS.reset(token)


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON: time, level, logger, message, the context's fields, and any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        """The JSON line (never multi-line: a traceback is a string field)."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for extra in TEMPORAL_EXTRAS:
            details = getattr(record, extra, None)
            if isinstance(details, Mapping):
                line.update({key: details[key] for key in TEMPORAL_KEYS if details.get(key) is not None})
        line.update(LOG_FIELDS.get())
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def log_format() -> str:
    """"json" or "text", from the environment's LOG_FORMAT, read before the settings (so that their own errors are
    formatted too) and matched exactly as the settings' field is, so the two never disagree."""
    return "json" if os.environ.get("LOG_FORMAT") == "json" else "text"


def configure_logging(level: str | None = None) -> None:
    """Log lines on stderr, text or JSON per LOG_FORMAT; LOG_LEVEL overrides the default INFO. Safe to call twice."""
    root = logging.getLogger()
    if not root.handlers:  # a second call (the API's factory after the CLI) keeps the first's handler
        handler = logging.StreamHandler()
        if log_format() == "json":
            handler.setFormatter(JsonFormatter())
        else:
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel((level or os.environ.get("LOG_LEVEL", "INFO")).upper())
    if log_format() == "json":
        for name in UVICORN_LOGGERS:
            uvicorn_logger = logging.getLogger(name)
            uvicorn_logger.handlers.clear()
            uvicorn_logger.propagate = True
        # The SDK's loggers append the workflow's or activity's details to the message text; JSON has them as
        # fields (JsonFormatter reads the record's extras).
        from temporalio import activity, workflow

        workflow.logger.workflow_info_on_message = False
        activity.logger.activity_info_on_message = False
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("temporalio.activity").setLevel(logging.WARNING)
