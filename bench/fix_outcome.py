"""PATCH .../suggested-fixes/{id}/outcome over HTTP, against the floor of a no-op Temporal update.

    .venv/bin/python bench/fix_outcome.py --base-url http://127.0.0.1:8000 --callers 50 --each 5 \\
        --temporal-address 127.0.0.1:7233 --task-queue resolutionflow

Needs a running stack (`rflow dev`, or Temporal + worker + API by hand). Untimed setup: registers a fresh
account (its owner records the outcomes) and gives every caller its own AI session with `--each` fixes
(`--alone` + 1 for the caller alone), each applied (POST .../apply) so the PATCH finds the fix's workflow
running, as the floor finds its EchoWorkflow (`--no-apply`: the PATCH starts it, update-with-start). Every
PATCH is a real change of its own fix: proposed -> `--outcome` (applied_success by default, final: it parks no
reminder). Then it measures the floor (bench/floor.py: EchoWorkflow `echo` updates on the same Temporal and task
queue, 1 caller and `--callers` callers), 1 caller alone (`--alone` PATCHes in a row, after one warm-up) and
`--callers` callers at once, each doing its `--each` PATCHes in sequence (callers never share a session, so they
never wait on each other's session row). The caller alone's session is set up after the floor, right before its
PATCHes: set up first, its fixes' workflows were evicted from the worker's 250-workflow cache by the ~300 set up
after them, and every PATCH replayed its fix's history (44 vs 33 ms p50), which the floor never does. Stops by
itself (`--max-seconds`), prints a short table with issue 11's two ratios and exits 1 when one misses its target
or a request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid

import httpx
from floor import Samples, floors, http_client, parser_for, register, report, run_bounded

API = "/api/v1/ai-sessions"


async def session_with_fixes(http: httpx.AsyncClient, headers: dict[str, str], count: int,
                             apply: bool) -> tuple[str, list[str]]:
    """A new AI session and `count` fixes recorded on it (each superseding the one before), applied if asked."""
    resp = await http.post(API, headers=headers, json={
        "session_type": "chat", "intake_type": "free_text", "intake_content": {"text": "Bench: fix outcomes"}})
    resp.raise_for_status()
    sid = str(resp.json()["id"])
    fixes = []
    for i in range(count):
        resp = await http.post(f"{API}/{sid}/suggested-fixes", headers=headers, json={
            "title": f"Bench fix {i}", "description": "Clear the stale credential cache.", "confidence_pct": 60})
        resp.raise_for_status()
        fixes.append(str(resp.json()["id"]))
        if apply:
            (await http.post(f"{API}/{sid}/suggested-fixes/{fixes[-1]}/apply", headers=headers)).raise_for_status()
    return sid, fixes


async def record_outcomes(http: httpx.AsyncClient, headers: dict[str, str], sid: str, fixes: list[str],
                          args: argparse.Namespace, samples: Samples) -> None:
    """PATCH each fix's outcome in turn (timed); a failed one is counted and the caller goes on."""
    body = {"outcome": args.outcome, "notes": "Bench: how it went."}
    for fid in fixes:
        keyed = {**headers, "Idempotency-Key": str(uuid.uuid4())} if args.keyed else headers
        started = time.perf_counter()
        try:
            resp = await http.patch(f"{API}/{sid}/suggested-fixes/{fid}/outcome", headers=keyed, json=body)
            samples.latencies.append(time.perf_counter() - started)
            resp.raise_for_status()
            if resp.json()["status"] != args.outcome:
                samples.errors.append(f"{fid}: status {resp.json()['status']}, not {args.outcome}")
        except (httpx.HTTPStatusError, httpx.TransportError) as exc:
            samples.failed(exc)


async def run(args: argparse.Namespace) -> int:
    """Set up, measure the floor, the caller alone and the callers at once; print the table."""
    async with http_client(args.base_url, args.callers) as http:
        headers = await register(http)
        gate = asyncio.Semaphore(args.setup_concurrency)

        async def prepared(count: int) -> tuple[str, list[str]]:
            async with gate:
                return await session_with_fixes(http, headers, count, args.apply)

        started = time.perf_counter()
        owned = await asyncio.gather(*(prepared(args.each) for _ in range(args.callers)))
        print(f"setup: {args.callers} sessions, {args.callers * args.each} fixes"
              f"{' applied' if args.apply else ''} in {time.perf_counter() - started:.1f}s", file=sys.stderr)

        floor = await floors(args, args.callers, args.each, args.alone)
        # Set up last, so its fixes' workflows are still in the worker's cache, as the floor's are.
        alone_sid, alone_fixes = await prepared(args.alone + 1)
        await record_outcomes(http, headers, alone_sid, alone_fixes[:1], args, Samples())  # warm-up
        alone = Samples()
        started = time.perf_counter()
        await record_outcomes(http, headers, alone_sid, alone_fixes[1:], args, alone)
        alone.wall_s = time.perf_counter() - started
        loaded = Samples()
        started = time.perf_counter()
        await asyncio.gather(*(record_outcomes(http, headers, sid, fixes, args, loaded) for sid, fixes in owned))
        loaded.wall_s = time.perf_counter() - started
    rows = [
        ("setup", f"own session per caller; fixes {'applied first' if args.apply else 'not applied'}, "
                  f"outcome {args.outcome}{', Idempotency-Key sent' if args.keyed else ''}"),
        ("callers x PATCHes", f"{args.callers} x {args.each} = {len(loaded.latencies)} in {loaded.wall_s:.2f}s"),
    ]
    return report("Fix outcome bench", rows, noun="outcome", loaded=loaded, alone=alone,
                  floor=floor, callers=args.callers, args=args)


def main() -> int:
    """Parse arguments and run with an overall time limit."""
    parser = parser_for(__doc__, latency=1.4, throughput=0.75)
    parser.add_argument("--callers", type=int, default=50, help="concurrent callers (and floor callers)")
    parser.add_argument("--each", type=int, default=5, help="PATCHes per caller, one after another")
    parser.add_argument("--alone", type=int, default=20, help="PATCHes of the caller alone")
    parser.add_argument("--outcome", default="applied_success",
                        choices=["applied_success", "applied_failed", "dismissed", "applied_partial"])
    parser.add_argument("--apply", action=argparse.BooleanOptionalAction, default=True,
                        help="apply each fix in setup, so its workflow is running when the PATCH comes")
    parser.add_argument("--keyed", action="store_true", help="send an Idempotency-Key with every PATCH")
    parser.add_argument("--setup-concurrency", type=int, default=10, help="sessions set up at once")
    return run_bounded(run, parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
