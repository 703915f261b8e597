"""What the three PSA clients (ConnectWise, Autotask, HaloPSA) share: one httpx client per instance, transport
failures and HTTP answers turned into PsaErrors (Retry-After read, secrets scrubbed, another server's text never
echoed), id checks for URL paths, and a cached list of ticket statuses. Each provider's own quirks stay in its module.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from typing import Any, Generic, Protocol, Self, TypeVar

import httpx

from integrations.psa.base import (
    PsaAuthFailed,
    PsaError,
    PsaNotFound,
    PsaRateLimited,
    PsaRejected,
    PsaSiteRefused,
    PsaStatus,
    PsaUnavailable,
)
from integrations.psa.egress import EgressRefused

# PSA record ids are positive 32-bit integers; up to 10 digits keeps int() cheap before the range check.
ID_PATTERN = re.compile(r"[0-9]{1,10}")
MAX_ID = 2**31 - 1
# A provider's own error text is shown to the engineer: cut short, and without control characters.
MAX_DETAIL = 300
_UNPRINTABLE = re.compile(r"[^\x20-\x7e\u00a0-\uffff]+")
# What an HTTP header value may hold; credentials are checked against it so httpx never raises with one in its text.
HEADER_SAFE = re.compile(r"[\x21-\x7e]+")
# Failures before the request was sent: nothing can have reached the PSA, so sending again is safe.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Shorter secrets are not scrubbed: replacing every "ab" in a message would garble it and hide next to nothing.
MIN_SCRUBBED = 4


def normalize_root(url: str) -> str:
    """A site or API root as a URL without a trailing slash (a bare host means https)."""
    root = url.strip().rstrip("/")
    return root if "://" in root else f"https://{root}"


def is_int(value: Any) -> bool:
    """An int that is not a bool (JSON's true would otherwise pass as 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time from a provider's JSON, None when it is missing or not one."""
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def id_problem(provider: str, kind: str, value: str) -> str | None:
    """Why `value` cannot be a `provider` `kind` id (e.g. "ticket"), None when it can: ids go into URL paths."""
    if ID_PATTERN.fullmatch(value) is None or not 0 < int(value) <= MAX_ID:
        return f"{provider} {kind} ids are whole numbers from 1 to {MAX_ID}; {value!r} is not one"
    return None


def checked_id(provider: str, kind: str, value: Any) -> int:
    """`value` as an id, or PsaRejected naming the problem."""
    text = str(value).strip()
    if problem := id_problem(provider, kind, text):
        raise PsaRejected(problem)
    return int(text)


def shown(value: Any) -> str:
    """A provider's words as they may be shown: printable, at most MAX_DETAIL characters."""
    text = _UNPRINTABLE.sub(" ", str(value)).strip()
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def status_line(response: httpx.Response) -> str:
    """`HTTP 404 Not Found`: the standard reason phrase, never the server's own."""
    try:
        reason = HTTPStatus(response.status_code).phrase
    except ValueError:
        reason = ""
    return f"HTTP {response.status_code} {reason}".strip()


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header; None when absent or not a plain non-negative number."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def scrub(message: str, secrets: Iterable[str]) -> str:
    """`message` with every secret (of MIN_SCRUBBED characters or more) replaced by `***`."""
    for secret in secrets:
        if len(secret) >= MIN_SCRUBBED:
            message = message.replace(secret, "***")
    return message


@dataclass(frozen=True)
class Wording:
    """How one provider's failures read: its name, how its error bodies are quoted, and what to check."""

    name: str  # "ConnectWise"
    detail: Callable[[httpx.Response], str]  # the provider's own words from an error answer, else status_line
    auth_hint: str  # what a 401 asks the engineer to check
    permission_hint: str  # what a 403 says was refused
    url_hint: str  # how to fix a site URL httpx cannot call


class _HasTimeout(Protocol):
    @property
    def timeout_s(self) -> float: ...


ConfigT = TypeVar("ConfigT", bound=_HasTimeout)


class PsaHttpClient(Generic[ConfigT]):
    """The HTTP half of a PsaProvider: the httpx client (closed if created here), one request with its transport
    failures mapped, and a non-2xx answer mapped to a PsaError; `wording` and `_secrets` make it a provider's."""

    wording: Wording

    def __init__(self, config: ConfigT, http: httpx.AsyncClient | None) -> None:
        self._config = config
        self._owns_http = http is None
        self._http = http if http is not None else httpx.AsyncClient(timeout=config.timeout_s)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._config!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this instance created it."""
        if self._owns_http:
            await self._http.aclose()

    def _secrets(self) -> Iterable[str]:
        """What must never reach a message, in case a server or proxy echoes it back."""
        return ()

    def _scrub(self, message: str) -> str:
        return scrub(message, self._secrets())

    async def _send(self, method: str, url: str, where: str, *, may_have_landed: bool,
                    **kwargs: Any) -> httpx.Response:
        """One HTTP request to `where` (e.g. "site https://…"); `may_have_landed` says whether a request cut
        short after it was sent may still have been applied."""
        name, timeout_s = self.wording.name, self._config.timeout_s
        try:
            return await self._http.request(method, url, timeout=timeout_s, **kwargs)
        except EgressRefused as exc:
            raise PsaSiteRefused(f"{name} {where} may not be called: {exc.message}") from exc
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, OverflowError) as exc:
            # A URL stored before URLs were checked the way httpx parses them.
            raise PsaSiteRefused(f"{name} {where} is not a URL this server can call; {self.wording.url_hint}") from exc
        except NOT_SENT as exc:
            raise PsaUnavailable(f"{name} {where} could not be reached ({type(exc).__name__})") from exc
        except httpx.TimeoutException as exc:
            raise PsaUnavailable(f"{name} {where} did not answer within {timeout_s:g}s",
                                 may_have_landed=may_have_landed) from exc
        except httpx.TransportError as exc:
            raise PsaUnavailable(f"{name} {where} dropped the connection before answering ({type(exc).__name__})",
                                 may_have_landed=may_have_landed) from exc

    def _error(self, response: httpx.Response, *, may_have_landed: bool) -> PsaError:
        """The PsaError for a non-2xx answer; `may_have_landed` is for a 5xx (the request may have been applied)."""
        words, status = self.wording, response.status_code
        detail = self._scrub(words.detail(response))
        if status == 401:
            return PsaAuthFailed(f"{words.name} authentication failed: {words.auth_hint} ({detail})",
                                 status_code=status)
        if status == 403:
            return PsaAuthFailed(f"{words.name} refused permission: {words.permission_hint} ({detail})",
                                 status_code=status)
        if status == 404:
            return PsaNotFound(f"{words.name}: {detail}", status_code=status)
        if status == 429:
            return PsaRateLimited(f"{words.name} rate limit reached ({detail})",
                                  retry_after=parse_retry_after(response.headers.get("Retry-After")),
                                  status_code=status)
        if 400 <= status < 500:
            return PsaRejected(f"{words.name}: {detail}", status_code=status)
        return PsaUnavailable(f"{words.name}: {detail}", status_code=status, may_have_landed=may_have_landed)

    def _body(self, response: httpx.Response, *, may_have_landed: bool) -> Any:
        """The answer's JSON; a body that is not JSON is a PsaUnavailable."""
        try:
            return response.json()
        except ValueError:
            raise PsaUnavailable(
                f"{self.wording.name} answered {response.request.method} {response.request.url.path} "
                f"with HTTP {response.status_code} but a body that is not JSON",
                status_code=response.status_code, may_have_landed=may_have_landed,
            ) from None


class StatusCache:
    """A provider's one list of ticket statuses: read again after `ttl_s`, and sooner (at most every `recheck_s`)
    when a ticket carries a status id the list lacks; a provider lives long (cached per connection)."""

    def __init__(self, read: Callable[[], Awaitable[list[PsaStatus]]], *, ttl_s: float, recheck_s: float) -> None:
        self._read = read
        self._ttl_s, self._recheck_s = ttl_s, recheck_s
        self._statuses: list[PsaStatus] | None = None
        self._read_at = 0.0

    async def statuses(self, *, refresh: bool = False) -> list[PsaStatus]:
        """The list, read from the provider when asked to, never read yet, or older than `ttl_s`."""
        fresh = time.monotonic() - self._read_at < self._ttl_s
        if self._statuses is not None and fresh and not refresh:
            return self._statuses
        statuses = await self._read()
        self._statuses, self._read_at = statuses, time.monotonic()
        return statuses

    async def name(self, status_id: int) -> str | None:
        """The name of a status, reading the list again for an id added since it was read."""
        statuses = await self.statuses()
        if all(s.id != status_id for s in statuses) and time.monotonic() - self._read_at > self._recheck_s:
            statuses = await self.statuses(refresh=True)
        return next((s.name for s in statuses if s.id == status_id), None)
