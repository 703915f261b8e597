"""L1 walk throughput and step latency over HTTP, against the floor of a no-op Temporal update.

    .venv/bin/python bench/l1_walk.py --base-url http://127.0.0.1:8000 --walks 50 --steps 10 \\
        --temporal-address 127.0.0.1:7233 --task-queue resolutionflow

Needs a running stack (`rflow dev`, or Temporal + worker + API by hand). Registers a fresh account,
authors a linear flow of `--steps` questions, then runs 3 walks one after another (1 caller alone) and
`--walks` walks at once: intake, every step (timed), resolve. In the same run it measures the floor
(bench/floor.py): EchoWorkflow `echo` updates (no I/O) on the same Temporal and task queue, one caller at a
time and `--walks` callers at once. Stops by itself (`--max-seconds`), prints a short table with issue 11's
two ratios, and exits 1 when one misses its target (`--target-throughput-ratio`, steps/s with `--walks`
walks ÷ floor updates/s with as many callers, at least 0.5; `--target-latency-ratio`, step p50 of the walk
alone ÷ floor p50 with 1 caller, at most 1.5) or a request failed.
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


async def walk(http: httpx.AsyncClient, headers: dict[str, str], flow_id: str, samples: Samples) -> None:
    """Intake, every step (timed), resolve; a failed request ends the walk and is counted."""
    try:
        await _walk(http, headers, flow_id, samples)
    except (httpx.HTTPStatusError, httpx.TransportError) as exc:
        samples.failed(exc)


async def _walk(http: httpx.AsyncClient, headers: dict[str, str], flow_id: str, samples: Samples) -> None:
    resp = await http.post("/api/v1/l1/intake", headers=headers,
                           json={"problem_statement": "bench walk", "flow_id": flow_id})
    resp.raise_for_status()
    sid, node = resp.json()["session_id"], resp.json()["pending_node"]
    while node is not None and node["kind"] == "question":
        started = time.perf_counter()
        resp = await http.post(f"/api/v1/l1/sessions/{sid}/step", headers=headers,
                               json={"node_id": node["id"], "answer": node["options"][0]})
        samples.latencies.append(time.perf_counter() - started)
        resp.raise_for_status()
        node = resp.json()["next_node"]
    resp = await http.post(f"/api/v1/l1/sessions/{sid}/resolve", headers=headers, json={"helpful": True})
    resp.raise_for_status()


async def walks_phase(base_url: str, walks: int, steps: int, rounds: int = 1) -> Samples:
    """`rounds` times `walks` concurrent walks over HTTP (after one warm-up walk)."""
    async with http_client(base_url, walks) as http:
        headers, flow_id = await setup(http, steps)
        await walk(http, headers, flow_id, Samples())
        samples = Samples()
        started = time.perf_counter()
        for _ in range(rounds):
            await asyncio.gather(*(walk(http, headers, flow_id, samples) for _ in range(walks)))
        samples.wall_s = time.perf_counter() - started
        return samples


async def run(args: argparse.Namespace) -> int:
    """Run both phases and print the table; exit 1 when a target is missed."""
    floor = await floors(args, args.walks, args.steps, args.steps * 5)
    alone = await walks_phase(args.base_url, 1, args.steps, rounds=3)
    steps = await walks_phase(args.base_url, args.walks, args.steps)
    rows = [
        ("walks x steps", f"{args.walks} x {args.steps} = {len(steps.latencies)} steps in {steps.wall_s:.2f}s "
                          "(intake and resolve included in the time)"),
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
