"""An in-memory Autotask PSA stand-in (ASGI) for tests and the local demo.

It serves zone discovery (`/atservicesrest/...`) and one zone (`/zone5/ATServicesRest/V1.0/...`, a path of its
own so a test can tell discovery happened), checks the three auth headers, and refuses invalid requests the
way Autotask does: HTTP 500 with `{"errors": [...]}`. Switches inject rate limits, bare 500s after a note or
a time entry is stored, 429s on time entries, ignored status changes, error answers and slow answers. Control
routes under `/_simulator/` need no auth: bind it to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from integrations.psa.autotask_simulator_state import (
    API_USER_RESOURCE_ID,
    AutotaskRecordedRequest,
    AutotaskSimulatorCredentials,
    AutotaskSimulatorState,
    AutotaskSimulatorSwitches,
)
from integrations.psa.client_common import is_int, parse_time
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

DISCOVERY_PREFIX = "/atservicesrest"
ZONE_PREFIX = "/zone5/ATServicesRest"
API_PREFIX = f"{ZONE_PREFIX}/V1.0"
TITLE_MAX, DESCRIPTION_MAX, SUMMARY_NOTES_MAX = 250, 32000, 8000
PUBLISH_VALUES = (1, 2, 4)  # All Autotask Users, Internal Project Team, Internal & Co-Managed


def at_errors(status: int, *messages: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error answer in Autotask's shape."""
    return JSONResponse({"errors": list(messages)}, status_code=status, headers=headers)


def _invalid(*messages: str) -> JSONResponse:
    # Autotask refuses an invalid entity with a 500, not a 4xx.
    return at_errors(500, *messages)


def _text_problem(body: dict[str, Any], name: str, limit: int) -> str | None:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        return f"{name} is required"
    return f"{name} is longer than {limit} characters" if len(value) > limit else None


def _query_ticket_id(raw: str | None) -> int | str:
    """The ticket id a `TimeEntries/query` search filters on, else why the search is not one the simulator takes."""
    try:
        search = json.loads(raw or "")
    except ValueError:
        return "search must be a JSON object"
    conditions = search.get("filter") if isinstance(search, dict) else None
    if not isinstance(conditions, list) or not conditions:
        return "search must have a filter"
    for condition in conditions:
        if (isinstance(condition, dict) and condition.get("op") == "eq" and condition.get("field") == "ticketID"
                and is_int(condition.get("value"))):
            return int(condition["value"])
    return "the simulator takes only a filter {\"op\": \"eq\", \"field\": \"ticketID\", \"value\": <id>}"


