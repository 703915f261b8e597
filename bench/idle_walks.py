"""Thousands of idle L1 walks: time to start them, the worker's peak RSS, and every idle timer firing.

    L1_IDLE_TIMEOUT_S=300 python3 run.py dev --data-dir /tmp/idle &
    .venv/bin/python bench/idle_walks.py --base-url http://127.0.0.1:8000 --walks 5000

Needs a running stack whose walks go idle quickly (`L1_IDLE_TIMEOUT_S` in its environment; the default is a
day). Registers a fresh account, authors a three-question flow and starts `--walks` walks through intake
(`--concurrency` at a time), then leaves them alone: each walk's workflow waits on its idle timer, most of
them evicted from the worker's cache. It polls the owner's active walks until every one was abandoned by
its timer (or `--max-seconds` passes) while sampling the worker's RSS. Prints one table; exits 1 when a walk
is still active or the peak RSS reached `--max-rss-mb`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import httpx
from floor import Samples, http_client, register
from l1_walk import linear_tree
from worker_rss import PeakRss, find_worker


async def start_walks(http: httpx.AsyncClient, headers: dict[str, str], flow_id: str, count: int,
                      concurrency: int) -> Samples:
    """`count` intakes, `concurrency` at a time (timed), with progress every 10 s."""
    samples, gate = Samples(), asyncio.Semaphore(concurrency)

    async def one(n: int) -> None:
        async with gate:
            started = time.perf_counter()
            try:
                resp = await http.post("/api/v1/l1/intake", headers=headers,
                                       json={"problem_statement": f"idle bench walk {n}", "flow_id": flow_id})
                resp.raise_for_status()
                samples.latencies.append(time.perf_counter() - started)
            except (httpx.HTTPStatusError, httpx.TransportError) as exc:
                samples.failed(exc)

    async def progress() -> None:
        while True:
            await asyncio.sleep(10)
            print(f"  started {len(samples.latencies)}/{count}", file=sys.stderr)

    reporter = asyncio.create_task(progress())
    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(count)))
    samples.wall_s = time.perf_counter() - started
    reporter.cancel()
    return samples


async def active_walks(http: httpx.AsyncClient, headers: dict[str, str]) -> int:
    """How many of the owner's walks are still active (paged through)."""
    total, offset = 0, 0
    while True:
        resp = await http.get("/api/v1/l1/sessions/active", headers=headers, params={"limit": 200, "offset": offset})
        resp.raise_for_status()
        page = len(resp.json())
        total, offset = total + page, offset + page
        if page < 200:
            return total


async def run(args: argparse.Namespace) -> int:
    """Start the walks, wait for their idle timers, print the table."""
    rss = PeakRss(find_worker(args.worker_pid)).start()
    async with http_client(args.base_url, args.concurrency) as http:
        headers = await register(http)
        resp = await http.post("/api/v1/l1/flows", headers=headers, json={
            "title": "idle bench flow", "category": "software", "keywords": ["bench"], "tree": linear_tree(3)})
        resp.raise_for_status()
        started = await start_walks(http, headers, str(resp.json()["id"]), args.walks, args.concurrency)
        print(f"started {len(started.latencies)}/{args.walks} walks in {started.wall_s:.0f} s; waiting for their "
              "idle timers", file=sys.stderr)
        rss_after_start = rss.last
        waited = time.monotonic()
        remaining = await active_walks(http, headers)
        while remaining and time.monotonic() - waited < args.max_seconds:
            await asyncio.sleep(10)
            remaining = await active_walks(http, headers)
            print(f"  active {remaining}/{len(started.latencies)} after {time.monotonic() - waited:.0f} s",
                  file=sys.stderr)
        wait_s = time.monotonic() - waited
    await rss.stop()
    abandoned = len(started.latencies) - remaining
    rows = [
        ("walks started", f"{len(started.latencies)} of {args.walks} ({len(started.errors)} failed"
                          + (f"; first: {started.errors[0]}" if started.errors else "") + ")"),
        ("time to start", f"{started.wall_s:.0f} s ({started.rate():.1f} walks/s, {args.concurrency} at a time)"),
        ("intake p50 / p99", f"{started.pct(50):.0f} / {started.pct(99):.0f} ms"),
        ("worker RSS after starting / peak", f"{rss.mb(rss_after_start)} / {rss.mb(rss.peak)} "
                                             f"(target < {args.max_rss_mb} MB)"),
        ("abandoned by their idle timer", f"{abandoned} of {len(started.latencies)}, {wait_s:.0f} s after the last "
                                          "start"),
    ]
    print("\n| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    ok = not started.errors and remaining == 0 and rss.peak < args.max_rss_mb * 2**20
    print(f"targets (every walk abandoned, peak RSS < {args.max_rss_mb} MB): {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


def main() -> int:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--walks", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--max-seconds", type=float, default=1800, help="how long to wait for the idle timers")
    parser.add_argument("--max-rss-mb", type=int, default=300)
    parser.add_argument("--worker-pid", type=int, default=None)
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
