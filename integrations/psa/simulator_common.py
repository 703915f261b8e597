"""What the three PSA simulators (ConnectWise, Autotask, HaloPSA) share: the request log, the fault switches they all
have (slow answers, 429 with Retry-After, a failure after storing, an ignored status change), the `/_simulator/`
control routes and the uvicorn `main()`. Each provider's routes, auth and error shapes stay in its own module.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Generic, Protocol, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

CONTROL_PREFIX = "/_simulator"


@dataclass
class RecordedRequest:
    """One request the simulator received (headers lower-cased)."""

    method: str
    route: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any = None
    status: int | None = None


@dataclass
class FaultSwitches:
    """The faults every simulator can inject (each adds its own); counters count down as calls consume them."""

    ignore_status_change: bool = False  # a status change answers as applied but is not (a workflow rule)
    rate_limit_next: int = 0  # the next N API calls answer 429
    retry_after_s: int = 1  # the Retry-After those 429s carry
    fail_after_note_store_next: int = 0  # the next N note POSTs store the note, then answer 500
    delay_s: float = 0.0  # sleep before answering any route but the control routes


RequestT = TypeVar("RequestT", bound=RecordedRequest)


class RequestLog(Generic[RequestT]):
    """The log of requests a simulator's state keeps, and the views of it tests read."""

    requests: list[RequestT]

    def requests_to(self, route: str) -> list[RequestT]:
        """Requests received for a route, e.g. `POST Actions` or `GET service/tickets/{id}`."""
        return [r for r in self.requests if r.route == route]

    def route_counts(self) -> dict[str, int]:
        """How many requests each route received."""
        return dict(Counter(r.route for r in self.requests))


class SimState(Protocol):
    """What the shared routes need of a simulator's state."""

    @property
    def switches(self) -> FaultSwitches: ...

    @property
    def requests(self) -> list[Any]: ...

    @property
    def tickets(self) -> Mapping[int, Any]: ...

    def set_status(self, ticket_id: int, status_id: int) -> None: ...

    def snapshot(self) -> dict[str, Any]: ...


async def read_json(request: Request) -> Any:
    """The request's JSON body; None when it has none or it is not JSON."""
    try:
        return await request.json() if await request.body() else None
    except ValueError:
        return None


async def record(st: SimState, request: Request, route: str, body: Any,
                 entry_type: type[RequestT]) -> RequestT:
    """Log a request (as `route`, with `body`), then sleep the `delay_s` switch."""
    entry = entry_type(request.method, route, request.url.path, dict(request.query_params),
                       {k.lower(): v for k, v in request.headers.items()}, body)
    st.requests.append(entry)
    if st.switches.delay_s > 0:
        await asyncio.sleep(st.switches.delay_s)
    return entry


Answer = Callable[[Request, Any], Awaitable[Response]]


def recorded(st: SimState, route: str, entry_type: type[RecordedRequest],
             answer: Answer) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint that logs the request, answers it (given its JSON body) and logs the answer's status."""

    async def endpoint(request: Request) -> Response:
        body = await read_json(request)
        entry = await record(st, request, route, body, entry_type)
        response = await answer(request, body)
        entry.status = response.status_code
        return response

    return endpoint


def rate_limited(switches: FaultSwitches) -> dict[str, str] | None:
    """The Retry-After header when this call uses up one of the rate_limit_next switch's 429s, else None."""
    if switches.rate_limit_next <= 0:
        return None
    switches.rate_limit_next -= 1
    return {"Retry-After": str(switches.retry_after_s)}


def fails_after_store(switches: FaultSwitches) -> bool:
    """Whether this write, once stored, answers 500 (using up one of fail_after_note_store_next)."""
    if switches.fail_after_note_store_next <= 0:
        return False
    switches.fail_after_note_store_next -= 1
    return True


def _switch_problem(switch_type: type[FaultSwitches], name: str, value: Any) -> str | None:
    kind = type(getattr(switch_type(), name))
    # bool is an int in Python, so check it apart; ints are fine where a float is expected.
    if kind is list:
        accepted = isinstance(value, list) and all(isinstance(v, str) for v in value)
    elif kind is bool:
        accepted = isinstance(value, bool)
    else:
        accepted = not isinstance(value, bool) and isinstance(value, int if kind is int else int | float)
    return None if accepted else f"{name} must be a {kind.__name__}"


def control_routes(st: SimState, *, switch_type: type[FaultSwitches], ticket_json: Callable[[int], Any],
                   lists: Mapping[str, Callable[[int], Any]], actions: Mapping[str, Callable[[], None]] | None = None,
                   check_all_first: bool = False) -> list[Route]:
    """The `/_simulator/` routes (no auth: bind to 127.0.0.1 only): `state`, `tickets/{id}/status`, `switches`,
    and `tickets/{id}/<name>` for each of `lists`.

    `actions` are switches that do something once when set true instead of being kept (they stay off); with
    `check_all_first` a switches request with one bad value changes nothing, else those before it are applied.
    """

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
        return JSONResponse(ticket_json(tid))

    async def control_switches(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        known = {f.name for f in fields(switch_type)}
        if not isinstance(body, dict) or not set(body) <= known:
            return JSONResponse({"error": f"a JSON object with keys among {sorted(known)}"}, status_code=400)
        for name, value in body.items() if check_all_first else ():
            if problem := _switch_problem(switch_type, name, value):
                return JSONResponse({"error": problem}, status_code=400)
        for name, value in body.items():
            if problem := _switch_problem(switch_type, name, value):
                return JSONResponse({"error": problem}, status_code=400)
            if actions and name in actions:
                if value:
                    actions[name]()
                continue
            setattr(st.switches, name, type(getattr(switch_type(), name))(value))
        return JSONResponse(asdict(st.switches))

    def listing(read: Callable[[int], Any]) -> Callable[[Request], Awaitable[Response]]:
        async def control_list(request: Request) -> Response:
            tid = request.path_params["ticket_id"]
            if tid not in st.tickets:
                return JSONResponse({"error": f"no ticket {tid}"}, status_code=404)
            return JSONResponse(read(tid))

        return control_list

    return [
        Route(f"{CONTROL_PREFIX}/state", control_state),
        Route(f"{CONTROL_PREFIX}/tickets/{{ticket_id:int}}/status", control_status, methods=["POST"]),
        Route(f"{CONTROL_PREFIX}/switches", control_switches, methods=["POST"]),
        *(Route(f"{CONTROL_PREFIX}/tickets/{{ticket_id:int}}/{name}", listing(read)) for name, read in lists.items()),
    ]


def simulator_parser(doc: str | None, *, port: int, env_prefix: str,
                     credentials: Sequence[str]) -> argparse.ArgumentParser:
    """`--host`, `--port` and one flag per credential, each defaulting to `${env_prefix}_<FLAG>`."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    for flag in credentials:
        env = f"{env_prefix}_{flag.upper().replace('-', '_')}"
        # Required unless the environment supplies it: no credential has a default value here.
        value = os.environ.get(env) or None
        parser.add_argument(f"--{flag}", default=value, required=value is None, help=f"or ${env}")
    return parser


def serve(app: ASGIApp, args: argparse.Namespace, who: str, where: Sequence[str] = ()) -> None:
    """Say where the simulator listens (and where its routes are), then run it under uvicorn until stopped."""
    import uvicorn  # only a simulator run as a program needs it

    places = ", ".join([*where, f"state at {CONTROL_PREFIX}/state"])
    print(f"{who} on http://{args.host}:{args.port} ({places})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
