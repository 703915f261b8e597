"""Many seniors claim one escalation at once: exactly one wins, the rest get 409 naming the winner.

    .venv/bin/python bench/claim_race.py --base-url http://127.0.0.1:8000 --claimers 50 --rounds 3

Needs a running stack (`rflow dev`). Registers a fresh account with `--claimers` engineers and one escalating
engineer; each round escalates a new session and fires every engineer's claim at the same moment over HTTP.
Prints winners (must be 1 per round), 409s (must be claimers - 1 per round), anything else, and the claim
latency p50/p99 over all rounds. Exits 1 when a round has other than one winner.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx

PASSWORD = "Bench-Password-123!"


@dataclass
class Round:
    """One escalation and every claim on it."""

    statuses: Counter[int] = field(default_factory=Counter)
    winners: set[str] = field(default_factory=set)
    named_in_409: set[str] = field(default_factory=set)
    latencies: list[float] = field(default_factory=list)


def pct(values: list[float], p: float) -> float:
    """The p-th percentile in milliseconds."""
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


async def login(http: httpx.AsyncClient, email: str) -> dict[str, str]:
    """Bearer headers for `email`."""
    resp = await http.post("/api/v1/auth/login/json", json={"email": email, "password": PASSWORD})
    resp.raise_for_status()
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


async def setup(http: httpx.AsyncClient, claimers: int) -> tuple[dict[str, str], list[dict[str, str]]]:
    """A fresh account: the escalating engineer's headers and every claiming engineer's."""
    tag = uuid.uuid4().hex[:8]
    owner_email = f"bench-{tag}@example.com"
    resp = await http.post("/api/v1/auth/register", json={"email": owner_email, "password": PASSWORD,
                                                           "name": "Bench owner"})
    resp.raise_for_status()
    owner = await login(http, owner_email)
    emails = []
    for i in range(claimers + 1):
        email = f"bench-{tag}-{i}@example.com"
        resp = await http.post("/api/v1/account/users", headers=owner, json={
            "email": email, "name": f"Senior {i}", "password": PASSWORD, "account_role": "engineer"})
        resp.raise_for_status()
        emails.append(email)
    headers = await asyncio.gather(*(login(http, e) for e in emails))
    print(f"account ready: 1 escalating engineer, {claimers} claiming engineers", file=sys.stderr)
    return headers[0], list(headers[1:])


async def escalate(http: httpx.AsyncClient, headers: dict[str, str], n: int) -> tuple[str, str]:
    """A new session, escalated: (session id, handoff id)."""
    resp = await http.post("/api/v1/ai-sessions", headers=headers, json={
        "session_type": "chat", "intake_type": "free_text", "intake_content": {"text": f"Claim race {n}"}})
    resp.raise_for_status()
    session_id = resp.json()["id"]
    resp = await http.post(f"/api/v1/ai-sessions/{session_id}/handoff", headers=headers,
                           json={"intent": "escalate", "engineer_notes": "bench"})
    resp.raise_for_status()
    return session_id, resp.json()["id"]


async def claim(http: httpx.AsyncClient, headers: dict[str, str], url: str, start: asyncio.Event,
                found: Round) -> None:
    """Wait for the starting gun, claim, record what came back."""
    await start.wait()
    began = time.perf_counter()
    resp = await http.post(url, headers=headers)
    found.latencies.append(time.perf_counter() - began)
    found.statuses[resp.status_code] += 1
    if resp.status_code == 200:
        found.winners.add(resp.json()["claimed_by"])
    elif resp.status_code == 409:
        found.named_in_409.add(resp.json()["detail"]["claimed_by_id"])


async def main(args: argparse.Namespace) -> int:
    """Run the rounds and print the table."""
    limits = httpx.Limits(max_connections=args.claimers + 10)
    async with httpx.AsyncClient(base_url=args.base_url, timeout=60, limits=limits) as http:
        escalator, seniors = await setup(http, args.claimers)
        rounds = []
        for n in range(args.rounds):
            session_id, handoff_id = await escalate(http, escalator, n)
            url = f"/api/v1/ai-sessions/{session_id}/handoffs/{handoff_id}/claim"
            found, start = Round(), asyncio.Event()
            tasks = [asyncio.create_task(claim(http, h, url, start, found)) for h in seniors]
            # Seniors claim what they saw arrive: give the escalation's own fan-out (notifications, emails to the
            # whole team, the assessment) the moment it takes, and every task time to wait on the gun.
            await asyncio.sleep(args.settle_s)
            start.set()
            await asyncio.gather(*tasks)
            rounds.append(found)
            print(f"round {n + 1}: {dict(found.statuses)}", file=sys.stderr)
    latencies = [x for r in rounds for x in r.latencies]
    ok = all(len(r.winners) == 1 and r.statuses[200] == 1 and r.statuses[409] == args.claimers - 1
             and r.named_in_409 <= r.winners for r in rounds)
    print(f"\nclaim race: {args.claimers} engineers claim one escalation at once, {args.rounds} rounds, "
          f"{os.cpu_count()} CPUs, {platform.system()} {platform.machine()}")
    print(f"{'round':>5} {'winners':>8} {'409s':>6} {'other':>6}  409s name the winner")
    for n, r in enumerate(rounds, 1):
        other = sum(c for s, c in r.statuses.items() if s not in (200, 409))
        print(f"{n:>5} {r.statuses[200]:>8} {r.statuses[409]:>6} {other:>6}  {r.named_in_409 <= r.winners}")
    print(f"claim latency: p50 {pct(latencies, 50):.0f} ms, p99 {pct(latencies, 99):.0f} ms, "
          f"max {1000 * max(latencies):.0f} ms (target p99 <= 500 ms)")
    print("result:", "OK: exactly one winner per round" if ok else "FAILED: see the table")
    return 0 if ok else 1


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--claimers", type=int, default=50, help="engineers claiming at once (default 50)")
    parser.add_argument("--rounds", type=int, default=3, help="escalations raced for (default 3)")
    parser.add_argument("--settle-s", type=float, default=2.0,
                        help="seconds between escalating and the claims (default 2)")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
