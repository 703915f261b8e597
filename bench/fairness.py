"""One account's burst against another account's walks: fairness, admission and the burst's own fate (issue 23).

    .venv/bin/python bench/fairness.py --base-url http://127.0.0.1:8000 --burst 100 --steps 10

Needs a running stack (`rflow dev`). Registers accounts A and B, each with a linear flow of `--steps` questions.
B walks alone first (`--alone-walks` walks one after another: intake, every step, resolve). Then A starts
`--burst` walks at once while B keeps walking one walk after another until A's burst is over. B walks from a
process of its own, as its technicians sit at other machines: in A's process its answers would wait behind the
burst's hundred in the bench's own event loop, and the bench would time itself (`--b-in-process` does that).
Every request carries an Idempotency-Key; a 429 is sent again with the same key after its Retry-After (the time
until it is served counts in its latency), and the bench says how many 429s it met. Anything else that is not a
2xx, or a dropped connection, is a failed request. Prints three lines a script reads:

    fairness: B step p99 ratio (burst/alone)  2.1
    fairness: B intake p99 ms during burst  640
    fairness: failed requests  0

With `--serial-walks K` it also walks K walks one at a time and prints how long the burst took against the same
work done one at a time (K walks' time scaled to `--burst`). Exits 1 when a target is missed (`--target-ratio`,
`--target-intake-ms`, no failed request).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from floor import Samples, http_client, register, run_bounded
from l1_walk import linear_tree

RETRY_CAP_S = 120.0  # a request still refused after this long counts as failed


@dataclass
class Account:
    """One account's headers, flow and what its requests met."""

    name: str
    headers: dict[str, str]
    flow_id: str
    steps: Samples = field(default_factory=Samples)
    intakes: Samples = field(default_factory=Samples)
    refused_429: int = 0
    failures: list[str] = field(default_factory=list)


async def send(http: httpx.AsyncClient, account: Account, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST with an Idempotency-Key, sent again with it after each 429's Retry-After; raises on anything else."""
    headers = {**account.headers, "Idempotency-Key": str(uuid.uuid4())}
    deadline = time.perf_counter() + RETRY_CAP_S
    while True:
        resp = await http.post(path, headers=headers, json=body)
        if resp.status_code != 429 or time.perf_counter() > deadline:
            resp.raise_for_status()
            answer: dict[str, Any] = resp.json()
            return answer
        account.refused_429 += 1
        await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))


async def walk(http: httpx.AsyncClient, account: Account) -> bool:
    """Intake (timed), every step (timed), resolve; False when a request failed (it is recorded)."""
    try:
        started = time.perf_counter()
        body = await send(http, account, "/api/v1/l1/intake",
                          {"problem_statement": "fairness bench walk", "flow_id": account.flow_id})
        account.intakes.latencies.append(time.perf_counter() - started)
        sid, node = body["session_id"], body["pending_node"]
        while node is not None and node["kind"] == "question":
            started = time.perf_counter()
            body = await send(http, account, f"/api/v1/l1/sessions/{sid}/step",
                              {"node_id": node["id"], "answer": node["options"][0]})
            account.steps.latencies.append(time.perf_counter() - started)
            node = body["next_node"]
        await send(http, account, f"/api/v1/l1/sessions/{sid}/resolve", {"helpful": True})
        return True
    except httpx.HTTPStatusError as exc:
        account.failures.append(f"{exc.response.status_code} {exc.request.url.path}: {exc.response.text[:160]}")
    except httpx.TransportError as exc:
        account.failures.append(f"{type(exc).__name__} {exc.request.url.path}: {exc}")
    return False


async def account(http: httpx.AsyncClient, name: str, steps: int) -> Account:
    """A fresh account whose owner walks, with its flow."""
    headers = await register(http)
    resp = await http.post("/api/v1/l1/flows", headers=headers, json={
        "title": f"fairness flow {name}", "category": "software", "keywords": ["fairness"],
        "tree": linear_tree(steps)})
    resp.raise_for_status()
    return Account(name, headers, str(resp.json()["id"]))


async def b_side(base_url: str, b: Account, alone_walks: int, alone_done: Callable[[], object],
                 burst_started: Callable[[], Awaitable[object]], over: Callable[[], bool]) -> dict[str, Any]:
    """B's walks: a warm-up, `alone_walks` alone, then (once the burst starts) one after another until `over`."""
    async with http_client(base_url, 4) as http:
        alone = Account("B alone", b.headers, b.flow_id)  # the same account, its own samples
        await walk(http, alone)  # warm-up (not counted)
        alone.steps, alone.intakes = Samples(), Samples()
        for _ in range(alone_walks):
            await walk(http, alone)
        alone_done()
        await burst_started()
        beside = Account("B", b.headers, b.flow_id)
        finished = 0
        while not over():
            finished += await walk(http, beside)
    # Plain data: it crosses a process boundary.
    return {"alone": _plain(alone), "beside": _plain(beside), "walks": finished}


def _plain(account: Account) -> dict[str, Any]:
    return {"steps": account.steps.latencies, "intakes": account.intakes.latencies,
            "refused_429": account.refused_429, "failures": account.failures}


def _account(name: str, plain: dict[str, Any]) -> Account:
    return Account(name, {}, "", Samples(plain["steps"]), Samples(plain["intakes"]), plain["refused_429"],
                   plain["failures"])


def _b_process(base_url: str, b: Account, alone_walks: int, alone_done: Any, burst: Any, done: Any,
               results: Any) -> None:
    """B's side in a process of its own (multiprocessing events in place of asyncio's)."""
    results.put(asyncio.run(b_side(base_url, b, alone_walks, alone_done.set,
                                   lambda: asyncio.to_thread(burst.wait), done.is_set)))


