"""An in-memory HaloPSA stand-in (ASGI) for tests and the local demo.

It issues OAuth2 client-credentials tokens at `/auth/token` (checking `?tenant=` when one is configured) and
serves the few API routes the write-back uses under `/api`: a ticket, the ticket statuses, and Actions (listed
with Halo's paging, posted as a JSON array; posting an action's id updates it). Switches inject rate limits,
500s after an action is stored, ignored status changes, slow answers, short-lived and revoked tokens. Control
routes under `/_simulator/` need no auth: bind it to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
from dataclasses import asdict, fields
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from integrations.psa.halopsa_simulator_state import (
    DEFAULT_PAGE_SIZE,
    SEED_STATUSES,
    HaloRecordedRequest,
    HaloSimulatorCredentials,
    HaloSimulatorState,
    HaloSimulatorSwitches,
)

__all__ = ["API_PREFIX", "AUTH_PREFIX", "SEED_STATUSES", "build_halo_simulator_app", "halo_error", "main"]

API_PREFIX = "/api"
AUTH_PREFIX = "/auth"
MAX_HOURS = 24


def halo_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An API error answer as Halo gives it: the message as a JSON string."""
    return JSONResponse(message, status_code=status, headers=headers)


def oauth_error(error: str, description: str, status: int = 400) -> JSONResponse:
    """A token endpoint error in OAuth2's shape."""
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _action_problem(item: dict[str, Any], st: HaloSimulatorState) -> tuple[int, str] | None:
    """Why an action in a POST /Actions body cannot be stored, as (HTTP status, message); None when it can."""
    tid = item.get("ticket_id")
    if not _is_int(tid):
        return 400, "ticket_id is required"
    if tid not in st.tickets:
        return 404, f"Ticket {tid} does not exist"
    note = item.get("note")
    if not isinstance(note, str) or not note.strip():
        return 400, "note is required"
    if "id" in item:  # an update: only the note may change here
        if unknown := sorted(set(item) - {"id", "ticket_id", "note"}):
            return 400, f"The simulator cannot update {', '.join(unknown)}"
        if not _is_int(item["id"]):
            return 400, "id must be an integer"
        if all(action["id"] != item["id"] for action in st.actions(tid)):
            return 404, f"Action {item['id']} does not exist on ticket {tid}"
        return None
    if not isinstance(item.get("hiddenfromuser", False), bool):
        return 400, "hiddenfromuser must be true or false"
    if not isinstance(item.get("outcome", ""), str):
        return 400, "outcome must be text"
    hours = item.get("timetaken", 0)
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not 0 <= hours <= MAX_HOURS:
        return 400, f"timetaken must be a number of hours from 0 to {MAX_HOURS}"
    status = item.get("new_status")
    if status is not None and (not _is_int(status) or status not in st.statuses):
        return 400, f"new_status {status!r} is not a ticket status"
    return None


def _page(request: Request, items: list[dict[str, Any]]) -> list[dict[str, Any]] | Response:
    """One page of `items` when `pageinate=true` (page_no from 1, page_size), else all of them."""
    query = request.query_params
    if query.get("pageinate", "").lower() != "true":
        return items
    try:
        size, number = int(query.get("page_size", str(DEFAULT_PAGE_SIZE))), int(query.get("page_no", "1"))
    except ValueError:
        return halo_error(400, "page_size and page_no must be integers")
    if size < 1 or number < 1:
        return halo_error(400, "page_size and page_no must be positive")
    return items[(number - 1) * size : number * size]


