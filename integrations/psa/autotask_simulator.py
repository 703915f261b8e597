"""An in-memory Autotask PSA stand-in (ASGI) for tests and the local demo.

It serves zone discovery (`/atservicesrest/...`) and one zone (`/zone5/ATServicesRest/V1.0/...`, a path of its
own so a test can tell discovery happened), checks the three auth headers, and refuses invalid requests the
way Autotask does: HTTP 500 with `{"errors": [...]}`. Switches inject rate limits, bare 500s after a note is
stored, ignored status changes, error answers and slow answers. Control routes under `/_simulator/` need no
auth: bind it to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
from dataclasses import asdict, fields
from datetime import datetime
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


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text_problem(body: dict[str, Any], name: str, limit: int) -> str | None:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        return f"{name} is required"
    return f"{name} is longer than {limit} characters" if len(value) > limit else None


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def build_autotask_simulator_app(state: AutotaskSimulatorState) -> Starlette:
    """The simulator as a Starlette app: discovery plus the zone of the state's one tenant."""
    st, credentials = state, state.credentials

    async def record(request: Request, route: str) -> AutotaskRecordedRequest:
        try:
            body = await request.json() if await request.body() else None
        except ValueError:
            body = None
        entry = AutotaskRecordedRequest(request.method, route, request.url.path, dict(request.query_params),
                                        {k.lower(): v for k, v in request.headers.items()}, body)
        st.requests.append(entry)
        if st.switches.delay_s > 0:
            await asyncio.sleep(st.switches.delay_s)
        return entry

    def gate(request: Request) -> Response | int:
        """Rate limit, the three auth headers, impersonation, injected errors; else the acting resource's id."""
        sw = st.switches
        if sw.rate_limit_next > 0:
            sw.rate_limit_next -= 1
            return at_errors(429, "The request threshold has been exceeded; retry later",
                             headers={"Retry-After": str(sw.retry_after_s)})
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

        async def endpoint(request: Request) -> Response:
            entry = await record(request, route)
            acting = gate(request)
            tid = request.path_params.get("ticket_id")
            if isinstance(acting, Response):
                response = acting
            elif tid is not None and tid not in st.tickets and path != "Tickets/{ticket_id:int}":
                response = at_errors(404, f"Ticket {tid} was not found")
            else:
                response = await handler(request, entry.body, acting)
            entry.status = response.status_code
            return response

        return Route(f"{API_PREFIX}/{path}", endpoint, methods=[method])

    async def version_information(request: Request) -> Response:
        await record(request, "GET versioninformation")
        return JSONResponse({"apiVersions": list(st.api_versions)})

    async def zone_information(request: Request) -> Response:
        await record(request, "GET zoneInformation")
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
        if not isinstance(body, dict) or not _is_int(body.get("id")):
            return _invalid("An entity with an integer id is required")
        if body["id"] not in st.tickets:
            return at_errors(404, f"Ticket {body['id']} was not found")
        if unknown := sorted(set(body) - {"id", "status"}):
            return _invalid(f"The simulator cannot update {', '.join(unknown)}")
        if "status" in body:
            status = st.statuses.get(body["status"]) if _is_int(body["status"]) else None
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
        if not _is_int(body.get("noteType")) or body["noteType"] < 1:
            problems.append("noteType must be a NoteType picklist value")
        if body.get("publish") not in PUBLISH_VALUES or not _is_int(body.get("publish")):
            problems.append(f"publish must be one of {list(PUBLISH_VALUES)}")
        if problems:
            return _invalid(*problems)
        note = st.add_note(tid, body["title"], body["description"], body["noteType"], body["publish"], acting)
        if st.switches.fail_after_note_store_next > 0:
            st.switches.fail_after_note_store_next -= 1
            return JSONResponse({"Message": "An error has occurred."}, status_code=500)  # ASP.NET's bare 500
        return JSONResponse({"itemId": note["id"]})

    async def patch_note(request: Request, body: Any, acting: int) -> Response:
        tid = request.path_params["ticket_id"]
        if not isinstance(body, dict) or not _is_int(body.get("id")):
            return _invalid("A TicketNote with an integer id is required")
        if unknown := sorted(set(body) - {"id", "description"}):
            return _invalid(f"The simulator cannot update {', '.join(unknown)}")
        if problem := _text_problem(body, "description", DESCRIPTION_MAX):
            return _invalid(problem)
        if not st.update_note(tid, body["id"], body["description"]):
            return at_errors(404, f"TicketNote {body['id']} was not found on ticket {tid}")
        return JSONResponse({"itemId": body["id"]})

    async def post_time_entry(request: Request, body: Any, acting: int) -> Response:
        if not isinstance(body, dict):
            return _invalid("A TimeEntry object is required")
        problems = []
        if not _is_int(body.get("ticketID")) or body["ticketID"] not in st.tickets:
            problems.append(f"ticketID {body.get('ticketID')!r} is not an existing ticket")
        hours = body.get("hoursWorked")
        if not isinstance(hours, int | float) or isinstance(hours, bool) or not 0 < hours <= 24:
            problems.append("hoursWorked must be greater than 0 and no more than 24")
        if problem := _text_problem(body, "summaryNotes", SUMMARY_NOTES_MAX):
            problems.append(problem)
        if _when(body.get("dateWorked")) is None:
            problems.append("dateWorked is required")
        start, end = _when(body.get("startDateTime")), _when(body.get("endDateTime"))
        if (start is None) != (end is None) or (start and end and end <= start):
            problems.append("startDateTime and endDateTime go together, the end after the start")
        resource = body.get("resourceID", acting)  # real Autotask wants resourceID; the API user's own is assumed
        if not _is_int(resource) or resource not in st.resources:
            problems.append(f"resourceID {resource!r} is not an active resource")
        if problems:
            return _invalid(*problems)
        return JSONResponse({"itemId": st.add_time_entry({**body, "resourceID": resource})})

    async def control_state(request: Request) -> Response:
        return JSONResponse(st.snapshot())

    async def control_status(request: Request) -> Response:
        tid = int(request.path_params["ticket_id"])
        try:
            body = await request.json()
            st.set_status(tid, int(body["status_id"]))
        except KeyError:
            return JSONResponse({"error": f"no ticket {tid} or no status_id given"}, status_code=404)
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(st.tickets[tid])

    async def control_switches(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        known = {f.name for f in fields(AutotaskSimulatorSwitches)}
        if not isinstance(body, dict) or not set(body) <= known:
            return JSONResponse({"error": f"a JSON object with keys among {sorted(known)}"}, status_code=400)
        for name, value in body.items():
            kind = type(getattr(AutotaskSimulatorSwitches(), name))
            # bool is an int in Python, so check it apart; ints are fine where a float is expected.
            if kind is list:
                accepted = isinstance(value, list) and all(isinstance(v, str) for v in value)
            elif kind is bool:
                accepted = isinstance(value, bool)
            else:
                accepted = not isinstance(value, bool) and isinstance(value, int if kind is int else int | float)
            if not accepted:
                return JSONResponse({"error": f"{name} must be a {kind.__name__}"}, status_code=400)
            setattr(st.switches, name, list(value) if kind is list else kind(value))
        return JSONResponse(asdict(st.switches))

    async def control_notes(request: Request) -> Response:
        tid = request.path_params["ticket_id"]
        if tid not in st.tickets:
            return JSONResponse({"error": f"no ticket {tid}"}, status_code=404)
        return JSONResponse(st.notes(tid))

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
        api("POST", "TimeEntries", post_time_entry),
        Route("/_simulator/state", control_state),
        Route("/_simulator/tickets/{ticket_id:int}/status", control_status, methods=["POST"]),
        Route("/_simulator/switches", control_switches, methods=["POST"]),
        Route("/_simulator/tickets/{ticket_id:int}/notes", control_notes),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found})


def main(argv: list[str] | None = None) -> None:
    """Run the simulator under uvicorn; credentials come from flags or AT_SIM_* environment variables."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8124)
    for flag in ("username", "secret", "integration-code"):
        env = f"AT_SIM_{flag.upper().replace('-', '_')}"
        # Required unless the environment supplies it: no credential has a default value here.
        value = os.environ.get(env) or None
        parser.add_argument(f"--{flag}", default=value, required=value is None, help=f"or ${env}")
    args = parser.parse_args(argv)
    creds = AutotaskSimulatorCredentials(args.username, args.secret, args.integration_code)
    print(f"Autotask simulator for API user {creds.username!r} on http://{args.host}:{args.port} (discovery at "
          f"{DISCOVERY_PREFIX}, zone at {ZONE_PREFIX}, state at /_simulator/state)", flush=True)
    app = build_autotask_simulator_app(AutotaskSimulatorState(creds))
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
