"""One rule for every persistence activity: values Postgres refuses fail one change, not the workflow."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.exc import DBAPIError
from temporalio.exceptions import ApplicationError

from workflows.contracts.common import REJECT_RULE


@asynccontextmanager
async def refused_values_rejected() -> AsyncIterator[None]:
    """Turn SQLSTATE class 22/23 errors into a non-retryable rejection; let connection trouble retry."""
    try:
        yield
    except DBAPIError as exc:
        if not _refused_values(exc):
            raise  # connection trouble and the like: Temporal retries
        # Retrying cannot help, and retrying forever would wedge the workflow: fail this one change.
        raise ApplicationError(
            f"The change could not be stored: {exc.orig}", type=REJECT_RULE, non_retryable=True
        ) from exc


def _refused_values(exc: DBAPIError) -> bool:
    """True for SQLSTATE classes 22 (data exception) and 23 (integrity violation)."""
    cause: BaseException | None = exc
    while cause is not None:
        sqlstate = getattr(cause, "sqlstate", None)
        if isinstance(sqlstate, str):
            return sqlstate[:2] in {"22", "23"}
        cause = cause.__cause__
    return False
