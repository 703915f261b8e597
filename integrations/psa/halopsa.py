"""HaloPSA over its REST API, authenticated as an API application (OAuth2 client credentials).

A bearer token comes from `POST {auth_url}/token` (`?tenant=` for a hosted tenant) and is cached until shortly
before it expires, shared by every client of the same application; a 401 from the API drops it and the call is
made once more with a new one. Notes, time and status changes are all Actions: one `POST /Actions` whose body
is a JSON array (Halo updates an action by posting its id).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx

from integrations.psa import client_common
from integrations.psa.base import (
    NoteType,
    PsaAuthFailed,
    PsaNote,
    PsaPost,
    PsaRejected,
    PsaStatus,
    PsaTicket,
    PsaUnavailable,
)
from integrations.psa.client_common import (
    HEADER_SAFE,
    PsaHttpClient,
    StatusCache,
    Wording,
    parse_time,
    shown,
    status_line,
)
from integrations.psa.client_common import MAX_ID as MAX_ID
from integrations.psa.client_common import is_int as _is_int
from integrations.psa.client_common import normalize_root as normalize_root

OUTCOME = "ResolutionFlow"
STATUS_OUTCOME = "Status change"
STATUS_NOTE = "Status set by ResolutionFlow"
CLOSED_STATUS_ID = 9  # Halo's built-in "Closed"
CLOSED_NAMES = ("closed", "resolved")
MAX_WORK_MINUTES = 1440  # API.md: time_minutes is 1 to 1440 (one day)
DEFAULT_PAGE_SIZE = 100
MAX_PAGES = 200  # a server that always has "more" must not keep the search going forever
# A token is renewed this long before it expires (a tenth of a short lifetime), so no call carries a dying one.
TOKEN_RENEW_MARGIN_S = 60.0
DEFAULT_TOKEN_LIFETIME_S = 300.0  # when the token answer does not say
STATUS_LIST_TTL_S = 600.0
STATUS_RECHECK_S = 30.0  # an unknown status id reads the list again, at most this often


@dataclass
class _Token:
    value: str
    renew_at: float  # time.monotonic()

    def fresh(self) -> bool:
        return time.monotonic() < self.renew_at


# Tokens per (auth URL, tenant, client id, keyed digest of the secret): the digest keeps a client holding a wrong
# secret from borrowing the token another client's right secret earned; the per-process key keeps it unguessable.
_TOKENS: dict[tuple[str, str, str, str], _Token] = {}
_DIGEST_KEY = secrets.token_bytes(32)


def clear_token_cache() -> None:
    """Forget every shared token (tests; an operator who rotated an application's secret)."""
    _TOKENS.clear()


@dataclass(frozen=True)
class HaloConfig:
    """Where a HaloPSA instance is and the API application (client credentials) used to call it."""

    api_url: str
    client_id: str
    client_secret: str
    auth_url: str | None = None
    tenant: str | None = None
    timeout_s: float = 15.0

    def __repr__(self) -> str:
        # Configs end up in logs and tracebacks; the client secret must never be in them.
        return (f"HaloConfig(api_url={self.api_url!r}, client_id={self.client_id!r}, client_secret='***', "
                f"auth_url={self.auth_url!r}, tenant={self.tenant!r}, timeout_s={self.timeout_s!r})")


def default_auth_url(api_url: str) -> str:
    """The authorisation server of an API root: the same host's `/auth`."""
    scheme, _, rest = normalize_root(api_url).partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}/auth"


def id_problem(kind: str, value: str) -> str | None:
    """Why `value` cannot be a HaloPSA `kind` id (e.g. "ticket"), None when it can: ids go into URL paths."""
    return client_common.id_problem("HaloPSA", kind, value)


_checked_id = partial(client_common.checked_id, "HaloPSA")  # the id as an int, or PsaRejected naming the problem


