"""Live escalation stream fan-out: 2 API processes, SSE subscribers on both, handoffs created on both.

    .venv/bin/python bench/sse_fanout.py --base-url http://127.0.0.1:8000 --subscribers 200 --handoffs 100

Needs a running `rflow dev` stack. API process #1 is `--base-url`; #2 is `--second-base-url`, or else one
the bench starts itself (`rflow api` on a free port, with the environment of the dev API found by its command
line) and stops at the end. Registers a fresh account with `--users` subscribing engineers and one escalating
engineer, opens `--subscribers` streams (half on each process, users spread over them), waits for every
`ready`, then escalates `--handoffs` sessions (`--concurrency` at a time, alternating processes). Delivery
latency is the receive time at a stream minus the handoff's `created_at` (and minus the POST's send time).
Waits `--settle-seconds` for stragglers, prints a table; exits 1 when a delivery is lost or a POST failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import psutil

from db.session import asyncpg_connect_args

PASSWORD = "Bench-Password-123!"
RETRIES = 5
PROJECT_ROOT = Path(__file__).resolve().parent.parent
STREAM_PATH = "/api/v1/ai-sessions/escalations/stream"


@dataclass
class Stream:
    """One SSE subscriber: when each handoff_created arrived (first copy), and how many came twice."""

    url: str
    received: dict[str, float] = field(default_factory=dict)
    duplicates: int = 0
    other_events: int = 0
    ready: bool = False
    error: str | None = None


@dataclass
class Tally:
    """Across all streams: how many are ready and how many handoff_created arrived; `changed` wakes waiters."""

    ready: int = 0
    delivered: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def until(self, done: Callable[[], bool], deadline: float) -> None:
        """Wait until `done()` or the monotonic `deadline`."""
        while not done() and time.monotonic() < deadline:
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(2.0, deadline - time.monotonic()))


@dataclass
class Run:
    """What the bench saw on the writing side."""

    created_at: dict[str, float] = field(default_factory=dict)  # handoff id -> its created_at (epoch s)
    sent_at: dict[str, float] = field(default_factory=dict)  # handoff id -> when its POST was sent
    post_latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    retries: int = 0
    wall_s: float = 0.0  # first POST to the end of settling
    cpu_s: float = 0.0  # this process's CPU time meanwhile (its share of the 2 cores)


def pct(values: list[float], p: float) -> float:
    """The p-th percentile of `values` (seconds) in milliseconds."""
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


def find_api(base_url: str) -> psutil.Process:
    """The dev API serving `base_url`: uvicorn with api.app (as `rflow dev` spawns it) or `rflow api`."""
    port = str(urlsplit(base_url).port or 80)
    for proc in psutil.process_iter(["cmdline"]):
        argv = proc.info.get("cmdline") or []
        joined = " ".join(argv)
        is_api = ("uvicorn" in joined and "api.app:create_app" in joined) or \
                 (any(a.endswith("rflow") for a in argv) and "api" in argv)
        if is_api and port in argv and argv[argv.index(port) - 1] == "--port":
            return proc
    sys.exit(f"no API process serving port {port} found (pass --second-base-url)")


def spawn_second_api(base_url: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    """`rflow api` on a free port with the environment of the dev API serving `base_url`."""
    with socket.socket() as sock:  # a port nobody listens on right now
        sock.bind(("127.0.0.1", 0))
        env, port = find_api(base_url).environ(), int(sock.getsockname()[1])
    log = Path(tempfile.mkstemp(prefix="sse-fanout-api-", suffix=".log")[1])
    with log.open("wb") as out:
        proc = subprocess.Popen([str(PROJECT_ROOT / ".venv" / "bin" / "rflow"), "api", "--host", "127.0.0.1",
                                 "--port", str(port)], env=env, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}", log


async def healthy(proc: subprocess.Popen[bytes], url: str) -> bool:
    """True once `url`/healthz answers 200 (within 60 s), False when the process exits or time runs out."""
    async with httpx.AsyncClient(timeout=2) as http:
        for _ in range(120):
            if proc.poll() is not None:
                return False
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{url}/healthz")).status_code == 200:
                    return True
            await asyncio.sleep(0.5)
    return False


async def event_commits(database_url: str | None, handoff_ids: list[str]) -> dict[str, float]:
    """When each handoff's `handoff_created` event was written (its row's clock_timestamp(), just before commit)."""
    if not database_url or not handoff_ids:
        return {}
    conn = await asyncpg.connect(**asyncpg_connect_args(database_url))
    try:
        rows = await conn.fetch("SELECT handoff_id::text AS h, created_at FROM escalation_events "
                                "WHERE kind = 'handoff_created' AND handoff_id::text = ANY($1::text[])", handoff_ids)
    finally:
        await conn.close()
    return {r["h"]: r["created_at"].timestamp() for r in rows}


def stop_api(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)
    proc.kill()  # a no-op once it exited
    proc.wait()


async def login(http: httpx.AsyncClient, email: str) -> dict[str, str]:
    """Bearer headers for `email`."""
    resp = (await http.post("/api/v1/auth/login/json", json={"email": email, "password": PASSWORD})).raise_for_status()
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


async def setup(http: httpx.AsyncClient, users: int, sessions: int) -> tuple[list[dict[str, str]], dict[str, str],
                                                                            list[str]]:
    """A fresh account: `users` subscribing engineers, one escalating engineer and its `sessions` sessions."""
    tag = uuid.uuid4().hex[:10]
    owner_email = f"bench-sse-{tag}@example.com"
    (await http.post("/api/v1/auth/register", json={"email": owner_email, "password": PASSWORD, "name": "Bench"}))\
        .raise_for_status()
    owner = await login(http, owner_email)
    emails = [f"bench-sse-{tag}-{i}@example.com" for i in range(users + 1)]
    for i, email in enumerate(emails):
        (await http.post("/api/v1/account/users", headers=owner, json={
            "email": email, "name": f"Bench {i}", "password": PASSWORD, "account_role": "engineer"})).raise_for_status()
    tokens = [await login(http, email) for email in emails]
    escalator, gate = tokens.pop(), asyncio.Semaphore(8)

    async def open_session(i: int) -> str:
        async with gate:
            return str((await http.post("/api/v1/ai-sessions", headers=escalator, json={
                "session_type": "chat", "intake_type": "free_text", "intake_content": {"text": f"bench {i}"}}))
                .raise_for_status().json()["id"])

    return tokens, escalator, list(await asyncio.gather(*(open_session(i) for i in range(sessions))))


CREATED = b"event: handoff_created"
HANDOFF_KEY = b'"handoff_id":"'


async def subscribe(http: httpx.AsyncClient, headers: dict[str, str], stream: Stream, tally: Tally) -> None:
    """Read one SSE stream until cancelled, recording every handoff_created by handoff id.

    A bare socket and a byte search rather than httpx's line decoder: 200 streams in one Python process on the
    same two cores as the stack, and a parser that costs ~0.4 ms per event was measured as part of the latency.
    """
    del http  # the streams share nothing with the command client
    url = httpx.URL(stream.url)
    try:
        reader, writer = await asyncio.open_connection(url.host, url.port)
        request = (f"GET {STREAM_PATH} HTTP/1.1\r\nHost: {url.host}:{url.port}\r\nAccept: text/event-stream\r\n"
                   f"Authorization: {headers['Authorization']}\r\n\r\n")
        writer.write(request.encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise ValueError(head.split(b"\r\n", 1)[0].decode())
        pending = b""
        while chunk := await reader.read(65536):
            now = time.time()
            pending += chunk
            stream.other_events += chunk.count(b"event: handoff_") - chunk.count(CREATED)
            if not stream.ready and b"event: ready" in pending:
                stream.ready = True
                tally.ready += 1
            start = 0
            while (found := pending.find(CREATED, start)) >= 0:
                key = pending.find(HANDOFF_KEY, found)
                if key < 0 or key + len(HANDOFF_KEY) + 36 > len(pending):
                    break  # the rest of this event is in the next read
                handoff_id = pending[key + len(HANDOFF_KEY): key + len(HANDOFF_KEY) + 36].decode()
                if handoff_id in stream.received:
                    stream.duplicates += 1
                else:
                    stream.received[handoff_id] = now
                    tally.delivered += 1
                start = key + len(HANDOFF_KEY) + 36
            pending = pending[start:] if start else pending[-4096:]
            tally.changed.set()
        stream.error = "closed by the server"
        writer.close()
    except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
        stream.error = f"{type(exc).__name__}: {exc}"
        tally.changed.set()


async def escalate(http: httpx.AsyncClient, url: str, headers: dict[str, str], session_id: str, run: Run) -> None:
    """One escalation (Idempotency-Key, retried on 503 with the same key), timed from send to response."""
    keyed = {**headers, "Idempotency-Key": str(uuid.uuid4())}
    sent = time.time()
    try:
        for attempt in range(RETRIES + 1):
            resp = await http.post(f"{url}/api/v1/ai-sessions/{session_id}/handoff", headers=keyed,
                                   json={"intent": "escalate", "engineer_notes": "bench"})
            if resp.status_code != 503 or attempt == RETRIES:
                break
            run.retries += 1
            await asyncio.sleep(1 + attempt)
        body = resp.raise_for_status().json()
    except httpx.HTTPError as exc:
        run.errors.append(f"{exc.request.url}: " + (f"{exc.response.status_code} {exc.response.text[:120]}"
                          if isinstance(exc, httpx.HTTPStatusError) else f"{type(exc).__name__} {exc}"))
        return
    run.post_latencies.append(time.time() - sent)
    run.sent_at[body["id"]] = sent
    run.created_at[body["id"]] = datetime.fromisoformat(body["created_at"]).timestamp()


async def measure(args: argparse.Namespace, urls: list[str]) -> tuple[list[Stream], Run, int]:
    """Set up, subscribe (all streams ready), escalate, settle; the streams, the writes and the user count."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=args.concurrency + 10, keepalive_expiry=2.0)
    async with httpx.AsyncClient(base_url=urls[0], timeout=60, limits=limits) as http, \
            httpx.AsyncClient(timeout=httpx.Timeout(30, read=90), limits=httpx.Limits(max_connections=None)) as sse:
        tokens, escalator, sessions = await setup(http, args.users, args.handoffs)
        streams, tally, run = [Stream(url=urls[i % 2]) for i in range(args.subscribers)], Tally(), Run()
        tasks = [asyncio.create_task(subscribe(sse, tokens[i % len(tokens)], s, tally)) for i, s in enumerate(streams)]
        try:
            await tally.until(lambda: tally.ready == len(streams) or any(s.error for s in streams),
                              time.monotonic() + 60)
            print(f"  streams ready {tally.ready}/{len(streams)}", file=sys.stderr)
            if tally.ready < len(streams):
                sys.exit(f"streams not ready: {next((s.error for s in streams if s.error), 'timed out')}")
            gate = asyncio.Semaphore(args.concurrency)

            async def paced(i: int, session_id: str) -> None:
                async with gate:
                    await escalate(http, urls[i % 2], escalator, session_id, run)
                    if (i + 1) % 25 == 0:
                        print(f"  handoffs posted {i + 1}/{len(sessions)}", file=sys.stderr)

            wall, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(paced(i, s) for i, s in enumerate(sessions)))
            expected = len(streams) * len(run.created_at)
            print(f"  deliveries {tally.delivered}/{expected}; settling", file=sys.stderr)
            await tally.until(lambda: tally.delivered >= expected, time.monotonic() + args.settle_seconds)
            run.wall_s, run.cpu_s = time.perf_counter() - wall, time.process_time() - cpu
        finally:  # before the clients close, or every stream would end in a ReadError
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return streams, run, len(tokens)