def build_halo_simulator_app(state: HaloSimulatorState) -> Starlette:
    """The simulator as a Starlette app serving the state's one instance."""
    st, credentials = state, state.credentials

    async def record(request: Request, route: str, body: Any) -> HaloRecordedRequest:
        entry = HaloRecordedRequest(request.method, route, request.url.path, dict(request.query_params),
                                    {k.lower(): v for k, v in request.headers.items()}, body)
        st.requests.append(entry)
        if st.switches.delay_s > 0:
            await asyncio.sleep(st.switches.delay_s)
        return entry

    def gate(request: Request) -> Response | None:
        """Rate limit, then the bearer token: what every API call goes through first."""
        sw = st.switches
        if sw.rate_limit_next > 0:
            sw.rate_limit_next -= 1
            return halo_error(429, "Too many requests, please retry later",
                              headers={"Retry-After": str(sw.retry_after_s)})
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not st.token_valid(token.strip()):
            return Response(status_code=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return None

    def api(method: str, path: str, handler: Any) -> Route:
        route = f"{method} {path.replace('{ticket_id:int}', '{id}')}"  # e.g. "GET Tickets/{id}"

        async def endpoint(request: Request) -> Response:
            try:
                body = await request.json() if await request.body() else None
            except ValueError:
                body = None
            entry = await record(request, route, body)
            response = gate(request)
            if response is None:
                response = await handler(request, body)
            entry.status = response.status_code
            return response

        return Route(f"{API_PREFIX}/{path}", endpoint, methods=[method])

    async def token(request: Request) -> Response:
        form = {k: v[-1] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        # The log keeps what was asked, never the secret it was asked with.
        entry = await record(request, "POST token", {**form, **({"client_secret": "***"} if form.get(
            "client_secret") else {})})
        st.token_requests += 1
        response = grant(request, form)
        entry.status = response.status_code
        return response

    def grant(request: Request, form: dict[str, str]) -> Response:
        if credentials.tenant is not None and request.query_params.get("tenant") != credentials.tenant:
            return oauth_error("invalid_request", "The tenant is missing or not known")
        if form.get("grant_type") != "client_credentials":
            return oauth_error("unsupported_grant_type", "Only client_credentials is supported")
        valid = (secrets.compare_digest(form.get("client_id", "").encode(), credentials.client_id.encode())
                 & secrets.compare_digest(form.get("client_secret", "").encode(), credentials.client_secret.encode()))
        if not valid:
            return oauth_error("invalid_client", "The client ID or client secret is not valid")
        if "all" not in form.get("scope", "").split():
            return oauth_error("invalid_scope", "The scope must include all")
        access_token, lifetime = st.issue_token()
        return JSONResponse({"access_token": access_token, "token_type": "Bearer", "expires_in": lifetime,
                             "scope": "all"})

    async def get_ticket(request: Request, body: Any) -> Response:
        tid = request.path_params["ticket_id"]
        if tid not in st.tickets:
            return halo_error(404, f"Ticket {tid} does not exist")
        return JSONResponse(st.ticket_json(tid))

    async def list_statuses(request: Request, body: Any) -> Response:
        kind = request.query_params.get("type", "ticket")
        return JSONResponse([s for s in st.statuses.values() if s["type"] == kind])

    async def list_actions(request: Request, body: Any) -> Response:
        raw = request.query_params.get("ticket_id", "")
        if not raw.isdigit():
            return halo_error(400, "ticket_id is required")
        if int(raw) not in st.tickets:
            return halo_error(404, f"Ticket {raw} does not exist")
        actions = st.actions(int(raw))[::-1]  # newest first, as Halo lists them
        page = _page(request, actions)
        if isinstance(page, Response):
            return page
        return JSONResponse({"record_count": len(actions), "actions": page})

    async def post_actions(request: Request, body: Any) -> Response:
        if not isinstance(body, list) or not body or not all(isinstance(item, dict) for item in body):
            return halo_error(400, "A JSON array of actions is required")
        for item in body:
            if problem := _action_problem(item, st):
                return halo_error(*problem)
        stored = []
        for item in body:
            # Every update's action was found above, so none is None.
            stored.append(st.update_action(item["ticket_id"], item["id"], item["note"]) if "id" in item
                          else st.add_action(item["ticket_id"], item))
        if st.switches.fail_after_note_store_next > 0:
            st.switches.fail_after_note_store_next -= 1
            return halo_error(500, "An error occurred while processing your request")
        if len(stored) == 1 and not st.switches.actions_answer_array:
            return JSONResponse(stored[0], status_code=201)
        return JSONResponse(stored, status_code=201)

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
        return JSONResponse(st.ticket_json(tid))

    async def control_switches(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        known = {f.name for f in fields(HaloSimulatorSwitches)}
        if not isinstance(body, dict) or not set(body) <= known:
            return JSONResponse({"error": f"a JSON object with keys among {sorted(known)}"}, status_code=400)
        for name, value in body.items():
            kind = type(getattr(HaloSimulatorSwitches(), name))
            # bool is an int in Python, so check it apart; ints are fine where a float is expected.
            accepted = isinstance(value, bool) if kind is bool else (
                not isinstance(value, bool) and isinstance(value, int if kind is int else int | float))
            if not accepted:
                return JSONResponse({"error": f"{name} must be a {kind.__name__}"}, status_code=400)
        for name, value in body.items():
            if name == "expire_tokens_now":
                if value:
                    st.expire_tokens()  # an action, not a setting: the switch itself stays off
                continue
            setattr(st.switches, name, type(getattr(st.switches, name))(value))
        return JSONResponse(asdict(st.switches))

    async def control_actions(request: Request) -> Response:
        tid = request.path_params["ticket_id"]
        if tid not in st.tickets:
            return JSONResponse({"error": f"no ticket {tid}"}, status_code=404)
        return JSONResponse(st.actions(tid))

    async def not_found(request: Request, exc: Exception) -> Response:
        return halo_error(404, f"No route matches {request.url.path}")

    routes = [
        Route(f"{AUTH_PREFIX}/token", token, methods=["POST"]),
        api("GET", "Tickets/{ticket_id:int}", get_ticket),
        api("GET", "Status", list_statuses),
        api("GET", "Actions", list_actions),
        api("POST", "Actions", post_actions),
        Route("/_simulator/state", control_state),
        Route("/_simulator/tickets/{ticket_id:int}/status", control_status, methods=["POST"]),
        Route("/_simulator/switches", control_switches, methods=["POST"]),
        Route("/_simulator/tickets/{ticket_id:int}/actions", control_actions),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found})


def main(argv: list[str] | None = None) -> None:
    """Run the simulator under uvicorn; credentials come from flags or HALO_SIM_* environment variables."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8125)
    for flag in ("client-id", "client-secret"):
        env = f"HALO_SIM_{flag.upper().replace('-', '_')}"
        # Required unless the environment supplies it: no credential has a default value here.
        value = os.environ.get(env) or None
        parser.add_argument(f"--{flag}", default=value, required=value is None, help=f"or ${env}")
    parser.add_argument("--tenant", default=os.environ.get("HALO_SIM_TENANT") or None,
                        help="require ?tenant= on token requests (or $HALO_SIM_TENANT)")
    args = parser.parse_args(argv)
    creds = HaloSimulatorCredentials(args.client_id, args.client_secret, args.tenant)
    print(f"HaloPSA simulator for client {creds.client_id!r} on http://{args.host}:{args.port} (API at "
          f"{API_PREFIX}, tokens at {AUTH_PREFIX}/token, state at /_simulator/state)", flush=True)
    uvicorn.run(build_halo_simulator_app(HaloSimulatorState(creds)), host=args.host, port=args.port,
                log_level="warning")


if __name__ == "__main__":
    main()
