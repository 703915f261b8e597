"""ConnectWise Manage (PSA) over its REST API 3.0, following the ConnectWise Developer Guide.

Auth is Basic `{companyId}+{publicKey}:{privateKey}` plus a `clientId` header on every call; the
API lives under a per-site "codebase" (e.g. `v4_6_release/`) read from `/login/companyinfo/{companyId}`.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

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
from integrations.psa.client_common import MAX_ID as MAX_ID
from integrations.psa.client_common import PsaHttpClient, Wording, normalize_root, parse_time, shown, status_line
from integrations.psa.client_common import parse_retry_after as parse_retry_after

DEFAULT_PAGE_SIZE = 100
# A runaway paging loop (a server that always says "next") must end somewhere: 1,000 pages of 1,000 is CW's own cap.
MAX_PAGES = 1000
_FLAG_BY_TYPE = {
    NoteType.DESCRIPTION: "detailDescriptionFlag",
    NoteType.INTERNAL_ANALYSIS: "internalAnalysisFlag",
    NoteType.RESOLUTION: "resolutionFlag",
}
# A time entry's notes land on the ticket as the note whose visibility these flags give (the same three choices).
_TIME_FLAG_BY_TYPE = {
    NoteType.DESCRIPTION: "addToDetailDescriptionFlag",
    NoteType.INTERNAL_ANALYSIS: "addToInternalAnalysisFlag",
    NoteType.RESOLUTION: "addToResolutionFlag",
}
MAX_WORK_MINUTES = 1440  # API.md: time_minutes is 1 to 1440 (one day)
_CW_TIME = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class ConnectWiseConfig:
    """Where a ConnectWise site is and the API member keys + clientId used to call it."""

    site_url: str
    company_id: str
    public_key: str
    private_key: str
    client_id: str
    codebase: str | None = None
    api_version: str = "2022.1"
    timeout_s: float = 15.0

    def __repr__(self) -> str:
        # Configs end up in logs and tracebacks; the private key must never be in them.
        return (
            f"ConnectWiseConfig(site_url={self.site_url!r}, company_id={self.company_id!r}, "
            f"public_key={self.public_key!r}, private_key='***', client_id={self.client_id!r}, "
            f"codebase={self.codebase!r}, api_version={self.api_version!r}, timeout_s={self.timeout_s!r})"
        )

    @property
    def site_root(self) -> str:
        """The site as a URL without a trailing slash (a bare host means https)."""
        return normalize_site_url(self.site_url)


def normalize_site_url(site_url: str) -> str:
    """`na.myconnectwise.net` → `https://na.myconnectwise.net`; full URLs keep their scheme; no trailing slash."""
    return normalize_root(site_url)


def normalize_codebase(codebase: str) -> str:
    """`v4_6_release`, `/v4_6_release/` → `v4_6_release/` (CW's own form, trailing slash kept)."""
    return codebase.strip().strip("/") + "/"


def api_base_url(site_url: str, codebase: str) -> str:
    """`{site}/{codebase}apis/3.0/` for a site URL or bare host and a codebase."""
    return f"{normalize_site_url(site_url)}/{normalize_codebase(codebase)}apis/3.0/"


def id_problem(kind: str, value: str) -> str | None:
    """Why `value` cannot be a ConnectWise `kind` id (e.g. "ticket"), None when it can: ids go into URL paths."""
    return client_common.id_problem("ConnectWise", kind, value)


def basic_auth_header(company_id: str, public_key: str, private_key: str) -> str:
    """The `Authorization` value ConnectWise expects for an API member's key pair."""
    token = base64.b64encode(f"{company_id}+{public_key}:{private_key}".encode()).decode("ascii")
    return f"Basic {token}"


def cw_error_detail(response: httpx.Response) -> str:
    """CW's error body `{code, message, errors: [...]}` as one sentence, else only the HTTP status.

    Only a body in ConnectWise's error shape is quoted (cut short): another server's text, whatever it
    says, is never echoed, nor its reason phrase (the standard one is used): ConnectWise's own error text is
    shown to the engineer, but a server that is not ConnectWise gets no say in our messages.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("code"), str) and isinstance(body.get("message"), str):
        parts = []
        for err in body.get("errors") or []:
            if not isinstance(err, dict) or not isinstance(err.get("message"), str):
                continue
            field, code = err.get("field"), err.get("code")
            where = ": ".join(str(x) for x in (field, code) if isinstance(x, str) and x)
            parts.append(f"{err['message']} ({where})" if where else err["message"])
        if parts:
            return shown("; ".join(parts[:5]))
        return shown(f"{body['message']} ({body['code']})")
    return status_line(response)


def _note_type(note: dict[str, Any]) -> NoteType:
    # Internal first: if CW ever reports several flags, treat the note as the least visible one.
    if note.get("internalAnalysisFlag"):
        return NoteType.INTERNAL_ANALYSIS
    if note.get("resolutionFlag"):
        return NoteType.RESOLUTION
    return NoteType.DESCRIPTION


def _to_note(note: dict[str, Any]) -> PsaNote:
    return PsaNote(
        id=str(note.get("id", "")),
        text=str(note.get("text") or ""),
        note_type=_note_type(note),
        created_at=parse_time(note.get("dateCreated")),
    )


def _time_entry_note(item: dict[str, Any]) -> PsaNote | None:
    """An `allNotes` item that is a time entry's note, as a PsaNote whose id is the time entry's id."""
    if item.get("noteType") != "TimeEntryNote":
        return None
    entry_id = item.get("timeEntryId", item.get("id"))
    if not isinstance(entry_id, int) or isinstance(entry_id, bool):
        return None
    return PsaNote(id=str(entry_id), text=str(item.get("text") or ""), note_type=_note_type(item),
                   created_at=parse_time(item.get("dateCreated")), time_entry_id=str(entry_id))


def _ref_id(ref: Any) -> int | None:
    value = ref.get("id") if isinstance(ref, dict) else None
    return value if isinstance(value, int) else None


_WORDING = Wording(
    name="ConnectWise", detail=cw_error_detail,
    auth_hint="check the company ID, public key and private key",
    permission_hint="the API member's security role does not allow this",
    url_hint="connect the site again with a valid site_url",
)


class ConnectWiseClient(PsaHttpClient[ConnectWiseConfig]):
    """A PsaProvider for ConnectWise Manage; one instance per site + API member."""

    wording = _WORDING

    def __init__(self, config: ConnectWiseConfig, http: httpx.AsyncClient | None = None) -> None:
        super().__init__(config, http)
        self._site = config.site_root
        self._codebase = normalize_codebase(config.codebase) if config.codebase else None
        self._codebase_lock = asyncio.Lock()
        self._auth = basic_auth_header(config.company_id, config.public_key, config.private_key)

    # -- low level -------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {
            "Authorization": self._auth,
            "clientId": self._config.client_id,
            "Accept": f"application/vnd.connectwise.com+json; version={self._config.api_version}",
        }

    def _secrets(self) -> Iterable[str]:
        return (self._config.private_key, self._auth.removeprefix("Basic "))

    async def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        # Any ConnectWise call cut short after it was sent is taken to have maybe landed, reads too.
        return await self._send(method, url, f"site {self._site}", may_have_landed=True, **kwargs)

    def _json(self, response: httpx.Response) -> Any:
        return self._body(response, may_have_landed=response.is_success)

    async def _company_info(self) -> dict[str, Any]:
        url = f"{self._site}/login/companyinfo/{quote(self._config.company_id, safe='')}"
        response = await self._call("GET", url, headers={"Accept": "application/json"})
        if response.status_code == 404:
            raise self._unknown_company()
        if not response.is_success:
            raise self._error(response, may_have_landed=True)
        info = self._json(response)
        # A 200 that describes no company is no site we can use; say so rather than fail later.
        if not isinstance(info, dict) or not info:
            raise self._unknown_company()
        return info

    def _unknown_company(self) -> PsaAuthFailed:
        return PsaAuthFailed(
            f"ConnectWise authentication failed: company ID {self._config.company_id!r} is not known at "
            f"{self._site} (check the site URL and company ID)",
            status_code=404,
        )

    async def _api_base(self) -> str:
        if self._codebase is None:
            # One companyinfo lookup per client, even when the first calls run concurrently.
            async with self._codebase_lock:
                if self._codebase is None:
                    self._learn_codebase(await self._company_info())
        return f"{self._site}/{self._codebase}apis/3.0/"

    def _learn_codebase(self, info: dict[str, Any]) -> None:
        codebase = info.get("Codebase")
        if not isinstance(codebase, str) or not codebase.strip("/ "):
            raise PsaUnavailable(f"ConnectWise site {self._site} did not say which codebase it runs")
        self._codebase = normalize_codebase(codebase)

    async def request(
        self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None
    ) -> httpx.Response:
        """One authenticated API call to `path` (relative to `.../apis/3.0/`); non-2xx raises a PsaError."""
        url = await self._api_base() + path.lstrip("/")
        response = await self._call(method, url, params=params, json=json, headers=self._headers())
        if not response.is_success:
            raise self._error(response, may_have_landed=True)
        return response

    async def _paged(self, path: str, params: dict[str, Any], page_size: int) -> AsyncIterator[dict[str, Any]]:
        """Items of a list endpoint, page by page, until a short page or no `Link: rel="next"`."""
        for page in range(1, MAX_PAGES + 1):
            response = await self.request("GET", path, params={**params, "page": page, "pageSize": page_size})
            items = self._json(response)
            if not isinstance(items, list):
                raise PsaUnavailable(f"ConnectWise answered GET {path} with something other than a list")
            for item in items:
                if isinstance(item, dict):
                    yield item
            # The next page is computed rather than taken from the Link URL: CW puts its internal
            # server name there at times, and our credentials must only go to the configured site.
            has_link = "link" in response.headers
            if len(items) < page_size or (has_link and "next" not in response.links):
                return

    @staticmethod
    def _ticket_path(ticket_id: str) -> str:
        # Refusing anything but an id keeps ids from reshaping the URL path.
        tid = str(ticket_id).strip()
        if problem := id_problem("ticket", tid):
            raise PsaRejected(problem)
        return f"service/tickets/{tid}"

    # -- PsaProvider -----------------------------------------------------------------------------

    async def check(self) -> None:
        """Reach the site (companyinfo), then make one authenticated call; raises PsaUnavailable / PsaAuthFailed."""
        info = await self._company_info()
        if self._codebase is None:
            self._learn_codebase(info)
        await self.request("GET", "system/info")

    async def get_ticket(self, ticket_id: str) -> PsaTicket:
        """Read a ticket's summary, status and board."""
        data = self._json(await self.request("GET", self._ticket_path(ticket_id)))
        if not isinstance(data, dict):
            raise PsaUnavailable(f"ConnectWise answered ticket {ticket_id} with something other than an object")
        status = data.get("status") if isinstance(data.get("status"), dict) else {}
        return PsaTicket(
            id=str(data.get("id", ticket_id)),
            summary=str(data.get("summary") or ""),
            status_id=_ref_id(status),
            status_name=status.get("name") if isinstance(status, dict) else None,
            board_id=_ref_id(data.get("board")),
        )

    async def post_note(self, ticket_id: str, text: str, note_type: NoteType) -> PsaNote:
        """Add a note; exactly one of CW's three visibility flags is set, per `note_type`."""
        body: dict[str, Any] = {"text": text}
        body.update({flag: kind is note_type for kind, flag in _FLAG_BY_TYPE.items()})
        data = self._json(await self.request("POST", f"{self._ticket_path(ticket_id)}/notes", json=body))
        if not isinstance(data, dict):
            raise PsaUnavailable(f"ConnectWise answered the note on ticket {ticket_id} with something unexpected",
                                 may_have_landed=True)
        return _to_note(data)

    async def post_work(self, ticket_id: str, text: str, note_type: NoteType, *, minutes: int | None,
                        status_id: int | None, ended_at: datetime) -> PsaPost:
        """The note alone (no minutes), or ONE time entry of `minutes` ending at `ended_at` whose notes are the
        note (no second copy); `status_id` is not sent: CW's time entry cannot carry it (status_sent=False)."""
        if minutes is None:
            return PsaPost(note=await self.post_note(ticket_id, text, note_type))
        if isinstance(minutes, bool) or not 1 <= minutes <= MAX_WORK_MINUTES:
            raise PsaRejected(f"Time worked must be 1 to {MAX_WORK_MINUTES} minutes; {minutes!r} is not")
        if ended_at.tzinfo is None:
            # A naive time would be read as the server's local time: refuse it rather than log the wrong hours.
            raise PsaRejected("The time the work ended must carry its time zone")
        tid = int(self._ticket_path(ticket_id).rsplit("/", 1)[1])
        end = ended_at.astimezone(UTC)
        body: dict[str, Any] = {
            "chargeToType": "ServiceTicket", "chargeToId": tid,
            "timeStart": (end - timedelta(minutes=minutes)).strftime(_CW_TIME), "timeEnd": end.strftime(_CW_TIME),
            "notes": text, **{flag: kind is note_type for kind, flag in _TIME_FLAG_BY_TYPE.items()},
        }
        data = self._json(await self.request("POST", "time/entries", json=body))
        entry_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(entry_id, int) or isinstance(entry_id, bool):
            raise PsaUnavailable(f"ConnectWise answered the time entry on ticket {ticket_id} with something "
                                 "unexpected", may_have_landed=True)
        note = PsaNote(id=str(entry_id), text=str(data.get("notes") or text), note_type=note_type,
                       time_entry_id=str(entry_id),
                       created_at=parse_time(data.get("dateEntered")))
        return PsaPost(note=note, time_entry_id=str(entry_id))

    async def update_note(self, ticket_id: str, note_id: str, text: str, *, time_entry: bool = False) -> None:
        """PATCH the note's text (its flags, and so who may read it, stay as posted); `time_entry=True` when
        `note_id` is a time entry's id (PsaPost.time_entry_id): its `notes` are the note."""
        kind = "time entry" if time_entry else "note"
        nid = str(note_id).strip()
        if problem := id_problem(kind, nid):
            raise PsaRejected(problem)
        ticket_path = self._ticket_path(ticket_id)
        # Ticket notes and time entries are numbered apart, so the same id may name one of each: only the caller
        # knows which it posted, and guessing (try one, then the other) could overwrite someone else's note.
        field, path = ("notes", f"time/entries/{nid}") if time_entry else ("text", f"{ticket_path}/notes/{nid}")
        await self.request("PATCH", path, json=[{"op": "replace", "path": field, "value": text}])

    async def find_note(self, ticket_id: str, marker: str, *, page_size: int = DEFAULT_PAGE_SIZE) -> PsaNote | None:
        """The newest note whose text contains `marker`: the ticket's notes newest first, then (CW lists a time
        entry's note only there) the time-entry notes of `allNotes`, whose ids are the time entries' ids."""
        ticket_path = self._ticket_path(ticket_id)
        async for note in self._paged(f"{ticket_path}/notes", {"orderBy": "id desc"}, page_size):
            if marker in str(note.get("text") or ""):
                return _to_note(note)
        # allNotes is read in CW's own order (no orderBy is documented for it): the newest match is the highest id.
        newest: PsaNote | None = None
        async for item in self._paged(f"{ticket_path}/allNotes", {}, page_size):
            found = _time_entry_note(item)
            if found is not None and marker in found.text and (newest is None or int(found.id) > int(newest.id)):
                newest = found
        return newest

    async def log_time(self, ticket_id: str, text: str, note_type: NoteType, *, marker: str, minutes: int,
                       ended_at: datetime) -> str | None:
        """None: ConnectWise's time entry is the note (post_work's one write), so there is no time to log apart."""
        return None

    async def update_status(self, ticket_id: str, status_id: int) -> None:
        """PATCH the ticket's status; the caller re-reads the ticket, since workflow rules may revert it."""
        # Path `status` with an object value: the guide warns a nested `status/id` path may answer
        # 200 without changing anything.
        patch = [{"op": "replace", "path": "status", "value": {"id": int(status_id)}}]
        await self.request("PATCH", self._ticket_path(ticket_id), json=patch)

    async def list_statuses(self, ticket: PsaTicket) -> list[PsaStatus]:
        """The statuses of the ticket's board (CW statuses belong to boards)."""
        if ticket.board_id is None:
            raise PsaRejected(f"ConnectWise ticket {ticket.id} has no board, so it has no statuses to choose from")
        return await self.board_statuses(ticket.board_id)

    async def board_statuses(self, board_id: int, *, page_size: int = DEFAULT_PAGE_SIZE) -> list[PsaStatus]:
        """All statuses of a service board, following CW's paging."""
        statuses = []
        async for item in self._paged(f"service/boards/{int(board_id)}/statuses", {}, page_size):
            if isinstance(item.get("id"), int):
                statuses.append(
                    PsaStatus(
                        id=item["id"],
                        name=str(item.get("name") or ""),
                        closed=bool(item.get("closedStatus")),
                        inactive=bool(item.get("inactive")),
                    )
                )
        return statuses