def ms3(values: list[float]) -> str:
    """p50 / p99 / max in milliseconds."""
    return f"{pct(values, 50):.0f} / {pct(values, 99):.0f} / {pct(values, 100):.0f} ms"


async def run_bench(args: argparse.Namespace) -> int:
    """Start API #2 if needed, measure, print the table."""
    spawned, second = None, args.second_base_url
    database_url = find_api(args.base_url).environ().get("DATABASE_URL")
    if second is None:
        spawned, second, log = spawn_second_api(args.base_url)
        print(f"started API #2 (pid {spawned.pid}, log {log})", file=sys.stderr)
    try:
        if spawned is not None and not await healthy(spawned, second):
            sys.exit(f"API #2 did not become healthy; see {log}")
        urls = [args.base_url.rstrip("/"), second.rstrip("/")]
        print(f"API #1 {urls[0]}\nAPI #2 {urls[1]}", file=sys.stderr)
        streams, run, users = await measure(args, urls)
    finally:
        if spawned is not None:
            stop_api(spawned)
    if spawned is not None:
        log.unlink(missing_ok=True)  # kept (and named on stderr) when the run broke off
    known = [(s, h, at) for s in streams for h, at in s.received.items() if h in run.created_at]
    committed = await event_commits(database_url, list(run.created_at))
    from_commit = [at - committed[h] for _, h, at in known if h in committed]
    from_created = [at - run.created_at[h] for _, h, at in known]
    by_api = [[at - run.created_at[h] for s, h, at in known if s.url == u] for u in urls]
    spread = [max(ats) - min(ats) for ats in ([s.received[h] for s in streams if h in s.received]
                                              for h in run.created_at) if ats]
    lost = len(streams) * args.handoffs - len(known)  # a failed POST loses its deliveries too
    broken = [s.error for s in streams if s.error]
    rows = [
        ("API processes", f"2: #1 {urls[0]}, #2 {urls[1]} ({len(by_api[0])} / {len(by_api[1])} deliveries)"),
        ("subscribers (users)", f"{len(streams)} ({users} users), half on each; {len(broken)} streams broke"),
        ("handoffs created", f"{len(run.created_at)} of {args.handoffs} ({len(run.errors)} failed, "
                             f"{run.retries} 503s retried; {args.concurrency} at a time, alternating)"),
        ("deliveries expected / received", f"{len(streams) * args.handoffs} / {len(known)}"),
        ("deliveries lost / duplicates", f"{lost} / {sum(s.duplicates for s in streams)}"),
        ("other events (assessment etc.)", f"{sum(s.other_events for s in streams)}"),
        ("delivery from created_at p50/p99/max", ms3(from_created)),
        ("delivery from the event's commit", ms3(from_commit) + " (the fan-out alone)"),
        ("event commit after created_at", ms3([committed[h] - c for h, c in run.created_at.items()
                                                if h in committed]) + " (writing the handoff)"),
        ("  streams on #1 / on #2, p99", f"{pct(by_api[0], 99):.0f} / {pct(by_api[1], 99):.0f} ms"),
        ("delivery from POST sent p50/p99/max", ms3([at - run.sent_at[h] for _, h, at in known])),
        ("first-to-last stream spread p50/p99/max", ms3(spread)),
        ("handoff POST p50 / p99", f"{pct(run.post_latencies, 50):.0f} / {pct(run.post_latencies, 99):.0f} ms"),
        ("bench process CPU while posting", f"{run.cpu_s:.1f} s in {run.wall_s:.1f} s "
                                            f"({1e6 * run.cpu_s / max(1, len(known)):.0f} us per delivery)"),
        ("machine", f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} (1 min, at the end), "
                    f"{platform.platform()}, Python {platform.python_version()}"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"\nSSE fan-out bench ({len(streams)} streams x {args.handoffs} handoffs)")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    p99_ok = pct(from_created, 99) <= args.target_p99_ms
    print(f"  targets: p99 from created_at <= {args.target_p99_ms:g} ms {'met' if p99_ok else 'MISSED'}; "
          f"lost = 0 {'met' if lost == 0 else 'MISSED'}")
    for error in (run.errors + broken)[:5]:
        print(f"error: {error}", file=sys.stderr)
    return 0 if lost == 0 and not run.errors else 1


def main() -> int:
    """Parse arguments and run with an overall time limit."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="API process #1 (the dev API)")
    parser.add_argument("--second-base-url", default=None, help="API process #2 (default: start one)")
    parser.add_argument("--subscribers", type=int, default=200, help="SSE streams, half on each process")
    parser.add_argument("--users", type=int, default=10, help="distinct subscribing users")
    parser.add_argument("--handoffs", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=1, help="handoff POSTs in flight")
    parser.add_argument("--settle-seconds", type=float, default=10.0, help="wait for stragglers after the last POST")
    parser.add_argument("--target-p99-ms", type=float, default=250.0, help="reported, not part of the exit code")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="give up after this long")
    args = parser.parse_args()

    async def bounded() -> int:
        async with asyncio.timeout(args.max_seconds):
            return await run_bench(args)

    try:
        return asyncio.run(bounded())
    except TimeoutError:
        print(f"bench: gave up after {args.max_seconds:g}s", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
