"""Autotask PSA over its REST API v1.0.

Every call carries three headers (`ApiIntegrationCode`, `UserName`, `Secret`, plus `ImpersonationResourceId`
when set). Each tenant lives in one zone (e.g. `https://webservices5.autotask.net/ATServicesRest`), learned
from the discovery host's `zoneInformation` unless configured. Autotask answers a request it refuses as invalid
with HTTP 500 and `{"errors": [...]}`: that is a rejection, not an outage.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import httpx

from integrations.psa import autotask_records as records
from integrations.psa import client_common
from integrations.psa.base import (
    NoteType,
    PsaAuthFailed,
    PsaError,
    PsaNote,
    PsaNotFound,
    PsaPost,
    PsaRejected,
    PsaStatus,
    PsaTicket,
    PsaTimeUnknown,
    PsaUnavailable,
)
from integrations.psa.client_common import MAX_ID as MAX_ID
from integrations.psa.client_common import normalize_root as normalize_root

DEFAULT_DISCOVERY_URL = "https://webservices.autotask.net/atservicesrest"
API_VERSION = "1.0"  # the only REST version; a later one advertised by discovery is not used unasked
COMPLETE_STATUS_ID = 5  # Autotask's system "Complete" status
# A runaway paging loop (a server that always says "next") must end somewhere.
MAX_PAGES = 200
NOTE_TEXT_MAX = 32000  # TicketNotes.description
# The statuses picklist changes rarely; a provider lives long (cached per connection), so it is read again now and then.
PICKLIST_TTL_S = 600.0
PICKLIST_RECHECK_S = 30.0  # an unknown status id reads the picklist again, at most this often

# Zone roots learned by discovery, per (discovery URL, user): a new client for the same user asks no more.
_ZONES: dict[tuple[str, str], str] = {}


def clear_zone_cache() -> None:
    """Forget every discovered zone (tests; an operator who knows a tenant moved)."""
    _ZONES.clear()


@dataclass(frozen=True)
class AutotaskConfig:
    """An Autotask API user (username + secret), the integration's tracking code and where its zone is."""

    username: str
    secret: str
    integration_code: str
    zone_url: str | None = None
    discovery_url: str = DEFAULT_DISCOVERY_URL
    impersonation_resource_id: str | None = None
    timeout_s: float = 15.0

    def __repr__(self) -> str:
        # Configs end up in logs and tracebacks; the secret (and the integration code, stored as one) never are.
        return (
            f"AutotaskConfig(username={self.username!r}, secret='***', integration_code='***', "
            f"zone_url={self.zone_url!r}, discovery_url={self.discovery_url!r}, "
            f"impersonation_resource_id={self.impersonation_resource_id!r}, timeout_s={self.timeout_s!r})"
        )


def id_problem(kind: str, value: str) -> str | None:
    """Why `value` cannot be an Autotask `kind` id (e.g. "ticket"), None when it can: ids go into URL paths."""
    return client_common.id_problem("Autotask", kind, value)


_checked_id = partial(client_common.checked_id, "Autotask")  # the id as an int, or PsaRejected naming the problem


def autotask_errors(response: httpx.Response) -> list[str] | None:
    """The messages of Autotask's error body `{"errors": ["...", ...]}`; None when the body has another shape."""
    try:
        body = response.json()
    except ValueError:
        return None
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return None
    texts = [e.strip() for e in errors if isinstance(e, str) and e.strip()]
    return texts or None


def error_detail(response: httpx.Response) -> str:
    """Autotask's own error messages (cut short), else only the HTTP status: another server's text is never echoed."""
    errors = autotask_errors(response)
    if errors:
        return client_common.shown("; ".join(errors[:5]))
    return client_common.status_line(response)


_WORDING = client_common.Wording(
    name="Autotask", detail=error_detail,
    auth_hint="check the username, secret and integration code",
    permission_hint="the API user's security level does not allow this",
    url_hint="connect again with a valid zone_url or discovery_url",
)


