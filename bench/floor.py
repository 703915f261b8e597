"""The floors the command benches are measured against, and the report they share.

Issue 22 measures every command against the **persist floor**, in the same run on the same stack: an HTTP
request to a bare route (no auth, no reads: `POST /api/v1/bench/persist-floor/{row}/bump`, mounted in dev
mode) sends one update to `PersistFloorWorkflow`, whose handler runs one local activity doing one guarded
`UPDATE … RETURNING` on one row and answers its result. That is the least any command costs in this design.
Two ratios per command:

- latency ratio: command p50 with 1 caller alone ÷ persist floor p50 with 1 caller;
- throughput ratio: commands/s with N concurrent callers ÷ persist-floor bumps/s with N concurrent callers.

The no-op floor of issue 11 (EchoWorkflow `echo`, no I/O, no HTTP, straight from a Temporal client) is
printed beside it. Not a bench itself: `l1_walk.py`, `fix_outcome.py` and `handoff_claim.py` import it (a
script's own directory is on `sys.path`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from workflows.contracts.persist_floor import persist_floor_workflow_id
from workflows.echo import EchoInput, EchoWorkflow
from workflows.persist_floor import PersistFloorWorkflow

PASSWORD = "Bench-Password-123!"


@dataclass
class Samples:
    """Latencies in seconds, plus how long the whole phase took."""

    latencies: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    def pct(self, p: float) -> float:
        """The p-th percentile in milliseconds."""
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")

    def rate(self) -> float:
        """Timed calls per second of the phase's wall time."""
        return len(self.latencies) / self.wall_s if self.wall_s else float("nan")

    def failed(self, exc: httpx.HTTPStatusError | httpx.TransportError) -> None:
        """Count a failed request (a dropped connection too, not only an error status)."""
        if isinstance(exc, httpx.HTTPStatusError):
            self.errors.append(f"{exc.response.status_code} {exc.request.url.path}: {exc.response.text[:120]}")
        else:
            self.errors.append(f"{type(exc).__name__} {exc.request.url.path}: {exc}")


async def floor_phase(client: Client, task_queue: str, callers: int, updates_each: int) -> Samples:
    """`callers` EchoWorkflows, each sent `updates_each` echo updates one after another."""
    handles = [
        await client.start_workflow(EchoWorkflow.run, id=f"bench-echo-{uuid.uuid4()}", task_queue=task_queue)
        for _ in range(callers)
    ]
    for handle in handles:  # warm-up: the first update of a run also pays its first workflow task
        await handle.execute_update(EchoWorkflow.echo, EchoInput(value="warm"))
    samples = Samples()

    async def drive(handle: Any) -> None:
        for i in range(updates_each):
            started = time.perf_counter()
            await handle.execute_update(EchoWorkflow.echo, EchoInput(value=str(i)))
            samples.latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(drive(h) for h in handles))
    samples.wall_s = time.perf_counter() - started
    for handle in handles:
        await handle.signal(EchoWorkflow.stop)
    return samples


@dataclass
class Floors:
    """The no-op floor and the persist floor, each with 1 caller and with N callers."""

    noop_1: Samples
    noop_n: Samples
    persist_1: Samples
    persist_n: Samples


async def persist_phase(base_url: str, callers: int, bumps_each: int, client: Client | None = None) -> Samples:
    """`callers` floor rows over HTTP, each bumped `bumps_each` times one after another; with a Temporal `client`
    their workflows are stopped after (left open, they would crowd the commands' workflows out of the worker's
    cache, and every command would then replay its history, which no floor bump does)."""
    samples = Samples()
    async with http_client(base_url, callers) as http:
        rows = []
        for _ in range(callers):
            resp = await http.post("/api/v1/bench/persist-floor")
            resp.raise_for_status()
            rows.append(resp.json()["row_id"])
        for row in rows:  # warm-up: starts the row's workflow (update-with-start), as a walk's intake does
            (await http.post(f"/api/v1/bench/persist-floor/{row}/bump")).raise_for_status()

        async def drive(row: str) -> None:
            for _ in range(bumps_each):
                started = time.perf_counter()
                try:
                    (await http.post(f"/api/v1/bench/persist-floor/{row}/bump")).raise_for_status()
                except (httpx.HTTPStatusError, httpx.TransportError) as exc:
                    samples.failed(exc)
                    return
                samples.latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(drive(row) for row in rows))
        samples.wall_s = time.perf_counter() - started
    if client is not None:
        for row in rows:
            await client.get_workflow_handle(persist_floor_workflow_id(uuid.UUID(row))).signal(
                PersistFloorWorkflow.stop)
    return samples


async def floors(args: argparse.Namespace, callers: int, updates_each: int, alone: int) -> Floors:
    """Both floors with 1 caller (`alone` updates) and with `callers` callers (`updates_each` each)."""
    client = await Client.connect(args.temporal_address, namespace=args.namespace,
                                  data_converter=pydantic_data_converter)
    return Floors(noop_1=await floor_phase(client, args.task_queue, 1, alone),
                  noop_n=await floor_phase(client, args.task_queue, callers, updates_each),
                  persist_1=await persist_phase(args.base_url, 1, alone, client),
                  persist_n=await persist_phase(args.base_url, callers, updates_each, client))


