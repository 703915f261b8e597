"""Thousands of fixes parked `applied_pending`: time to park them, the worker's peak RSS, reminders fired.

    .venv/bin/python bench/pending_fixes.py --base-url http://127.0.0.1:8000 --fixes 5000

Needs a running `rflow dev` stack (dev mode: reminders seconds apart are allowed). Registers a fresh
account, sets its reminders to `--reminder` (and the overdue moment far beyond the run), opens
`--fixes / --per-session` sessions, records `--fixes` engineer fixes and parks each one with PATCH
outcome applied_pending (`--concurrency` at a time). Then it waits until every parked fix's first
reminder is in `/notifications` (or `--max-seconds` passes) while sampling the worker's RSS
(found by its command line, or `--worker-pid`). Prints one table; exits 1 if a reminder is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from dataclasses import dataclass, field

import httpx
from worker_rss import PeakRss, find_worker

PASSWORD = "Bench-Password-123!"
RETRIES = 5


@dataclass
class Run:
    """What the bench saw."""

    parked: int = 0
    park_latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    park_wall_s: float = 0.0
    retries: int = 0

    def pct(self, p: float) -> float:
        """The p-th percentile park latency in milliseconds."""
        ordered = sorted(self.park_latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


async def setup(http: httpx.AsyncClient, reminder: str) -> dict[str, str]:
    """A fresh account whose reminders are `reminder` after parking (overdue an hour later)."""
    email = f"bench-fixes-{uuid.uuid4().hex[:10]}@example.com"
    (await http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Bench"}))\
        .raise_for_status()
    resp = await http.post("/api/v1/auth/login/json", json={"email": email, "password": PASSWORD})
    resp.raise_for_status()
    headers = {"Authorization": f"Bearer {resp.json()['access_token']}"}
    resp = await http.put("/api/v1/account/settings", headers=headers, json={
        "pending_verification_reminders": [reminder], "verification_overdue_after": "PT1H"})
    if resp.status_code == 400:
        sys.exit(f"the stack refused a {reminder} reminder: {resp.json()['detail']} (run it with `rflow dev`)")
    resp.raise_for_status()
    return headers


async def send(http: httpx.AsyncClient, method: str, url: str, headers: dict[str, str], body: dict[str, object],
               run: Run) -> httpx.Response:
    """One command with an Idempotency-Key, retried on 503 with the same key (as the API asks clients to)."""
    keyed = {**headers, "Idempotency-Key": str(uuid.uuid4())}
    for attempt in range(RETRIES + 1):
        resp = await http.request(method, url, headers=keyed, json=body)
        if resp.status_code != 503 or attempt == RETRIES:
            break
        run.retries += 1
        await asyncio.sleep(1 + attempt)
    resp.raise_for_status()
    return resp


async def park_one(http: httpx.AsyncClient, headers: dict[str, str], session_id: str, n: int, run: Run) -> None:
    """Record a fix on the session and park it (timed: the PATCH, its retries included)."""
    try:
        resp = await send(http, "POST", f"/api/v1/ai-sessions/{session_id}/suggested-fixes", headers,
                          {"title": f"Bench fix {n}", "description": "bench", "confidence_pct": 50}, run)
        fix_id = resp.json()["id"]
        started = time.perf_counter()
        await send(http, "PATCH", f"/api/v1/ai-sessions/{session_id}/suggested-fixes/{fix_id}/outcome", headers,
                   {"outcome": "applied_pending", "notes": f"waiting on bench {n}"}, run)
        run.park_latencies.append(time.perf_counter() - started)
        run.parked += 1
    except httpx.HTTPStatusError as exc:
        run.errors.append(f"{exc.response.status_code} {exc.request.url.path}: {exc.response.text[:120]}")
    except httpx.TransportError as exc:
        run.errors.append(f"{type(exc).__name__} {exc.request.url.path}: {exc}")


async def reminders(http: httpx.AsyncClient, headers: dict[str, str]) -> int:
    """How many reminders the bench user has (each parked fix's first one)."""
    resp = await http.get("/api/v1/notifications", headers=headers, params={"limit": 1})
    resp.raise_for_status()
    return int(resp.json()["total"])


async def main(args: argparse.Namespace) -> int:
    """Park, wait for the reminders, print the table."""
    run = Run()
    rss = PeakRss(find_worker(args.worker_pid)).start()
    if rss.proc is None:
        print("note: no worker process found; RSS is not measured (pass --worker-pid)", file=sys.stderr)
    limits = httpx.Limits(max_connections=args.concurrency + 5, max_keepalive_connections=args.concurrency + 5,
                          keepalive_expiry=2.0)
    async with httpx.AsyncClient(base_url=args.base_url, timeout=120, limits=limits) as http:
        headers = await setup(http, args.reminder)
        sessions = []
        for i in range((args.fixes + args.per_session - 1) // args.per_session):
            resp = await http.post("/api/v1/ai-sessions", headers=headers, json={
                "session_type": "chat", "intake_type": "free_text", "intake_content": {"text": f"bench session {i}"}})
            resp.raise_for_status()
            sessions.append(resp.json()["id"])
        gate = asyncio.Semaphore(args.concurrency)
        # One chain per session (a session's fixes supersede each other in order); chains run in parallel.
        chains = [list(range(i, args.fixes, len(sessions))) for i in range(len(sessions))]

        async def chain(session_id: str, numbers: list[int]) -> None:
            for n in numbers:
                async with gate:
                    await park_one(http, headers, session_id, n, run)

        started = time.perf_counter()
        progress = asyncio.create_task(_progress(run, args.fixes, started))
        await asyncio.gather(*(chain(s, c) for s, c in zip(sessions, chains, strict=True)))
        run.park_wall_s = time.perf_counter() - started
        progress.cancel()
        print(f"parked {run.parked}/{args.fixes} in {run.park_wall_s:.1f} s; waiting for first reminders",
              file=sys.stderr)
        deadline = time.monotonic() + args.max_seconds
        fired = await reminders(http, headers)
        while fired < run.parked and time.monotonic() < deadline:
            await asyncio.sleep(2)
            fired = await reminders(http, headers)
            print(f"  reminders {fired}/{run.parked}", file=sys.stderr)
    await rss.stop()
    rate = run.parked / run.park_wall_s if run.park_wall_s else float("nan")
    print(f"\n| measure | value |\n|---|---|\n"
          f"| fixes parked | {run.parked} of {args.fixes} ({len(run.errors)} errors, {run.retries} 503s retried) |\n"
          f"| time to park | {run.park_wall_s:.1f} s ({rate:.1f} fixes/s, {args.concurrency} at a time) |\n"
          f"| park PATCH p50 / p99 | {run.pct(50):.0f} ms / {run.pct(99):.0f} ms |\n"
          f"| worker peak RSS | {rss.mb(rss.peak)} (target < 300 MB) |\n"
          f"| first reminders fired | {fired} of {run.parked} |")
    for error in run.errors[:5]:
        print(f"error: {error}", file=sys.stderr)
    return 0 if fired >= run.parked == args.fixes and rss.peak < 300 * 2**20 else 1


async def _progress(run: Run, total: int, started: float) -> None:
    while True:
        await asyncio.sleep(10)
        print(f"  parked {run.parked}/{total} after {time.perf_counter() - started:.0f} s", file=sys.stderr)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--fixes", type=int, default=5000)
    parser.add_argument("--per-session", type=int, default=50, help="fixes recorded on each session")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--reminder", default="PT60S", help="the one reminder, after parking (ISO 8601)")
    parser.add_argument("--max-seconds", type=float, default=900, help="how long to wait for the reminders")
    parser.add_argument("--worker-pid", type=int, default=None)
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
