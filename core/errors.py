"""Domain errors. The API maps each class to one HTTP status in `api/errors.py`."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base class: `detail` is what the client is told (a string or a structured object)."""

    def __init__(self, detail: str | dict[str, Any]) -> None:
        super().__init__(detail if isinstance(detail, str) else detail.get("message", str(detail)))
        self.detail = detail


class RuleViolation(DomainError):
    """A domain rule was broken by the request (400)."""


class NotAuthenticated(DomainError):
    """Missing, invalid or expired credentials (401)."""


class SubscriptionRequired(DomainError):
    """The account has no active subscription (402)."""


class Forbidden(DomainError):
    """The caller's role may not do this (403)."""


class NotFound(DomainError):
    """Not found, or belongs to another account (404)."""


class Conflict(DomainError):
    """The entity's state does not allow this (409)."""


class UnprocessableRequest(DomainError):
    """The request is well-formed but cannot be processed as sent, e.g. a reused Idempotency-Key (422)."""


class Overloaded(DomainError):
    """The server is too busy to take this now; nothing was done, retry after `retry_after_s` (429)."""

    def __init__(self, detail: str | dict[str, Any], *, retry_after_s: int = 1) -> None:
        super().__init__(detail)
        self.retry_after_s = retry_after_s


class UpstreamFailed(DomainError):
    """A third-party call (PSA, LLM) failed or did not verify (502)."""


class EngineUnavailable(DomainError):
    """The workflow engine or database is unreachable (503)."""