def http_client(base_url: str, callers: int) -> httpx.AsyncClient:
    """One connection per caller; idle ones dropped before uvicorn's 5 s keep-alive timeout does (reusing one
    the server is closing at that moment fails the request with httpx.ReadError)."""
    limits = httpx.Limits(max_connections=callers + 5, max_keepalive_connections=callers + 5, keepalive_expiry=2.0)
    return httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits)


async def login(http: httpx.AsyncClient, email: str) -> dict[str, str]:
    """Bearer headers for `email`."""
    resp = await http.post("/api/v1/auth/login/json", json={"email": email, "password": PASSWORD})
    resp.raise_for_status()
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


async def register(http: httpx.AsyncClient) -> dict[str, str]:
    """A fresh account; its owner's headers."""
    email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
    resp = await http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Bench"})
    resp.raise_for_status()
    return await login(http, email)


def report(title: str, rows: list[tuple[str, str]], *, noun: str, loaded: Samples, alone: Samples,
           floor: Floors, callers: int, args: argparse.Namespace) -> int:
    """Print `rows`, the command's own figures, both floors, the failures and the persist-floor ratios (two
    lines a script can read); 1 when a target is missed."""
    throughput = loaded.rate() / floor.persist_n.rate()
    latency = alone.pct(50) / floor.persist_1.pct(50)
    errors = loaded.errors + alone.errors
    floor_errors = floor.persist_1.errors + floor.persist_n.errors
    rows = [
        *rows,
        (f"{noun}s/s, {callers} callers", f"{loaded.rate():.1f}"),
        (f"{noun} p50 / p99, {callers} callers", f"{loaded.pct(50):.1f} / {loaded.pct(99):.1f} ms"),
        (f"{noun} p50 / p99, 1 caller alone ({len(alone.latencies)} in a row)",
         f"{alone.pct(50):.1f} / {alone.pct(99):.1f} ms"),
        (f"{noun}s/s, 1 caller alone", f"{alone.rate():.1f}"),
        (f"persist floor bumps/s, {callers} callers", f"{floor.persist_n.rate():.1f}"),
        ("persist floor p50 / p99, 1 caller", f"{floor.persist_1.pct(50):.1f} / {floor.persist_1.pct(99):.1f} ms"),
        (f"persist floor p50 / p99, {callers} callers",
         f"{floor.persist_n.pct(50):.1f} / {floor.persist_n.pct(99):.1f} ms"),
        (f"no-op floor updates/s, {callers} callers", f"{floor.noop_n.rate():.1f}"),
        ("no-op floor p50 / p99, 1 caller", f"{floor.noop_1.pct(50):.1f} / {floor.noop_1.pct(99):.1f} ms"),
        ("no-op floor latency / throughput ratio",
         f"{alone.pct(50) / floor.noop_1.pct(50):.2f} / {loaded.rate() / floor.noop_n.rate():.2f}"),
        ("failed requests", f"{len(errors)}" + (f" (first: {errors[0]})" if errors else "")),
        ("failed floor requests", f"{len(floor_errors)}" + (f" (first: {floor_errors[0]})" if floor_errors else "")),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"\n{title} against {args.base_url} (Temporal {args.temporal_address}, queue {args.task_queue})")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    # Exactly these two prefixes: scripts read them (issue 22).
    print(f"persist-floor latency ratio (p50, 1 caller)  {latency:.2f}")
    print(f"persist-floor throughput ratio ({callers} callers)  {throughput:.2f}")
    ok = (not errors and not floor_errors and throughput >= args.target_throughput_ratio
          and latency <= args.target_latency_ratio)
    print(f"targets (latency ratio <= {args.target_latency_ratio:g}, throughput ratio >= "
          f"{args.target_throughput_ratio:g}, no failed request): {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


def parser_for(doc: str | None, *, latency: float, throughput: float) -> argparse.ArgumentParser:
    """The options every floor bench takes: where the stack is, the targets, the time limit."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--temporal-address", default="127.0.0.1:7233")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--task-queue", default="resolutionflow", help="the worker's queue (EchoWorkflow runs there)")
    parser.add_argument("--target-throughput-ratio", type=float, default=throughput,
                        help="least commands/s ÷ persist-floor bumps/s, both with the same concurrent callers")
    parser.add_argument("--target-latency-ratio", type=float, default=latency,
                        help="most command p50 alone ÷ persist-floor p50 with 1 caller")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="give up after this long")
    return parser


def run_bounded(run: Callable[[argparse.Namespace], Awaitable[int]], args: argparse.Namespace) -> int:
    """Run the bench with an overall time limit (2 when it is hit)."""

    async def bounded() -> int:
        async with asyncio.timeout(args.max_seconds):
            return await run(args)

    try:
        return asyncio.run(bounded())
    except TimeoutError:
        print(f"bench: gave up after {args.max_seconds:g}s", file=sys.stderr)
        return 2
    except httpx.HTTPStatusError as exc:  # in setup: the timed requests count theirs
        print(f"bench: setup failed: {exc.response.status_code} {exc.request.method} {exc.request.url.path}: "
              f"{exc.response.text[:300]}", file=sys.stderr)
        return 2
    except httpx.TransportError as exc:
        print(f"bench: setup failed: {type(exc).__name__} {exc.request.url}: {exc}", file=sys.stderr)
        return 2
