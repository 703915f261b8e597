"""POST .../handoffs/{id}/claim over HTTP, against the floor of a no-op Temporal update.

    .venv/bin/python bench/handoff_claim.py --base-url http://127.0.0.1:8000 --callers 50 --each 3 \\
        --temporal-address 127.0.0.1:7233 --task-queue resolutionflow

Needs a running stack (`rflow dev`, or Temporal + worker + API by hand). Untimed setup: registers a fresh
account whose owner escalates, adds one engineer who claims (the escalator may not claim its own handoff), opens
`--callers` x `--each` AI sessions (plus `--alone` + 1 for the claimer alone) and escalates each one, then waits
until every handoff's AI assessment is in (`--settle-seconds` at most), so none lands during the timing. The
claimer alone's escalations are made after the floor, right before its claims, so that their workflows are in
the worker's cache as the floor's are (made first, the ~300 workflows after them evicted them). Every
claim is of its own handoff, so it wins (the race is bench/claim_race.py's); it records the claim and makes the
session active again through the session's workflow. Then it measures the floor (bench/floor.py: EchoWorkflow
`echo` updates on the same Temporal and task queue, 1 caller and `--callers` callers), 1 claimer alone (`--alone`
claims in a row, after one warm-up) and `--callers` claimers at once, each claiming its `--each` handoffs in
sequence. Stops by itself (`--max-seconds`), prints a short table with issue 11's two ratios and exits 1 when
one misses its target or a request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid

import httpx
from floor import PASSWORD, Samples, floors, http_client, login, parser_for, register, report, run_bounded

API = "/api/v1/ai-sessions"
Handoff = tuple[str, str]  # (session id, handoff id)


async def claimer(http: httpx.AsyncClient, owner: dict[str, str]) -> tuple[str, dict[str, str]]:
    """A second engineer of the owner's account: (user id, headers)."""
    email = f"bench-claimer-{uuid.uuid4().hex[:10]}@example.com"
    resp = await http.post("/api/v1/account/users", headers=owner, json={
        "email": email, "name": "Bench senior", "password": PASSWORD, "account_role": "engineer"})
    resp.raise_for_status()
    return str(resp.json()["id"]), await login(http, email)


async def escalations(http: httpx.AsyncClient, headers: dict[str, str], count: int) -> list[Handoff]:
    """`count` new AI sessions, each escalated."""
    made = []
    for i in range(count):
        resp = await http.post(API, headers=headers, json={
            "session_type": "chat", "intake_type": "free_text", "intake_content": {"text": f"Bench claim {i}"}})
        resp.raise_for_status()
        sid = str(resp.json()["id"])
        resp = await http.post(f"{API}/{sid}/handoff", headers=headers,
                               json={"intent": "escalate", "engineer_notes": "Bench: stuck, please take over"})
        resp.raise_for_status()
        made.append((sid, str(resp.json()["id"])))
    return made


async def assessed(http: httpx.AsyncClient, headers: dict[str, str], sid: str, deadline: float) -> bool:
    """Whether the session's handoff has its assessment (or gave up on it) before `deadline`."""
    while time.monotonic() < deadline:
        resp = await http.get(f"{API}/{sid}/handoffs", headers=headers)
        resp.raise_for_status()
        if all(h["assessment_status"] != "pending" for h in resp.json()["items"]):
            return True
        await asyncio.sleep(0.5)
    return False


async def claim_all(http: httpx.AsyncClient, headers: dict[str, str], user_id: str, handoffs: list[Handoff],
                    samples: Samples) -> None:
    """Claim each handoff in turn (timed); a failed claim is counted and the claimer goes on."""
    for sid, hid in handoffs:
        started = time.perf_counter()
        try:
            resp = await http.post(f"{API}/{sid}/handoffs/{hid}/claim", headers=headers)
            samples.latencies.append(time.perf_counter() - started)
            resp.raise_for_status()
            if resp.json()["claimed_by"] != user_id:
                samples.errors.append(f"{hid}: claimed by {resp.json()['claimed_by']}, not the bench claimer")
        except (httpx.HTTPStatusError, httpx.TransportError) as exc:
            samples.failed(exc)


async def run(args: argparse.Namespace) -> int:
    """Set up, measure the floor, the claimer alone and the claimers at once; print the table."""
    async with http_client(args.base_url, args.callers) as http:
        owner = await register(http)
        user_id, senior = await claimer(http, owner)
        gate = asyncio.Semaphore(args.setup_concurrency)

        async def prepared(count: int) -> list[Handoff]:
            async with gate:
                return await escalations(http, owner, count)

        async def settled(handoffs: list[Handoff]) -> int:
            deadline = time.monotonic() + args.settle_seconds

            async def one(sid: str) -> bool:
                async with gate:
                    return await assessed(http, owner, sid, deadline)

            return sum(await asyncio.gather(*(one(sid) for sid, _ in handoffs)))

        started = time.perf_counter()
        owned = await asyncio.gather(*(prepared(args.each) for _ in range(args.callers)))
        every = [h for handoffs in owned for h in handoffs]
        done = await settled(every)
        print(f"setup: {len(every)} sessions escalated, {done} assessed, in {time.perf_counter() - started:.1f}s",
              file=sys.stderr)

        floor = await floors(args, args.callers, args.each, args.alone)
        # Set up last, so its workflows are still in the worker's cache, as the floor's are.
        alone_handoffs = await prepared(args.alone + 1)
        every += alone_handoffs
        done += await settled(alone_handoffs)
        await claim_all(http, senior, user_id, alone_handoffs[:1], Samples())  # warm-up
        alone = Samples()
        started = time.perf_counter()
        await claim_all(http, senior, user_id, alone_handoffs[1:], alone)
        alone.wall_s = time.perf_counter() - started
        loaded = Samples()
        started = time.perf_counter()
        await asyncio.gather(*(claim_all(http, senior, user_id, handoffs, loaded) for handoffs in owned))
        loaded.wall_s = time.perf_counter() - started
    rows = [
        ("setup", f"one escalation per claim, {done} of {len(every)} assessed before timing"),
        ("claimers x claims", f"{args.callers} x {args.each} = {len(loaded.latencies)} in {loaded.wall_s:.2f}s"),
    ]
    return report("Handoff claim bench", rows, noun="claim", loaded=loaded, alone=alone,
                  floor=floor, callers=args.callers, args=args)


def main() -> int:
    """Parse arguments and run with an overall time limit."""
    parser = parser_for(__doc__, latency=1.5, throughput=0.6)
    parser.add_argument("--callers", type=int, default=50, help="concurrent claimers (and floor callers)")
    parser.add_argument("--each", type=int, default=3, help="handoffs each claimer claims, one after another")
    parser.add_argument("--alone", type=int, default=10, help="claims of the claimer alone")
    parser.add_argument("--settle-seconds", type=float, default=60.0,
                        help="how long setup waits for the handoffs' AI assessments")
    parser.add_argument("--setup-concurrency", type=int, default=10, help="sessions set up at once")
    return run_bounded(run, parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
