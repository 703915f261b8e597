"""An in-memory HaloPSA stand-in (ASGI) for tests and the local demo.

It issues OAuth2 client-credentials tokens at `/auth/token` (checking `?tenant=` when one is configured) and
serves the few API routes the write-back uses under `/api`: a ticket, the ticket statuses, and Actions (listed
with Halo's paging, posted as a JSON array; posting an action's id updates it). Switches inject rate limits,
500s after an action is stored, ignored status changes, slow answers, short-lived and revoked tokens. Control
routes under `/_simulator/` need no auth: bind it to 127.0.0.1 only.
"""

from __future__ import annotations

import os
import secrets
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from integrations.psa.client_common import is_int
from integrations.psa.halopsa_simulator_state import (
    DEFAULT_PAGE_SIZE,
    SEED_STATUSES,
    HaloRecordedRequest,
    HaloSimulatorCredentials,
    HaloSimulatorState,
    HaloSimulatorSwitches,
)
from integrations.psa.simulator_common import (
    control_routes,
    fails_after_store,
    rate_limited,
    record,
    recorded,
    serve,
    simulator_parser,
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


def _action_problem(item: dict[str, Any], st: HaloSimulatorState) -> tuple[int, str] | None:
    """Why an action in a POST /Actions body cannot be stored, as (HTTP status, message); None when it can."""
    tid = item.get("ticket_id")
    if not is_int(tid):
        return 400, "ticket_id is required"
    if tid not in st.tickets:
        return 404, f"Ticket {tid} does not exist"
    note = item.get("note")
    if not isinstance(note, str) or not note.strip():
        return 400, "note is required"
    if "id" in item:  # an update: only the note may change here
        if unknown := sorted(set(item) - {"id", "ticket_id", "note"}):
            return 400, f"The simulator cannot update {', '.join(unknown)}"
        if not is_int(item["id"]):
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
    if status is not None and (not is_int(status) or status not in st.statuses):
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

    def gate(request: Request) -> Response | None:
        """Rate limit, then the bearer token: what every API call goes through first."""
        if (retry_after := rate_limited(st.switches)) is not None:
            return halo_error(429, "Too many requests, please retry later", headers=retry_after)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not st.token_valid(token.strip()):
            return Response(status_code=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return None

    def api(method: str, path: str, handler: Any) -> Route:
        route = f"{method} {path.replace('{ticket_id:int}', '{id}')}"  # e.g. "GET Tickets/{id}"

        async def answer(request: Request, body: Any) -> Response:
            response = gate(request)
            return response if response is not None else await handler(request, body)

        return Route(f"{API_PREFIX}/{path}", recorded(st, route, HaloRecordedRequest, answer), methods=[method])

    async def token(request: Request) -> Response:
        form = {k: v[-1] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        # The log keeps what was asked, never the secret it was asked with.
        entry = await record(st, request, "POST token", {**form, **({"client_secret": "***"} if form.get(
            "client_secret") else {})}, HaloRecordedRequest)
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
        if fails_after_store(st.switches):
            return halo_error(500, "An error occurred while processing your request")
        if len(stored) == 1 and not st.switches.actions_answer_array:
            return JSONResponse(stored[0], status_code=201)
        return JSONResponse(stored, status_code=201)

    async def not_found(request: Request, exc: Exception) -> Response:
        return halo_error(404, f"No route matches {request.url.path}")

    routes = [
        Route(f"{AUTH_PREFIX}/token", token, methods=["POST"]),
        api("GET", "Tickets/{ticket_id:int}", get_ticket),
        api("GET", "Status", list_statuses),
        api("GET", "Actions", list_actions),
        api("POST", "Actions", post_actions),
        # expire_tokens_now is an action, not a setting: the switch itself stays off.
        *control_routes(st, switch_type=HaloSimulatorSwitches, ticket_json=st.ticket_json,
                        lists={"actions": st.actions}, actions={"expire_tokens_now": st.expire_tokens},
                        check_all_first=True),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found})


def main(argv: list[str] | None = None) -> None:
    """Run the simulator under uvicorn; credentials come from flags or HALO_SIM_* environment variables."""
    parser = simulator_parser(__doc__, port=8125, env_prefix="HALO_SIM", credentials=("client-id", "client-secret"))
    parser.add_argument("--tenant", default=os.environ.get("HALO_SIM_TENANT") or None,
                        help="require ?tenant= on token requests (or $HALO_SIM_TENANT)")
    args = parser.parse_args(argv)
    creds = HaloSimulatorCredentials(args.client_id, args.client_secret, args.tenant)
    app = build_halo_simulator_app(HaloSimulatorState(creds))
    serve(app, args, f"HaloPSA simulator for client {creds.client_id!r}",
          [f"API at {API_PREFIX}", f"tokens at {AUTH_PREFIX}/token"])


if __name__ == "__main__":
    main()
