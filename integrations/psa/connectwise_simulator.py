"""An in-memory ConnectWise Manage stand-in (ASGI) for tests and the local demo.

It answers the few routes the write-back uses the way ConnectWise does (tickets, notes, time entries whose
notes show only in a ticket's `allNotes`, board statuses), including its traps: a PATCH with the nested path
`status/id` answers 200 and changes nothing. Switches inject rate limits, failures after a note or time entry
is stored, ignored status changes and slow answers. Control routes under
`/_simulator/` need no auth: bind it to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import secrets
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# The state lives in its own module; these names are imported from here too, so they stay importable here.
from integrations.psa.connectwise_simulator_state import (
    NOTE_FLAGS,
    SEED_STATUSES,
    TIME_ENTRY_FLAGS,
    RecordedRequest,
    SimulatorCredentials,
    SimulatorState,
    SimulatorSwitches,
)
from integrations.psa.simulator_common import (
    control_routes,
    fails_after_store,
    rate_limited,
    read_json,
    record,
    recorded,
    serve,
    simulator_parser,
)

__all__ = [
    "API_PREFIX", "CODEBASE", "SEED_STATUSES", "RecordedRequest", "SimulatorCredentials", "SimulatorState",
    "SimulatorSwitches", "build_simulator_app", "cw_error", "main",
]

CODEBASE = "v4_6_release/"
API_PREFIX = f"/{CODEBASE}apis/3.0"
CW_DEFAULT_PAGE_SIZE = 25
CW_MAX_PAGE_SIZE = 1000
_PATH_PARAM = re.compile(r"\{[a-z_]+:int\}")


def cw_error(status: int, code: str, message: str, errors: list[dict[str, str]] | None = None,
             headers: dict[str, str] | None = None) -> JSONResponse:
    """An error answer in ConnectWise's shape."""
    body = {"code": code, "message": message, **({"errors": errors} if errors else {})}
    return JSONResponse(body, status_code=status, headers=headers)


def _invalid(field_name: str, message: str, resource: str = "ticket") -> JSONResponse:
    return cw_error(400, "InvalidObject", f"{resource} object is invalid",
                    [{"code": "InvalidObject", "message": message, "resource": resource, "field": field_name}])