def build_autotask_simulator_app(state: AutotaskSimulatorState) -> Starlette:
    """The simulator as a Starlette app: discovery plus the zone of the state's one tenant."""
    st, credentials = state, state.credentials

    async def record_plain(request: Request, route: str) -> None:
        await record(st, request, route, await read_json(request), AutotaskRecordedRequest)

    def gate(request: Request) -> Response | int:
        """Rate limit, the three auth headers, impersonation, injected errors; else the acting resource's id."""
        sw = st.switches
        if (retry_after := rate_limited(sw)) is not None:
            return at_errors(429, "The request threshold has been exceeded; retry later", headers=retry_after)
        h = request.headers
        valid = (
            secrets.compare_digest(h.get("apiintegrationcode", "").encode(), credentials.integration_code.encode())
            & secrets.compare_digest(h.get("username", "").lower().encode(), credentials.username.lower().encode())
            & secrets.compare_digest(h.get("secret", "").encode(), credentials.secret.encode())
        )
        if not valid:
            return at_errors(401, "Authentication failed: the ApiIntegrationCode, UserName or Secret is not valid")
        acting = API_USER_RESOURCE_ID
        if "impersonationresourceid" in h:
            raw = h["impersonationresourceid"]
            if not raw.isdigit() or int(raw) not in st.resources:
                return _invalid(f"ImpersonationResourceId {raw} is not an active resource")
            acting = int(raw)
        if sw.reject_next_with_errors:
            messages, sw.reject_next_with_errors = sw.reject_next_with_errors, []
            return _invalid(*messages)
        return acting

    def api(method: str, path: str, handler: Any) -> Route:
        route = f"{method} {path.replace('{ticket_id:int}', '{id}')}"  # e.g. "POST Tickets/{id}/Notes"

        async def answer(request: Request, body: Any) -> Response:
            acting = gate(request)
            tid = request.path_params.get("ticket_id")
            if isinstance(acting, Response):
                return acting
            if tid is not None and tid not in st.tickets and path != "Tickets/{ticket_id:int}":
                return at_errors(404, f"Ticket {tid} was not found")
            return await handler(request, body, acting)

        return Route(f"{API_PREFIX}/{path}", recorded(st, route, AutotaskRecordedRequest, answer), methods=[method])

    async def version_information(request: Request) -> Response:
        await record_plain(request, "GET versioninformation")
        return JSONResponse({"apiVersions": list(st.api_versions)})

    async def zone_information(request: Request) -> Response:
        await record_plain(request, "GET zoneInformation")
        user = request.query_params.get("user", "")
        if user.lower() != credentials.username.lower():
            return _invalid("Zone information could not be determined")
        base = str(request.base_url).rstrip("/")
        return JSONResponse({"zoneName": "Simulated Zone 5", "url": f"{base}{ZONE_PREFIX}/", "webUrl": f"{base}/ww5/",
                             "ci": 5})

    async def ticket_fields(request: Request, body: Any, acting: int) -> Response:
        return JSONResponse({"fields": st.picklist_fields()})

    async def get_ticket(request: Request, body: Any, acting: int) -> Response:
        ticket = st.tickets.get(request.path_params["ticket_id"])
        return JSONResponse({"item": dict(ticket) if ticket is not None else None})  # Autotask: 200 with a null item

    async def patch_ticket(request: Request, body: Any, acting: int) -> Response:
        if not isinstance(body, dict) or not is_int(body.get("id")):
            return _invalid("An entity with an integer id is required")
        if body["id"] not in st.tickets:
            return at_errors(404, f"Ticket {body['id']} was not found")
        if unknown := sorted(set(body) - {"id", "status"}):
            return _invalid(f"The simulator cannot update {', '.join(unknown)}")
        if "status" in body:
            status = st.statuses.get(body["status"]) if is_int(body["status"]) else None
            if status is None or not status["isActive"]:
                return _invalid(f"Value {body['status']!r} is not a valid Status")
            if not st.switches.ignore_status_change:
                st.tickets[body["id"]]["status"] = body["status"]
        return JSONResponse({"itemId": body["id"]})

    async def list_notes(request: Request, body: Any, acting: int) -> Response:
        tid = request.path_params["ticket_id"]
        page = int(request.query_params["page"]) if request.query_params.get("page", "").isdigit() else 1
        size = st.notes_page_size
        notes = st.notes(tid)
        items = notes[(page - 1) * size : page * size] if page >= 1 else []
        base = (st.next_page_base or str(request.base_url)).rstrip("/")

        def page_url(n: int) -> str:
            return f"{base}{API_PREFIX}/Tickets/{tid}/Notes?page={n}"

        return JSONResponse({"items": items, "pageDetails": {
            "count": len(items), "requestCount": size,
            "prevPageUrl": page_url(page - 1) if page > 1 else None,
            "nextPageUrl": page_url(page + 1) if page * size < len(notes) else None,
        }})

    async def post_note(request: Request, body: Any, acting: int) -> Response:
        tid = request.path_params["ticket_id"]
        if not isinstance(body, dict):
            return _invalid("A TicketNote object is required")
        problems = [p for p in (_text_problem(body, "title", TITLE_MAX),
                                _text_problem(body, "description", DESCRIPTION_MAX)) if p]
        if not is_int(body.get("noteType")) or body["noteType"] < 1:
            problems.append("noteType must be a NoteType picklist value")
        if body.get("publish") not in PUBLISH_VALUES or not is_int(body.get("publish")):
            problems.append(f"publish must be one of {list(PUBLISH_VALUES)}")
        if problems:
            return _invalid(*problems)
        note = st.add_note(tid, body["title"], body["description"], body["noteType"], body["publish"], acting)
        if fails_after_store(st.switches):
            return JSONResponse({"Message": "An error has occurred."}, status_code=500)  # ASP.NET's bare 500
        return JSONResponse({"itemId": note["id"]})

    async def patch_note(request: Request, body: Any, acting: int) -> Response:
        tid = request.path_params["ticket_id"]
        if not isinstance(body, dict) or not is_int(body.get("id")):
            return _invalid("A TicketNote with an integer id is required")
        if unknown := sorted(set(body) - {"id", "description"}):
            return _invalid(f"The simulator cannot update {', '.join(unknown)}")
        if problem := _text_problem(body, "description", DESCRIPTION_MAX):
            return _invalid(problem)
        if not st.update_note(tid, body["id"], body["description"]):
            return at_errors(404, f"TicketNote {body['id']} was not found on ticket {tid}")
        return JSONResponse({"itemId": body["id"]})

    async def query_time_entries(request: Request, body: Any, acting: int) -> Response:
        tid = _query_ticket_id(request.query_params.get("search"))
        if isinstance(tid, str):
            return _invalid(tid)
        page = int(request.query_params["page"]) if request.query_params.get("page", "").isdigit() else 1
        size, entries = st.time_entries_page_size, st.ticket_time_entries(tid)
        items = entries[(page - 1) * size : page * size] if page >= 1 else []
        base = (st.next_page_base or str(request.base_url)).rstrip("/")
        query = f"search={request.query_params['search']}"
        more = page * size < len(entries)
        return JSONResponse({"items": items, "pageDetails": {
            "count": len(items), "requestCount": size, "prevPageUrl": None,
            "nextPageUrl": f"{base}{API_PREFIX}/TimeEntries/query?{query}&page={page + 1}" if more else None,
        }})

    async def post_time_entry(request: Request, body: Any, acting: int) -> Response:
        if st.switches.rate_limit_time_entry_next > 0:
            st.switches.rate_limit_time_entry_next -= 1
            return at_errors(429, "The request threshold has been exceeded; retry later",
                             headers={"Retry-After": str(st.switches.retry_after_s)})
        if not isinstance(body, dict):
            return _invalid("A TimeEntry object is required")
        problems = []
        if not is_int(body.get("ticketID")) or body["ticketID"] not in st.tickets:
            problems.append(f"ticketID {body.get('ticketID')!r} is not an existing ticket")
        hours = body.get("hoursWorked")
        if not isinstance(hours, int | float) or isinstance(hours, bool) or not 0 < hours <= 24:
            problems.append("hoursWorked must be greater than 0 and no more than 24")
        if problem := _text_problem(body, "summaryNotes", SUMMARY_NOTES_MAX):
            problems.append(problem)
        if parse_time(body.get("dateWorked")) is None:
            problems.append("dateWorked is required")
        start, end = parse_time(body.get("startDateTime")), parse_time(body.get("endDateTime"))
        if (start is None) != (end is None) or (start and end and end <= start):
            problems.append("startDateTime and endDateTime go together, the end after the start")
        resource = body.get("resourceID", acting)  # real Autotask wants resourceID; the API user's own is assumed
        if not is_int(resource) or resource not in st.resources:
            problems.append(f"resourceID {resource!r} is not an active resource")
        if problems:
            return _invalid(*problems)
        item_id = st.add_time_entry({**body, "resourceID": resource})
        if st.switches.fail_after_time_entry_store_next > 0:
            st.switches.fail_after_time_entry_store_next -= 1
            return JSONResponse({"Message": "An error has occurred."}, status_code=500)  # stored, answer lost
        return JSONResponse({"itemId": item_id})

    async def not_found(request: Request, exc: Exception) -> Response:
        return at_errors(404, f"No route matches {request.url.path}")

    routes = [
        Route(f"{DISCOVERY_PREFIX}/versioninformation", version_information),
        Route(f"{DISCOVERY_PREFIX}/v1.0/zoneInformation", zone_information),
        api("GET", "Tickets/entityInformation/fields", ticket_fields),
        api("GET", "Tickets/{ticket_id:int}", get_ticket),
        api("PATCH", "Tickets", patch_ticket),
        api("GET", "Tickets/{ticket_id:int}/Notes", list_notes),
        api("POST", "Tickets/{ticket_id:int}/Notes", post_note),
        api("PATCH", "Tickets/{ticket_id:int}/Notes", patch_note),
        api("GET", "TimeEntries/query", query_time_entries),
        api("POST", "TimeEntries", post_time_entry),
        *control_routes(st, switch_type=AutotaskSimulatorSwitches, ticket_json=lambda tid: st.tickets[tid],
                        lists={"notes": st.notes, "time_entries": st.ticket_time_entries}),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found})


def main(argv: list[str] | None = None) -> None:
    """Run the simulator under uvicorn; credentials come from flags or AT_SIM_* environment variables."""
    parser = simulator_parser(__doc__, port=8124, env_prefix="AT_SIM",
                              credentials=("username", "secret", "integration-code"))
    args = parser.parse_args(argv)
    creds = AutotaskSimulatorCredentials(args.username, args.secret, args.integration_code)
    app = build_autotask_simulator_app(AutotaskSimulatorState(creds))
    serve(app, args, f"Autotask simulator for API user {creds.username!r}",
          [f"discovery at {DISCOVERY_PREFIX}", f"zone at {ZONE_PREFIX}"])


if __name__ == "__main__":
    main()