class AutotaskClient(client_common.PsaHttpClient[AutotaskConfig]):
    """A PsaProvider for Autotask; one instance per API user."""

    wording = _WORDING

    def __init__(self, config: AutotaskConfig, http: httpx.AsyncClient | None = None) -> None:
        super().__init__(config, http)
        self._discovery = normalize_root(config.discovery_url)
        self._zone_key = (self._discovery, config.username.strip().lower())
        self._zone_configured = bool(config.zone_url and config.zone_url.strip())
        self._zone: str | None = normalize_root(config.zone_url or "") if self._zone_configured else None
        self._zone_cached = self._zone_configured  # a configured zone is not put in the shared cache
        self._zone_lock = asyncio.Lock()
        self._statuses = client_common.StatusCache(self._read_status_picklist, ttl_s=PICKLIST_TTL_S,
                                                   recheck_s=PICKLIST_RECHECK_S)

    # -- low level -------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        c = self._config
        headers = {"ApiIntegrationCode": c.integration_code, "UserName": c.username, "Secret": c.secret,
                   "Accept": "application/json"}
        if (resource_id := self._resource_id()) is not None:
            headers["ImpersonationResourceId"] = str(resource_id)
        for name in ("ApiIntegrationCode", "UserName", "Secret"):
            # Checked here so httpx never raises with the value in its message (which names no field).
            if client_common.HEADER_SAFE.fullmatch(headers[name]) is None:
                raise PsaRejected(f"The Autotask {name} is empty or holds characters an HTTP header cannot carry")
        return headers

    def _resource_id(self) -> int | None:
        """The resource the calls act as (and log time for); None when the API user acts as itself."""
        value = self._config.impersonation_resource_id
        return _checked_id("resource", value) if value is not None and value.strip() else None

    def _secrets(self) -> Iterable[str]:
        return (self._config.secret, self._config.integration_code)

    def _error(self, response: httpx.Response, *, may_have_landed: bool | None = None) -> PsaError:
        """The PsaError for a non-2xx answer; a 5xx of anything but a GET may have landed."""
        if response.status_code == 500 and autotask_errors(response):
            # Autotask's answer to an invalid request: sending it again would be refused the same way.
            return PsaRejected(f"Autotask: {self._scrub(error_detail(response))}", status_code=500)
        written = response.request.method != "GET"
        return super()._error(response, may_have_landed=written if may_have_landed is None else may_have_landed)

    def _object(self, response: httpx.Response, what: str) -> dict[str, Any]:
        """The answer's JSON object; anything else (not JSON, not an object) is a PsaUnavailable."""
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise PsaUnavailable(f"Autotask answered {what} with HTTP {response.status_code} but not a JSON object",
                                 status_code=response.status_code, may_have_landed=response.request.method != "GET")
        return data

    # -- zone ------------------------------------------------------------------------------------

    async def _zone_root(self) -> str:
        if self._zone is None:
            # One discovery per client, even when the first calls run concurrently.
            async with self._zone_lock:
                if self._zone is None:
                    cached = _ZONES.get(self._zone_key)
                    self._zone = cached or await self._discover()
                    self._zone_cached = cached is not None
        return self._zone

    async def _discover(self) -> str:
        """The user's zone root: `versioninformation`, then `zoneInformation?user=` (no credentials are sent)."""
        where = f"discovery at {self._discovery}"
        response = await self._send("GET", f"{self._discovery}/versioninformation", where, may_have_landed=False,
                                    headers={"Accept": "application/json"})
        if not response.is_success:
            raise PsaUnavailable(f"Autotask {where} did not list its API versions ({error_detail(response)})",
                                 status_code=response.status_code)
        advertised = self._object(response, where).get("apiVersions")
        if not isinstance(advertised, list) or API_VERSION not in advertised:  # the last one listed is not used
            raise PsaUnavailable(f"Autotask {where} does not offer REST API version {API_VERSION}")
        response = await self._send("GET", f"{self._discovery}/v{API_VERSION}/zoneInformation", where,
                                    may_have_landed=False, params={"user": self._config.username},
                                    headers={"Accept": "application/json"})
        if response.status_code == 404 or (response.status_code in (400, 500) and autotask_errors(response)):
            raise PsaAuthFailed(f"Autotask authentication failed: {where} knows no API user "
                                f"{self._config.username!r} ({self._scrub(error_detail(response))})",
                                status_code=response.status_code)
        if not response.is_success:
            raise self._error(response)
        url = self._object(response, where).get("url")
        zone = normalize_root(url) if isinstance(url, str) and url.strip() else ""
        try:
            parsed = httpx.URL(zone)
        except httpx.InvalidURL:
            parsed = None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host or parsed.query:
            raise PsaUnavailable(f"Autotask {where} did not name a zone URL for {self._config.username!r}")
        return zone

    def _on_zone_answer(self, zone: str, response: httpx.Response) -> None:
        if response.is_success and not self._zone_cached:
            _ZONES[self._zone_key] = zone  # only a zone that answered a call is shared
            self._zone_cached = True
        elif response.status_code == 401 and not self._zone_configured:
            # Wrong credentials, or (we assume) a tenant Autotask moved to another zone: ask discovery again.
            if _ZONES.get(self._zone_key) == zone:
                del _ZONES[self._zone_key]
            self._zone, self._zone_cached = None, False

    async def _call(self, method: str, url: str, zone: str, headers: dict[str, str], *,
                    params: dict[str, Any] | None = None, json: Any = None) -> httpx.Response:
        response = await self._send(method, url, f"zone {zone}", may_have_landed=method != "GET", params=params,
                                    json=json, headers=headers)
        self._on_zone_answer(zone, response)
        if not response.is_success:
            raise self._error(response)
        return response

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                      json: Any = None) -> httpx.Response:
        """One authenticated call to `path` (relative to `{zone}/V1.0/`); non-2xx raises a PsaError."""
        headers = self._headers()  # refuses unsendable credentials before discovery runs
        zone = await self._zone_root()
        url = f"{zone}/V{API_VERSION}/{path.lstrip('/')}"
        return await self._call(method, url, zone, headers, params=params, json=json)

    # -- statuses --------------------------------------------------------------------------------

    async def _read_status_picklist(self) -> list[PsaStatus]:
        data = self._object(await self.request("GET", "Tickets/entityInformation/fields"), "the ticket fields")
        fields = data.get("fields")
        status = next((f for f in fields if isinstance(f, dict) and str(f.get("name", "")).lower() == "status"),
                      None) if isinstance(fields, list) else None
        values = status.get("picklistValues") if isinstance(status, dict) else None
        if not isinstance(values, list):
            raise PsaUnavailable("Autotask did not list the ticket Status picklist")
        statuses = []
        for value in values:
            if not isinstance(value, dict) or client_common.ID_PATTERN.fullmatch(str(value.get("value", ""))) is None:
                continue
            sid, label = int(value["value"]), str(value.get("label") or "")
            closed = sid == COMPLETE_STATUS_ID or label.lower() == "complete"
            statuses.append(PsaStatus(id=sid, name=label, closed=closed, inactive=value.get("isActive") is False))
        return statuses

    # -- PsaProvider -----------------------------------------------------------------------------

    async def check(self) -> None:
        """Find the zone (discovery), then make one authenticated call; raises PsaUnavailable / PsaAuthFailed."""
        await self._statuses.statuses(refresh=True)

    async def get_ticket(self, ticket_id: str) -> PsaTicket:
        """Read a ticket's title and status, the status named from the Status picklist."""
        tid = _checked_id("ticket", ticket_id)
        data = self._object(await self.request("GET", f"Tickets/{tid}"), f"ticket {tid}")
        item = data.get("item")
        if item is None:
            raise PsaNotFound(f"Autotask: ticket {tid} was not found")
        if not isinstance(item, dict):
            raise PsaUnavailable(f"Autotask answered ticket {tid} with something other than an object")
        status_id = item.get("status") if isinstance(item.get("status"), int) else None
        return PsaTicket(id=str(item.get("id", tid)), summary=str(item.get("title") or ""), status_id=status_id,
                         status_name=await self._statuses.name(status_id) if status_id is not None else None)

    async def post_note(self, ticket_id: str, text: str, note_type: NoteType) -> PsaNote:
        """Add a TicketNote: resolution and description published to all Autotask users, internal analysis not."""
        tid = _checked_id("ticket", ticket_id)
        if len(text) > NOTE_TEXT_MAX:
            raise PsaRejected(f"Autotask notes hold at most {NOTE_TEXT_MAX} characters; this one has {len(text)}")
        body = records.note_body(text, note_type)
        data = self._object(await self.request("POST", f"Tickets/{tid}/Notes", json=body),
                            f"the note on ticket {tid}")
        item_id = data.get("itemId")
        if not isinstance(item_id, int):
            raise PsaUnavailable(f"Autotask stored the note on ticket {tid} but did not say its id",
                                 may_have_landed=True)
        return PsaNote(id=str(item_id), text=text, note_type=note_type)

    async def update_note(self, ticket_id: str, note_id: str, text: str, *, time_entry: bool = False) -> None:
        """PATCH the note's description (its title and publish level, so who may read it, stay); `time_entry` is
        ignored: the note is always the TicketNote (a TimeEntries row is a separate record, never the note)."""
        tid, nid = _checked_id("ticket", ticket_id), _checked_id("note", note_id)
        if len(text) > NOTE_TEXT_MAX:
            raise PsaRejected(f"Autotask notes hold at most {NOTE_TEXT_MAX} characters; this one has {len(text)}")
        await self.request("PATCH", f"Tickets/{tid}/Notes", json={"id": nid, "description": text})

    async def _items(self, path: str, what: str, params: dict[str, Any] | None = None,
                     ) -> AsyncIterator[dict[str, Any]]:
        """Every item of a listing or query, following `nextPageUrl` on the zone (and nowhere else)."""
        headers = self._headers()
        zone = await self._zone_root()
        response = await self._call("GET", f"{zone}/V{API_VERSION}/{path}", zone, headers, params=params)
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            page = self._object(response, what)
            items = page.get("items")
            if not isinstance(items, list):
                raise PsaUnavailable(f"Autotask answered {what} without a list of items")
            for item in items:
                if isinstance(item, dict):
                    yield item
            details = page.get("pageDetails")
            next_url = details.get("nextPageUrl") if isinstance(details, dict) else None
            if not isinstance(next_url, str) or not next_url.strip():
                return
            url = httpx.URL(zone + "/").join(next_url.strip())
            root = httpx.URL(zone)
            if (url.scheme, url.host, url.port) != (root.scheme, root.host, root.port):
                # Our credentials go to the tenant's zone only; the page cannot be read, so the search is incomplete.
                raise PsaUnavailable(f"Autotask's next page of {what} is on another host ({url.host}); "
                                     "it was not followed")
            if str(url) in seen:
                return
            seen.add(str(url))
            response = await self._call("GET", str(url), zone, headers)

    async def find_note(self, ticket_id: str, marker: str) -> PsaNote | None:
        """The newest of the ticket's notes whose text contains `marker`, with the id of the ticket's time entry
        carrying `marker` too when there is one (the note and its time are two writes on Autotask)."""
        tid = _checked_id("ticket", ticket_id)
        found: dict[str, Any] | None = None
        async for item in self._items(f"Tickets/{tid}/Notes", f"the notes of ticket {tid}"):
            if marker in str(item.get("description") or "") and (
                    found is None or records.note_id_order(item) > records.note_id_order(found)):
                found = item
        return records.note_from_item(found, await self._time_entry(tid, marker)) if found is not None else None

    async def _time_entry(self, tid: int, marker: str) -> str | None:
        """The id of the ticket's newest time entry whose summaryNotes carries `marker`, if any."""
        what = f"the time entries of ticket {tid}"
        items = [item async for item in self._items("TimeEntries/query", what, records.ticket_query(tid))]
        return records.newest_with_marker(items, marker)

    async def _post_time(self, tid: int, text: str, minutes: int, ended_at: datetime) -> str | None:
        entry = records.time_entry_body(tid, text, minutes, ended_at, self._resource_id())
        data = self._object(await self.request("POST", "TimeEntries", json=entry), f"the time entry on ticket {tid}")
        item_id = data.get("itemId")
        return str(item_id) if isinstance(item_id, int) else None

    async def log_time(self, ticket_id: str, text: str, note_type: NoteType, *, marker: str, minutes: int,
                       ended_at: datetime) -> str | None:
        """Log `minutes` for a note already posted: the ticket's time entry carrying `marker` when an earlier
        attempt stored one, else a new TimeEntries row (summaryNotes: `text`, which carries `marker`)."""
        tid = _checked_id("ticket", ticket_id)
        records.check_minutes(minutes)
        return await self._time_entry(tid, marker) or await self._post_time(tid, text, minutes, ended_at)

    async def post_work(self, ticket_id: str, text: str, note_type: NoteType, *, minutes: int | None,
                        status_id: int | None, ended_at: datetime) -> PsaPost:
        """Post the note, then log `minutes` ending at `ended_at` as a TimeEntries row on the ticket.

        Autotask's note cannot carry the status change, so `status_id` is not sent (`status_sent` is False):
        the caller changes the status with update_status and verifies it.
        """
        tid = _checked_id("ticket", ticket_id)
        if minutes is not None:
            records.check_minutes(minutes)
        note = await self.post_note(str(tid), text, note_type)
        if minutes is None:
            return PsaPost(note=note)
        try:
            time_entry_id = await self._post_time(tid, text, minutes, ended_at)
        except PsaUnavailable as exc:
            if not exc.may_have_landed:
                raise
            # The note is stored: what the caller must settle is only whether the time entry is.
            raise PsaTimeUnknown(f"{exc.message} (the note was stored as {note.id}; its time entry may not be)",
                                 note=note, status_code=exc.status_code) from exc
        return PsaPost(note=note, time_entry_id=time_entry_id)

    async def update_status(self, ticket_id: str, status_id: int) -> None:
        """PATCH the ticket's status (id in the body); the caller re-reads the ticket, since rules may revert it."""
        tid = _checked_id("ticket", ticket_id)
        await self.request("PATCH", "Tickets", json={"id": tid, "status": _checked_id("status", status_id)})

    async def list_statuses(self, ticket: PsaTicket) -> list[PsaStatus]:
        """The active values of the Status picklist (one list for every ticket; Complete is the closed one)."""
        return [s for s in await self._statuses.statuses() if not s.inactive]