def _cw_time(value: Any) -> datetime | None:
    """An ISO 8601 time with its zone (CW sends and takes `...Z`), else None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _paged(request: Request, items: list[dict[str, Any]]) -> Response:
    """One page of `items` with CW's `Link` header (rel next/last, and first/prev after page 1)."""
    try:
        page = int(request.query_params.get("page", "1"))
        size = int(request.query_params.get("pageSize", str(CW_DEFAULT_PAGE_SIZE)))
    except ValueError:
        return cw_error(400, "InvalidObject", "page and pageSize must be integers")
    if page < 1 or size < 1:
        return cw_error(400, "InvalidObject", "page and pageSize must be positive")
    size = min(size, CW_MAX_PAGE_SIZE)
    last = max(1, -(-len(items) // size))
    links = []

    def link(n: int, rel: str) -> str:
        return f'<{request.url.include_query_params(page=n, pageSize=size)}>; rel="{rel}"'

    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    if page > 1:
        links += [link(page - 1, "prev"), link(1, "first")]
    headers = {"Link": ", ".join(links)} if links else None
    return JSONResponse(items[(page - 1) * size : page * size], headers=headers)


def build_simulator_app(credentials: SimulatorCredentials, state: SimulatorState | None = None) -> Starlette:
    """The simulator as a Starlette app serving one company's site."""
    st = state if state is not None else SimulatorState()
    expected_auth = f"{credentials.company_id}+{credentials.public_key}:{credentials.private_key}"

    def gate(request: Request) -> Response | None:
        """Rate limit, Basic auth, clientId: what every API call goes through first."""
        if (retry_after := rate_limited(st.switches)) is not None:
            return cw_error(429, "TooManyRequests", "Too many requests, please retry later", headers=retry_after)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            supplied = base64.b64decode(token, validate=True).decode() if scheme.lower() == "basic" else ""
        except (binascii.Error, UnicodeDecodeError):
            supplied = ""
        if not secrets.compare_digest(supplied.encode(), expected_auth.encode()):
            return cw_error(401, "Unauthorized", "Authentication failed: the company, public key or private key "
                            "is not valid")
        if not request.headers.get("clientid"):
            return cw_error(400, "InvalidObject", "clientId header is required: register one at "
                            "https://developer.connectwise.com/ClientID")
        return None

    def api(method: str, path: str, handler: Any) -> Route:
        route = f"{method} {_PATH_PARAM.sub('{id}', path)}"  # e.g. "GET service/tickets/{id}"

        async def answer(request: Request, body: Any) -> Response:
            response = gate(request)
            tid = request.path_params.get("ticket_id")
            if response is None and tid is not None and tid not in st.tickets:
                response = cw_error(404, "NotFound", f"Ticket with id {tid} was not found")
            return response if response is not None else await handler(request, body)

        return Route(f"{API_PREFIX}/{path}", recorded(st, route, RecordedRequest, answer), methods=[method])

    async def company_info(request: Request) -> Response:
        await record(st, request, "GET login/companyinfo", await read_json(request), RecordedRequest)
        company = request.path_params["company_id"]
        if company.lower() != credentials.company_id.lower():
            return cw_error(404, "NotFound", f"Company {company} was not found")
        return JSONResponse({
            "CompanyName": f"{credentials.company_id} (simulated)", "Codebase": CODEBASE, "VersionCode": "v2022.1",
            "VersionNumber": "v2022.1.93440", "CompanyID": company, "IsCloud": False,
            "SiteUrl": request.url.netloc,
        })

    async def system_info(request: Request, body: Any) -> Response:
        return JSONResponse({"version": "v2022.1.93440", "isCloud": False, "serverTimeZone": "UTC"})

    async def get_ticket(request: Request, body: Any) -> Response:
        return JSONResponse(st.ticket_json(request.path_params["ticket_id"]))

    async def patch_ticket(request: Request, body: Any) -> Response:
        tid = request.path_params["ticket_id"]
        if not isinstance(body, list) or not body:
            return cw_error(400, "InvalidObject", "A JSON Patch array of operations is required")
        ticket = st.tickets[tid]
        statuses = st.boards[ticket["board_id"]]["statuses"]
        for op in body:
            if not isinstance(op, dict) or op.get("op") not in ("replace", "add") or "value" not in op:
                return cw_error(400, "InvalidObject", "Each operation needs op (replace/add), path and value")
            path = str(op.get("path", "")).strip("/")
            value = op["value"]
            if path == "status":
                sid = value.get("id") if isinstance(value, dict) else None
                if not isinstance(sid, int) or sid not in statuses:
                    return _invalid("status", "Ticket status is invalid")
                if not st.switches.ignore_status_change:
                    ticket["status_id"] = sid
            elif path in ("status/id", "status/name"):
                continue  # the trap ConnectWise documents: nested paths answer 200 and change nothing
            elif path == "summary" and isinstance(value, str) and value.strip():
                ticket["summary"] = value[:100]
            else:
                return _invalid(path or "path", f"Cannot update {path or 'an empty path'}")
        return JSONResponse(st.ticket_json(tid))

    async def list_notes(request: Request, body: Any) -> Response:
        tid = request.path_params["ticket_id"]
        order = " ".join(request.query_params.get("orderBy", "id asc").lower().split())
        if order not in ("id", "id asc", "id desc"):
            return cw_error(400, "InvalidObject", f"orderBy {order!r} is not supported by the simulator")
        notes = st.notes(tid)
        return _paged(request, notes[::-1] if order == "id desc" else notes)

    async def store_then_answer(store: Any) -> Response:
        """A note or time-entry POST, once valid: the slow-CW and failed-after-store switches apply to both."""
        if st.switches.note_post_delay_s > 0:
            # Like a busy CW: the record is stored late, whether or not the caller is still waiting.
            await asyncio.sleep(st.switches.note_post_delay_s)
        stored = store()
        if fails_after_store(st.switches):
            return cw_error(500, "UnexpectedError", "An unexpected error has occurred")
        return JSONResponse(stored, status_code=201)

    async def post_note(request: Request, body: Any) -> Response:
        tid = request.path_params["ticket_id"]
        if not isinstance(body, dict):
            return cw_error(400, "InvalidObject", "A JSON object is required")
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            return _invalid("text", "Text is required", "serviceNote")
        flags = {f: body.get(f) is True for f in NOTE_FLAGS}
        if sum(flags.values()) != 1:
            return _invalid("detailDescriptionFlag", "Exactly one of detailDescriptionFlag, internalAnalysisFlag "
                            "and resolutionFlag must be true", "serviceNote")
        return await store_then_answer(lambda: st.add_note(tid, text, flags))

    async def list_all_notes(request: Request, body: Any) -> Response:
        return _paged(request, st.all_notes(request.path_params["ticket_id"]))

    async def post_time_entry(request: Request, body: Any) -> Response:
        if not isinstance(body, dict):
            return cw_error(400, "InvalidObject", "A JSON object is required")
        if body.get("chargeToType") != "ServiceTicket":
            return _invalid("chargeToType", "The simulator charges time to ServiceTicket only", "timeEntry")
        tid = body.get("chargeToId")
        if isinstance(tid, bool) or not isinstance(tid, int) or tid not in st.tickets:
            return _invalid("chargeToId", f"Service ticket {tid!r} was not found", "timeEntry")
        start, end = _cw_time(body.get("timeStart")), _cw_time(body.get("timeEnd"))
        if start is None or end is None:
            return _invalid("timeStart", "timeStart and timeEnd must be ISO 8601 UTC times", "timeEntry")
        if not start < end:
            return _invalid("timeEnd", "timeEnd must be after timeStart", "timeEntry")
        notes = body.get("notes")
        if not isinstance(notes, str) or not notes.strip():
            return _invalid("notes", "Notes are required", "timeEntry")
        flags = {f: body.get(f) is True for f in TIME_ENTRY_FLAGS}
        if sum(flags.values()) != 1:
            return _invalid("addToDetailDescriptionFlag", "Exactly one of addToDetailDescriptionFlag, "
                            "addToInternalAnalysisFlag and addToResolutionFlag must be true", "timeEntry")
        return await store_then_answer(lambda: st.add_time_entry(tid, start, end, notes, flags))

    async def patch_time_entry(request: Request, body: Any) -> Response:
        eid = request.path_params["entry_id"]
        ops = body if isinstance(body, list) else []
        values = [op.get("value") for op in ops if isinstance(op, dict) and op.get("op") == "replace"
                  and str(op.get("path", "")).strip("/") == "notes"]
        if len(values) != 1 or len(ops) != 1 or not isinstance(values[0], str) or not values[0].strip():
            return _invalid("notes", "A JSON Patch replacing notes with a non-empty string is required", "timeEntry")
        entry = st.update_time_entry(eid, values[0])
        if entry is None:
            return cw_error(404, "NotFound", f"TimeEntry with id {eid} was not found")
        return JSONResponse(entry)

    async def patch_note(request: Request, body: Any) -> Response:
        tid, nid = request.path_params["ticket_id"], request.path_params["note_id"]
        ops = body if isinstance(body, list) else []
        texts = [op.get("value") for op in ops if isinstance(op, dict) and op.get("op") == "replace"
                 and str(op.get("path", "")).strip("/") == "text"]
        if len(texts) != 1 or len(ops) != 1 or not isinstance(texts[0], str) or not texts[0].strip():
            return _invalid("text", "A JSON Patch replacing text with a non-empty string is required", "serviceNote")
        note = st.update_note(tid, nid, texts[0])
        if note is None:
            return cw_error(404, "NotFound", f"Note with id {nid} was not found on ticket {tid}")
        return JSONResponse(note)

    async def board_statuses(request: Request, body: Any) -> Response:
        board = st.boards.get(int(request.path_params["board_id"]))
        if board is None:
            return cw_error(404, "NotFound", f"Board with id {request.path_params['board_id']} was not found")
        return _paged(request, sorted(board["statuses"].values(), key=lambda s: s["id"]))

    async def not_found(request: Request, exc: Exception) -> Response:
        return cw_error(404, "NotFound", f"No route matches {request.url.path}")

    routes = [
        Route("/login/companyinfo/{company_id}", company_info),
        api("GET", "system/info", system_info),
        api("GET", "service/tickets/{ticket_id:int}", get_ticket),
        api("PATCH", "service/tickets/{ticket_id:int}", patch_ticket),
        api("GET", "service/tickets/{ticket_id:int}/notes", list_notes),
        api("POST", "service/tickets/{ticket_id:int}/notes", post_note),
        api("PATCH", "service/tickets/{ticket_id:int}/notes/{note_id:int}", patch_note),
        api("GET", "service/tickets/{ticket_id:int}/allNotes", list_all_notes),
        api("POST", "time/entries", post_time_entry),
        api("PATCH", "time/entries/{entry_id:int}", patch_time_entry),
        api("GET", "service/boards/{board_id:int}/statuses", board_statuses),
        *control_routes(st, switch_type=SimulatorSwitches, ticket_json=st.ticket_json,
                        lists={"notes": st.notes, "time-entries": st.time_entries}),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found})


def main(argv: list[str] | None = None) -> None:
    """Run the simulator under uvicorn; credentials come from flags or CW_SIM_* environment variables."""
    parser = simulator_parser(__doc__, port=8123, env_prefix="CW_SIM",
                              credentials=("company-id", "public-key", "private-key", "client-id"))
    args = parser.parse_args(argv)
    creds = SimulatorCredentials(args.company_id, args.public_key, args.private_key, args.client_id)
    serve(build_simulator_app(creds), args, f"ConnectWise simulator for company {creds.company_id!r}")


if __name__ == "__main__":
    main()