def halo_error_detail(response: httpx.Response) -> str:
    """Halo's own words (a JSON string, `{message}`, or OAuth's `{error, error_description}`), cut short; else
    only the HTTP status: a body in no shape Halo uses, and any reason phrase, is never echoed."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, str) and body.strip():
        return shown(body)
    if isinstance(body, dict):
        for key in ("error_description", "message", "Message", "error"):
            if isinstance(body.get(key), str) and body[key].strip():
                return shown(body[key])
    return status_line(response)


def _created_at(value: Any) -> datetime | None:
    moment = parse_time(value)
    # Halo writes its times in UTC without saying so.
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _to_note(action: dict[str, Any]) -> PsaNote:
    """An action as a note: hidden from the user is internal; a visible one is read back as the resolution (Halo
    keeps no other kind); an action with time taken is also the time entry."""
    hours = action.get("timetaken")
    logged = isinstance(hours, int | float) and not isinstance(hours, bool) and hours > 0
    return PsaNote(id=str(action.get("id", "")), text=str(action.get("note") or ""),
                   note_type=NoteType.INTERNAL_ANALYSIS if action.get("hiddenfromuser") else NoteType.RESOLUTION,
                   created_at=_created_at(action.get("datetime")),
                   time_entry_id=str(action["id"]) if logged else None)


_WORDING = Wording(
    name="HaloPSA", detail=halo_error_detail,
    auth_hint="the API refused the application's token even after it was renewed",
    permission_hint="the API application's agent or permissions do not allow this",
    url_hint="connect again with a valid api_url (and auth_url)",
)


class HaloClient(PsaHttpClient[HaloConfig]):
    """A PsaProvider for HaloPSA; one instance per instance + API application."""

    wording = _WORDING

    def __init__(self, config: HaloConfig, http: httpx.AsyncClient | None = None) -> None:
        super().__init__(config, http)
        self._api = normalize_root(config.api_url)
        self._auth = normalize_root(config.auth_url) if config.auth_url else default_auth_url(config.api_url)
        self._tenant = config.tenant.strip() if config.tenant and config.tenant.strip() else None
        digest = hmac.new(_DIGEST_KEY, config.client_secret.encode(), hashlib.sha256).hexdigest()
        self._cache_key = (self._auth, self._tenant or "", config.client_id, digest)
        self._token: _Token | None = None
        self._token_lock = asyncio.Lock()
        self._tokens_used: list[str] = []  # scrubbed from messages, in case a server or proxy echoes them
        self._statuses = StatusCache(self._read_status_list, ttl_s=STATUS_LIST_TTL_S, recheck_s=STATUS_RECHECK_S)

    # -- low level -------------------------------------------------------------------------------

    def _secrets(self) -> Iterable[str]:
        return (self._config.client_secret, *self._tokens_used)

    def _json(self, response: httpx.Response, *, written: bool | None = None) -> Any:
        return self._body(response, may_have_landed=response.request.method != "GET" if written is None else written)

    # -- token -----------------------------------------------------------------------------------

    async def _bearer(self) -> str:
        token = self._token
        if token is None or not token.fresh():
            # One token request per client, even when the first calls run concurrently.
            async with self._token_lock:
                token = self._token
                if token is None or not token.fresh():
                    shared = _TOKENS.get(self._cache_key)
                    token = shared if shared is not None and shared.fresh() else await self._fetch_token()
                    self._token = token
        if token.value not in self._tokens_used:
            self._tokens_used = [*self._tokens_used[-3:], token.value]
        return token.value

    async def _fetch_token(self) -> _Token:
        where = f"authorisation server {self._auth}"
        form = {"grant_type": "client_credentials", "client_id": self._config.client_id,
                "client_secret": self._config.client_secret, "scope": "all"}
        response = await self._send("POST", f"{self._auth}/token", where, may_have_landed=False, data=form,
                                    params={"tenant": self._tenant} if self._tenant else None,
                                    headers={"Accept": "application/json"})
        if response.status_code in (400, 401, 403):
            raise PsaAuthFailed(f"HaloPSA authentication failed: check the client ID, client secret and tenant "
                                f"({self._scrub(halo_error_detail(response))})", status_code=response.status_code)
        if response.status_code == 404:
            raise PsaAuthFailed(f"HaloPSA authentication failed: {where} has no /token endpoint (check auth_url)",
                                status_code=404)
        if not response.is_success:
            raise self._error(response, may_have_landed=False)
        body = self._json(response, written=False)
        value = body.get("access_token") if isinstance(body, dict) else None
        kind = body.get("token_type", "Bearer") if isinstance(body, dict) else None
        if not isinstance(value, str) or HEADER_SAFE.fullmatch(value) is None or str(kind).lower() != "bearer":
            # Checked here so httpx never raises with the token in its message.
            raise PsaUnavailable(f"HaloPSA {where} did not issue a bearer token that can be sent")
        lifetime = body.get("expires_in")
        if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or not math.isfinite(lifetime) \
                or lifetime <= 0:
            lifetime = DEFAULT_TOKEN_LIFETIME_S
        token = _Token(value, time.monotonic() + lifetime - min(TOKEN_RENEW_MARGIN_S, lifetime / 10))
        for stale in [key for key, held in _TOKENS.items() if not held.fresh()]:
            del _TOKENS[stale]  # connections come and go: the cache holds only tokens still worth lending
        _TOKENS[self._cache_key] = token
        return token

    def _drop_token(self, value: str) -> None:
        """Forget a token the API refused, here and in the shared cache (unless another client renewed it)."""
        if self._token is not None and self._token.value == value:
            self._token = None
        shared = _TOKENS.get(self._cache_key)
        if shared is not None and shared.value == value:
            del _TOKENS[self._cache_key]

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                      json: Any = None) -> httpx.Response:
        """One authenticated call to `path` (relative to the API root); non-2xx raises a PsaError."""
        url = f"{self._api}/{path.lstrip('/')}"

        async def call(token: str) -> httpx.Response:
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            return await self._send(method, url, f"API at {self._api}", may_have_landed=method != "GET",
                                    params=params, json=json, headers=headers)

        token = await self._bearer()
        response = await call(token)
        if response.status_code == 401:
            # A token revoked or expired early; a 401 means nothing was done, so a write may be sent once more.
            self._drop_token(token)
            response = await call(await self._bearer())
        if not response.is_success:
            raise self._error(response, may_have_landed=method != "GET")
        return response

    async def _post_action(self, action: dict[str, Any], what: str) -> dict[str, Any]:
        """POST one action (as Halo's one-element array); the action Halo answers with, whose id is an int."""
        data = self._json(await self.request("POST", "Actions", json=[action]))
        if isinstance(data, list) and len(data) == 1:
            data = data[0]
        if not isinstance(data, dict) or not _is_int(data.get("id")):
            raise PsaUnavailable(f"HaloPSA stored {what} but did not answer with its action id", may_have_landed=True)
        return data

    # -- statuses --------------------------------------------------------------------------------

    async def _read_status_list(self) -> list[PsaStatus]:
        items = self._json(await self.request("GET", "Status", params={"type": "ticket"}))
        if not isinstance(items, list):
            raise PsaUnavailable("HaloPSA answered the ticket statuses with something other than a list")
        return [
            PsaStatus(id=item["id"], name=str(item.get("name") or ""),
                      closed=item["id"] == CLOSED_STATUS_ID or str(item.get("name", "")).lower() in CLOSED_NAMES)
            for item in items if isinstance(item, dict) and _is_int(item.get("id"))
        ]

    # -- PsaProvider -----------------------------------------------------------------------------

    async def check(self) -> None:
        """Get a token, then make one authenticated call; raises PsaUnavailable / PsaAuthFailed."""
        await self._statuses.statuses(refresh=True)

    async def get_ticket(self, ticket_id: str) -> PsaTicket:
        """Read a ticket's summary, status (named from the status list) and ticket type."""
        tid = _checked_id("ticket", ticket_id)
        data = self._json(await self.request("GET", f"Tickets/{tid}"))
        if not isinstance(data, dict):
            raise PsaUnavailable(f"HaloPSA answered ticket {tid} with something other than an object")
        status_id = data["status_id"] if _is_int(data.get("status_id")) else None
        return PsaTicket(id=str(data.get("id", tid)), summary=str(data.get("summary") or ""), status_id=status_id,
                         status_name=await self._statuses.name(status_id) if status_id is not None else None,
                         type_id=data["tickettype_id"] if _is_int(data.get("tickettype_id")) else None)

    async def post_note(self, ticket_id: str, text: str, note_type: NoteType) -> PsaNote:
        """Add an action carrying the note, hidden from the end user when it is internal analysis."""
        return (await self.post_work(ticket_id, text, note_type, minutes=None, status_id=None,
                                     ended_at=datetime.now(UTC))).note

    async def post_work(self, ticket_id: str, text: str, note_type: NoteType, *, minutes: int | None,
                        status_id: int | None, ended_at: datetime) -> PsaPost:
        """ONE action: the note, `minutes` as `timetaken` hours and `status_id` as `new_status` when given.

        Halo records the action at the time it is posted: the body the write-back sends has no field for
        `ended_at`, so it is not sent.
        """
        tid = _checked_id("ticket", ticket_id)
        if minutes is not None and (not _is_int(minutes) or not 1 <= minutes <= MAX_WORK_MINUTES):
            raise PsaRejected(f"Time worked must be 1 to {MAX_WORK_MINUTES} minutes; {minutes!r} is not")
        action: dict[str, Any] = {"ticket_id": tid, "note": text, "outcome": OUTCOME,
                                  "hiddenfromuser": note_type is NoteType.INTERNAL_ANALYSIS}
        if minutes is not None:
            action["timetaken"] = minutes / 60
        if status_id is not None:
            action["new_status"] = _checked_id("status", status_id)
        data = await self._post_action(action, f"the note on ticket {tid}")
        action_id = str(data["id"])
        note = PsaNote(id=action_id, text=str(data.get("note") or text), note_type=note_type,
                       created_at=_created_at(data.get("datetime")),
                       time_entry_id=action_id if minutes is not None else None)
        return PsaPost(note=note, time_entry_id=note.time_entry_id, status_sent=status_id is not None)

    async def update_note(self, ticket_id: str, note_id: str, text: str, *, time_entry: bool = False) -> None:
        """Replace the action's note by posting its id (its visibility and time stay as posted); `time_entry`
        changes nothing: an action with time is both the note and the time entry."""
        tid, nid = _checked_id("ticket", ticket_id), _checked_id("note", note_id)
        await self._post_action({"id": nid, "ticket_id": tid, "note": text}, f"the edit of note {nid}")

    async def find_note(self, ticket_id: str, marker: str, *, page_size: int = DEFAULT_PAGE_SIZE) -> PsaNote | None:
        """The newest (highest id) of the ticket's actions whose note contains `marker`, reading every page."""
        tid = _checked_id("ticket", ticket_id)
        found: dict[str, Any] | None = None
        seen = 0
        for page in range(1, MAX_PAGES + 1):
            params = {"ticket_id": tid, "pageinate": "true", "page_size": page_size, "page_no": page}
            body = self._json(await self.request("GET", "Actions", params=params))
            actions = body.get("actions") if isinstance(body, dict) else None
            if not isinstance(actions, list):
                raise PsaUnavailable(f"HaloPSA answered the actions of ticket {tid} without a list of actions")
            for action in actions:
                if isinstance(action, dict) and _is_int(action.get("id")) and marker in str(action.get("note") or "") \
                        and (found is None or action["id"] > found["id"]):
                    found = action
            seen += len(actions)
            total = body.get("record_count")
            if len(actions) < page_size or (_is_int(total) and seen >= total):
                break
        return _to_note(found) if found is not None else None

    async def log_time(self, ticket_id: str, text: str, note_type: NoteType, *, marker: str, minutes: int,
                       ended_at: datetime) -> str | None:
        """None: HaloPSA's action is both the note and its time (one write), so there is no time to log apart."""
        return None

    async def update_status(self, ticket_id: str, status_id: int) -> None:
        """Post a status-change action; the caller re-reads the ticket, since Halo's rules may keep the status."""
        tid, sid = _checked_id("ticket", ticket_id), _checked_id("status", status_id)
        await self._post_action({"ticket_id": tid, "outcome": STATUS_OUTCOME, "new_status": sid,
                                 "hiddenfromuser": True, "note": STATUS_NOTE}, f"the status change on ticket {tid}")

    async def list_statuses(self, ticket: PsaTicket) -> list[PsaStatus]:
        """Halo's ticket statuses (Closed, id 9, and any named Closed or Resolved close a ticket)."""
        return list(await self._statuses.statuses())
