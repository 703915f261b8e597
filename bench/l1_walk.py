"""L1 walk throughput and step latency over HTTP, against the floor of a no-op Temporal update.

    .venv/bin/python bench/l1_walk.py --base-url http://127.0.0.1:8000 --walks 50 --steps 10 \\
        --temporal-address 127.0.0.1:7233 --task-queue resolutionflow

Needs a running stack (`rflow dev`, or Temporal + worker + API by hand). Registers a fresh account,
authors a linear flow of `--steps` questions, then runs 3 walks one after another (1 caller alone) and
`--walks` walks at once: every walk's intake, then every walk's steps at once (the timed part: steps/s is
over it), then every resolve. A step is an update to a running workflow, as the floor's bump is (the floor
starts its rows' workflows before timing); the whole walks' rate, intake and resolve included, is printed
beside it. In the same run it measures the persist floor and the no-op floor (bench/floor.py). Stops by
itself (`--max-seconds`), prints a short table with issue 22's two ratios, and exits 1 when one misses its
target (`--target-throughput-ratio`, steps/s with `--walks` walks ÷ persist-floor bumps/s with as many
callers, at least 0.75; `--target-latency-ratio`, step p50 of the walk alone ÷ persist-floor p50 with
1 caller, at most 1.3) or a request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import httpx
from floor import Samples, floors, http_client, parser_for, register, report, run_bounded


def linear_tree(steps: int) -> dict[str, Any]:
    """A flow that asks `steps` questions in a row, then resolves."""
    nodes = {}
    for i in range(steps):
        last = i + 1 == steps
        option = {"label": "done", "resolution": "Bench walk finished."} if last else {"label": "next",
                                                                                         "next": f"n{i + 1}"}
        nodes[f"n{i}"] = {"question": f"Bench check {i}?", "options": [option]}
    return {"root": "n0", "nodes": nodes}


async def setup(http: httpx.AsyncClient, steps: int) -> tuple[dict[str, str], str]:
    """A fresh account (owner may walk) and its bench flow."""
    headers = await register(http)
    resp = await http.post("/api/v1/l1/flows", headers=headers, json={
        "title": "bench flow", "category": "software", "keywords": ["bench"], "tree": linear_tree(steps)})
    resp.raise_for_status()
    return headers, str(resp.json()["id"])


Walk = tuple[str, dict[str, Any] | None]  # (session id, the node it waits on)


async def intake(http: httpx.AsyncClient, headers: dict[str, str], flow_id: str, samples: Samples) -> Walk | None:
    """A new walk of the flow (None when the intake failed: counted)."""
    try:
        resp = await http.post("/api/v1/l1/intake", headers=headers,
                               json={"problem_statement": "bench walk", "flow_id": flow_id})
        resp.raise_for_status()
    except (httpx.HTTPStatusError, httpx.TransportError) as exc:
        samples.failed(exc)
        return None
    return str(resp.json()["session_id"]), resp.json()["pending_node"]


async def steps_of(http: httpx.AsyncClient, headers: dict[str, str], walk: Walk, samples: Samples) -> bool:
    """Every step of the walk, each timed; False when a request failed (counted)."""
    sid, node = walk
    try:
        while node is not None and node["kind"] == "question":
            started = time.perf_counter()
            resp = await http.post(f"/api/v1/l1/sessions/{sid}/step", headers=headers,
                                   json={"node_id": node["id"], "answer": node["options"][0]})
            samples.latencies.append(time.perf_counter() - started)
            resp.raise_for_status()
            node = resp.json()["next_node"]
    except (httpx.HTTPStatusError, httpx.TransportError) as exc:
        samples.failed(exc)
        return False
    return True


async def resolve(http: httpx.AsyncClient, headers: dict[str, str], sid: str, samples: Samples) -> None:
    """Close the walk as helpful (a failure is counted)."""
    try:
        (await http.post(f"/api/v1/l1/sessions/{sid}/resolve", headers=headers,
                         json={"helpful": True})).raise_for_status()
    except (httpx.HTTPStatusError, httpx.TransportError) as exc:
        samples.failed(exc)


async def walks_phase(base_url: str, walks: int, steps: int, rounds: int = 1) -> tuple[Samples, float]:
    """`rounds` times `walks` concurrent walks over HTTP (after one warm-up walk): every intake, then every
    walk's steps at once (the timed part: `wall_s`), then every resolve. Also returns the whole walks' time.

    Steps are timed apart from intake and resolve as the floor's bumps are apart from its rows' starts
    (bench/floor.py warms each row's workflow up before timing): a step is an update to a running workflow."""
    async with http_client(base_url, walks) as http:
        headers, flow_id = await setup(http, steps)
        warm = await intake(http, headers, flow_id, Samples())
        if warm is not None and await steps_of(http, headers, warm, Samples()):
            await resolve(http, headers, warm[0], Samples())
        samples, whole = Samples(), 0.0
        for _ in range(rounds):
            started = time.perf_counter()
            opened = [w for w in await asyncio.gather(*(intake(http, headers, flow_id, samples)
                                                          for _ in range(walks))) if w is not None]
            stepping = time.perf_counter()
            walked = await asyncio.gather(*(steps_of(http, headers, w, samples) for w in opened))
            samples.wall_s += time.perf_counter() - stepping
            done = [w for w, ok in zip(opened, walked, strict=True) if ok]
            await asyncio.gather(*(resolve(http, headers, w[0], samples) for w in done))
            whole += time.perf_counter() - started
        return samples, whole


async def run(args: argparse.Namespace) -> int:
    """Run both phases and print the table; exit 1 when a target is missed."""
    floor = await floors(args, args.walks, args.steps, args.steps * 5)
    alone, _ = await walks_phase(args.base_url, 1, args.steps, rounds=3)
    steps, whole = await walks_phase(args.base_url, args.walks, args.steps)
    rows = [
        ("walks x steps", f"{args.walks} x {args.steps} = {len(steps.latencies)} steps in {steps.wall_s:.2f}s "
                          "(every walk's intake before, its resolve after)"),
        ("whole walks/s, intake and resolve included", f"{args.walks / whole:.2f} ({whole:.2f}s, "
                                                       f"{len(steps.latencies) / whole:.1f} steps/s)"),
    ]
    return report("L1 walk bench", rows, noun="step", loaded=steps, alone=alone,
                  floor=floor, callers=args.walks, args=args)


def main() -> int:
    """Parse arguments and run with an overall time limit."""
    parser = parser_for(__doc__, latency=1.3, throughput=0.75)
    parser.add_argument("--walks", type=int, default=50, help="concurrent walks (and floor callers)")
    parser.add_argument("--steps", type=int, default=10, help="questions per walk")
    return run_bounded(run, parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
