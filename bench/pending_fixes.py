"""Thousands of fixes parked `applied_pending`: time to park them, the worker's peak RSS, reminders fired.

    .venv/bin/python bench/pending_fixes.py --base-url http://127.0.0.1:8000 --fixes 5000

Needs a running `rflow dev` stack (dev mode: reminders seconds apart are allowed). Registers a fresh
account, sets its reminders to `--reminder` (and the overdue moment far beyond the run), opens
`--fixes / --per-session` sessions, records `--fixes` engineer fixes and parks each one with PATCH
outcome applied_pending (`--concurrency` at a time). Then it waits until every parked fix's first
reminder is in `/notifications` (or `--max-seconds` passes) while sampling the worker's RSS
(found by its command line, or `--worker-pid`). A 429 is sent again with its Idempotency-Key after its
Retry-After, a 503 likewise (both counted; the time until served counts in the latency).

The parking itself is a burst (`--concurrency` at once). Beside it, a technician of another account parks one
fix after another, `--probe-interval` apart: the interactive PATCH issue 23 asks about. Its PATCHes sent once
the first reminders are due are reported apart (target: p99 at most `--target-p99-ms`, and no 503 anywhere).
Prints one table; exits 1 if a reminder is missing or a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import re
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
    retries: int = 0  # 503s sent again
    refused_429: int = 0
    during_reminders: list[float] = field(default_factory=list)  # PATCHes sent once reminders were due
    reminders_due_at: float = float("inf")
    reminder_delay_s: float = 60.0

    def pct(self, p: float, latencies: list[float] | None = None) -> float:
        """The p-th percentile park latency (of `latencies`, default all) in milliseconds."""
        ordered = sorted(self.park_latencies if latencies is None else latencies)
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
    """One command with an Idempotency-Key, sent again with the same key on a 429 (after its Retry-After, as often
    as it takes up to a minute) or a 503 (up to RETRIES times), as the API asks clients to."""
    keyed = {**headers, "Idempotency-Key": str(uuid.uuid4())}
    deadline = time.perf_counter() + 60
    attempt = 0
    while True:
        resp = await http.request(method, url, headers=keyed, json=body)
        if resp.status_code == 429 and time.perf_counter() < deadline:
            run.refused_429 += 1
            await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
            continue
        if resp.status_code != 503 or attempt == RETRIES:
            break
        run.retries += 1
        await asyncio.sleep(1 + attempt)
        attempt += 1
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
        took = time.perf_counter() - started
        run.park_latencies.append(took)
        if started >= run.reminders_due_at:
            run.during_reminders.append(took)
        if run.reminders_due_at == float("inf"):  # the first parked fix's reminder is due this long after it
            run.reminders_due_at = started + took + run.reminder_delay_s
        run.parked += 1
    except httpx.HTTPStatusError as exc:
        run.errors.append(f"{exc.response.status_code} {exc.request.url.path}: {exc.response.text[:120]}")
    except httpx.TransportError as exc:
        run.errors.append(f"{type(exc).__name__} {exc.request.url.path}: {exc}")


async def probe(http: httpx.AsyncClient, headers: dict[str, str], run: Run, interval: float,
                done: asyncio.Event) -> Run:
    """Another account's technician parking one fix at a time (a new session every 40) until `done`; its Run."""
    mine = Run(reminders_due_at=run.reminders_due_at)
    n = 0
    session_id = ""
    while not done.is_set():
        if n % 40 == 0:
            resp = await http.post("/api/v1/ai-sessions", headers=headers, json={
                "session_type": "chat", "intake_type": "free_text", "intake_content": {"text": f"probe session {n}"}})
            resp.raise_for_status()
            session_id = resp.json()["id"]
        mine.reminders_due_at = run.reminders_due_at
        await park_one(http, headers, session_id, n, mine)
        n += 1
        await asyncio.sleep(interval)
    return mine


async def reminders(http: httpx.AsyncClient, headers: dict[str, str]) -> int:
    """How many reminders the bench user has (each parked fix's first one)."""
    resp = await http.get("/api/v1/notifications", headers=headers, params={"limit": 1})
    resp.raise_for_status()
    return int(resp.json()["total"])


async def main(args: argparse.Namespace) -> int:
    """Park, wait for the reminders, print the table."""
    run = Run(reminder_delay_s=seconds(args.reminder))
    rss = PeakRss(find_worker(args.worker_pid)).start()
    if rss.proc is None:
        print("note: no worker process found; RSS is not measured (pass --worker-pid)", file=sys.stderr)
    limits = httpx.Limits(max_connections=args.concurrency + 5, max_keepalive_connections=args.concurrency + 5,
                          keepalive_expiry=2.0)
    async with httpx.AsyncClient(base_url=args.base_url, timeout=120, limits=limits) as http:
        headers = await setup(http, args.reminder)
        other = await setup(http, "PT30M")  # the probe's account: its own reminders stay out of the run
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
        probing = asyncio.Event()
        prober = asyncio.ensure_future(probe(http, other, run, args.probe_interval, probing))
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
        probing.set()
        probed = await prober
    await rss.stop()
    rate = run.parked / run.park_wall_s if run.park_wall_s else float("nan")
    during = probed.during_reminders
    run.errors += probed.errors
    run.retries += probed.retries
    print(f"\n| measure | value |\n|---|---|\n"
          f"| fixes parked | {run.parked} of {args.fixes} ({len(run.errors)} errors; {run.refused_429} 429s and "
          f"{run.retries} 503s retried) |\n"
          f"| time to park | {run.park_wall_s:.1f} s ({rate:.1f} fixes/s, {args.concurrency} at a time) |\n"
          f"| park PATCH p50 / p99 | {run.pct(50):.0f} ms / {run.pct(99):.0f} ms |\n"
          f"| the burst's own park PATCH p50 / p99 while reminders fire | {run.pct(50, run.during_reminders):.0f} ms "
          f"/ {run.pct(99, run.during_reminders):.0f} ms |\n"
          f"| **another account's park PATCH p50 / p99 while reminders fire** | {run.pct(50, during):.0f} ms / "
          f"{run.pct(99, during):.0f} ms ({len(during)} PATCHes; {probed.refused_429} 429s) |\n"
          f"| worker peak RSS | {rss.mb(rss.peak)} (target < 300 MB) |\n"
          f"| first reminders fired | {fired} of {run.parked} |")
    for error in run.errors[:5]:
        print(f"error: {error}", file=sys.stderr)
    met = (fired >= run.parked == args.fixes and rss.peak < 300 * 2**20 and run.retries == 0
           and (not during or run.pct(99, during) <= args.target_p99_ms))
    print(f"targets (every reminder, RSS < 300 MB, no 503, PATCH p99 while reminders fire <= {args.target_p99_ms:g} "
          f"ms): {'met' if met else 'MISSED'}")
    return 0 if met else 1


def seconds(duration: str) -> float:
    """An ISO 8601 duration of hours, minutes and seconds (PT1M30S) in seconds."""
    match = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?", duration)
    if match is None:
        raise SystemExit(f"--reminder {duration!r}: give a time-only ISO 8601 duration such as PT60S")
    hours, minutes, secs = (float(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + secs


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
    parser.add_argument("--target-p99-ms", type=float, default=1500.0,
                        help="most p99 of the other account's park PATCHes while reminders fire")
    parser.add_argument("--probe-interval", type=float, default=0.5, help="seconds between the other account's parks")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