async def run(args: argparse.Namespace) -> int:
    """B alone, then A's burst with B beside it; print the figures and the three lines."""
    async with http_client(args.base_url, args.burst + 4) as http:
        a, b = await account(http, "A", args.steps), await account(http, "B", args.steps)
        release: Callable[[], object]  # lets B's walks beside the burst start
        finish: Callable[[], object]  # ends them
        if args.b_in_process:
            alone_done, burst, done = asyncio.Event(), asyncio.Event(), asyncio.Event()
            b_task = asyncio.ensure_future(b_side(args.base_url, b, args.alone_walks, alone_done.set, burst.wait,
                                                  done.is_set))
            await alone_done.wait()
            release, finish = burst.set, done.set
        else:
            ctx = multiprocessing.get_context("spawn")  # no fork of a running event loop
            mp_alone, mp_burst, mp_done, results = ctx.Event(), ctx.Event(), ctx.Event(), ctx.Queue()
            process = ctx.Process(target=_b_process, daemon=True,
                                  args=(args.base_url, b, args.alone_walks, mp_alone, mp_burst, mp_done, results))
            process.start()
            while not await asyncio.to_thread(mp_alone.wait, 1.0):
                if not process.is_alive():
                    raise RuntimeError(f"B's process ended before walking alone (exit code {process.exitcode})")
            release, finish = mp_burst.set, mp_done.set

        serial_s = None
        if args.serial_walks:
            started = time.perf_counter()
            for _ in range(args.serial_walks):
                await walk(http, a)
            serial_s = (time.perf_counter() - started) * args.burst / args.serial_walks
            a.steps, a.intakes = Samples(), Samples()

        if not args.b_beside:
            finish()  # B stops after walking alone: A's burst has the stack to itself
        release()
        started = time.perf_counter()
        finished = await asyncio.gather(*(walk(http, a) for _ in range(args.burst)))
        burst_s = time.perf_counter() - started
        finish()
        if args.b_in_process:
            b_side_result = await b_task
        else:
            b_side_result = await asyncio.to_thread(results.get, True, 120)
            process.join(10)
    b_alone, b = _account("B alone", b_side_result["alone"]), _account("B", b_side_result["beside"])
    b_walks = b_side_result["walks"]

    failures = a.failures + b.failures + b_alone.failures
    ratio = b.steps.pct(99) / b_alone.steps.pct(99)
    rows = [
        ("B alone: intake p50 / p99", f"{b_alone.intakes.pct(50):.0f} / {b_alone.intakes.pct(99):.0f} ms"),
        ("B alone: step p50 / p99", f"{b_alone.steps.pct(50):.1f} / {b_alone.steps.pct(99):.1f} ms "
                                    f"({len(b_alone.steps.latencies)} steps)"),
        (f"A's burst: {args.burst} walks x {args.steps} steps", f"{sum(finished)} finished in {burst_s:.1f} s"),
        ("B during the burst: intake p50 / p99 / max",
         f"{b.intakes.pct(50):.0f} / {b.intakes.pct(99):.0f} / {b.intakes.pct(100):.0f} ms ({b_walks} walks)"),
        ("B during the burst: step p50 / p99", f"{b.steps.pct(50):.1f} / {b.steps.pct(99):.1f} ms "
                                               f"({len(b.steps.latencies)} steps)"),
        ("A's step p50 / p99 in the burst", f"{a.steps.pct(50):.0f} / {a.steps.pct(99):.0f} ms"),
        ("429s met and retried (A / B)", f"{a.refused_429} / {b.refused_429 + b_alone.refused_429}"),
    ]
    if serial_s is not None:
        rows.append((f"the same {args.burst} walks one at a time",
                     f"{serial_s:.1f} s (from {args.serial_walks} walked in a row); the burst took "
                     f"{burst_s / serial_s:.2f}x that"))
    width = max(len(name) for name, _ in rows)
    print(f"\nFairness bench against {args.base_url}")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    for failure in failures[:5]:
        print(f"  failed: {failure}")
    # Exactly these prefixes: scripts read them (issue 23).
    print(f"fairness: B step p99 ratio (burst/alone)  {ratio:.2f}")
    print(f"fairness: B intake p99 ms during burst  {b.intakes.pct(99):.0f}")
    print(f"fairness: failed requests  {len(failures)}")
    ok = not failures and ratio <= args.target_ratio and b.intakes.pct(99) <= args.target_intake_ms
    print(f"targets (B step p99 ratio <= {args.target_ratio:g}, B intake p99 <= {args.target_intake_ms:g} ms, "
          f"no failed request): {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


def main() -> int:
    """Parse arguments and run with an overall time limit."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--burst", type=int, default=100, help="walks account A starts at once")
    parser.add_argument("--steps", type=int, default=10, help="questions per walk")
    parser.add_argument("--alone-walks", type=int, default=5, help="walks B takes alone first")
    parser.add_argument("--serial-walks", type=int, default=0,
                        help="also walk this many of A's walks one at a time, to compare the burst with")
    parser.add_argument("--target-ratio", type=float, default=3.0, help="most B step p99 burst/alone")
    parser.add_argument("--target-intake-ms", type=float, default=1000.0, help="most B intake p99 in the burst")
    parser.add_argument("--b-beside", action=argparse.BooleanOptionalAction, default=True,
                        help="B walks during A's burst (--no-b-beside: the burst alone, its time without B; the "
                             "ratio lines are then nan)")
    parser.add_argument("--b-in-process", action="store_true",
                        help="walk B in the bench's own process and event loop, beside A's burst (as before)")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="give up after this long")
    return run_bounded(run, parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
