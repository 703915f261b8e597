"""L1 walk throughput and step latency over HTTP, against the floor of a no-op Temporal update.

    .venv/bin/python bench/l1_walk.py --base-url http://127.0.0.1:8000 --walks 50 --steps 10 \\
        --temporal-address 127.0.0.1:7233 --task-queue resolutionflow

Needs a running stack (`rflow dev`, or Temporal + worker + API by hand). Registers a fresh account,
authors a linear flow of `--steps` questions, then runs `--walks` walks at once: intake, every step,
resolve. In the same run it measures the floor: EchoWorkflow `echo` updates (no I/O) on the same
Temporal and task queue, one caller at a time and `--walks` callers at once. Stops by itself
(`--max-seconds`) and prints a short table.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from workflows.echo import EchoInput, EchoWorkflow

PASSWORD = "Bench-Password-123!"


@dataclass
class Samples:
    """Latencies in seconds, plus how long the whole phase took."""

    latencies: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    def pct(self, p: float) -> float:
        """The p-th percentile in milliseconds."""
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else float("nan")


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
    email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
    resp = await http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD, "name": "Bench"})
    resp.raise_for_status()
    resp = await http.post("/api/v1/auth/login/json", json={"email": email, "password": PASSWORD})
    resp.raise_for_status()
    headers = {"Authorization": f"Bearer {resp.json()['access_token']}"}
    resp = await http.post("/api/v1/l1/flows", headers=headers, json={
        "title": "bench flow", "category": "software", "keywords": ["bench"], "tree": linear_tree(steps)})
    resp.raise_for_status()
    return headers, str(resp.json()["id"])


async def walk(http: httpx.AsyncClient, headers: dict[str, str], flow_id: str, samples: Samples) -> None:
    """Intake, every step (timed), resolve; a failed request ends the walk and is counted."""
    try:
        await _walk(http, headers, flow_id, samples)
    except httpx.HTTPStatusError as exc:
        samples.errors.append(f"{exc.response.status_code} {exc.request.url.path}: {exc.response.text[:120]}")
    except httpx.TransportError as exc:  # a dropped connection is a failed request too, not a crashed bench
        samples.errors.append(f"{type(exc).__name__} {exc.request.url.path}: {exc}")


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
    # Drop idle connections before uvicorn's 5 s keep-alive timeout does: reusing one the server is
    # closing at that moment fails the request (httpx.ReadError).
    limits = httpx.Limits(max_connections=walks + 5, max_keepalive_connections=walks + 5, keepalive_expiry=2.0)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as http:
        headers, flow_id = await setup(http, steps)
        await walk(http, headers, flow_id, Samples())
        samples = Samples()
        started = time.perf_counter()
        for _ in range(rounds):
            await asyncio.gather(*(walk(http, headers, flow_id, samples) for _ in range(walks)))
        samples.wall_s = time.perf_counter() - started
        return samples


async def floor_phase(client: Client, task_queue: str, callers: int, updates_each: int) -> Samples:
    """`callers` EchoWorkflows, each sent `updates_each` echo updates one after another."""
    handles = [
        await client.start_workflow(EchoWorkflow.run, id=f"bench-echo-{uuid.uuid4()}", task_queue=task_queue)
        for _ in range(callers)
    ]
    for handle in handles:  # warm-up: the first update of a run also pays its first workflow task
        await handle.execute_update(EchoWorkflow.echo, EchoInput(value="warm"))
    samples = Samples()

    async def drive(handle: Any) -> None:
        for i in range(updates_each):
            started = time.perf_counter()
            await handle.execute_update(EchoWorkflow.echo, EchoInput(value=str(i)))
            samples.latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(drive(h) for h in handles))
    samples.wall_s = time.perf_counter() - started
    for handle in handles:
        await handle.signal(EchoWorkflow.stop)
    return samples


async def run(args: argparse.Namespace) -> int:
    """Run both phases and print the table; exit 1 when a target is missed."""
    client = await Client.connect(args.temporal_address, namespace=args.namespace,
                                  data_converter=pydantic_data_converter)
    floor_1 = await floor_phase(client, args.task_queue, 1, args.steps * 5)
    floor_n = await floor_phase(client, args.task_queue, args.walks, args.steps)
    alone = await walks_phase(args.base_url, 1, args.steps, rounds=3)
    steps = await walks_phase(args.base_url, args.walks, args.steps)
    rate = len(steps.latencies) / steps.wall_s
    rows = [
        ("walks x steps", f"{args.walks} x {args.steps} = {len(steps.latencies)} steps in {steps.wall_s:.2f}s"),
        ("steps/s (intake and resolve included)", f"{rate:.1f}"),
        (f"floor updates/s, {args.walks} callers", f"{len(floor_n.latencies) / floor_n.wall_s:.1f}"),
        ("failed requests", f"{len(steps.errors + alone.errors)}"
         + (f" (first: {(steps.errors + alone.errors)[0]})" if steps.errors + alone.errors else "")),
        ("step p50 / p99 (HTTP)", f"{steps.pct(50):.1f} / {steps.pct(99):.1f} ms"),
        ("floor p50 / p99, 1 caller", f"{floor_1.pct(50):.1f} / {floor_1.pct(99):.1f} ms"),
        (f"floor p50 / p99, {args.walks} callers", f"{floor_n.pct(50):.1f} / {floor_n.pct(99):.1f} ms"),
        (f"ratio p50 step / floor ({args.walks} callers)", f"{steps.pct(50) / floor_n.pct(50):.2f}x"),
        ("step p50 / p99, 1 walk alone", f"{alone.pct(50):.1f} / {alone.pct(99):.1f} ms"),
        ("steps/s, 1 walk alone (3 walks in a row)", f"{len(alone.latencies) / alone.wall_s:.1f}"),
        ("ratio p50 step / floor, 1 walk vs 1 caller", f"{alone.pct(50) / floor_1.pct(50):.2f}x"),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"\nL1 walk bench against {args.base_url} (Temporal {args.temporal_address}, queue {args.task_queue})")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    fast_enough = steps.pct(50) <= args.target_ratio * floor_n.pct(50)
    ok = not (steps.errors or alone.errors) and rate >= args.target_rate and fast_enough
    print(f"  targets (>= {args.target_rate:g} steps/s, p50 <= {args.target_ratio:g}x floor): "
          f"{'met' if ok else 'MISSED'}")
    return 0 if ok else 1


def main() -> int:
    """Parse arguments and run with an overall time limit."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default="http://127.0.0.1:8000")
    parser.add_argument("--temporal-address", default="127.0.0.1:7233")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--task-queue", default="resolutionflow", help="the worker's queue (EchoWorkflow runs there)")
    parser.add_argument("--walks", type=int, default=50, help="concurrent walks (and floor callers)")
    parser.add_argument("--steps", type=int, default=10, help="questions per walk")
    parser.add_argument("--target-rate", type=float, default=100.0)
    parser.add_argument("--target-ratio", type=float, default=2.0)
    parser.add_argument("--max-seconds", type=float, default=300.0, help="give up after this long")
    args = parser.parse_args()

    async def bounded() -> int:
        async with asyncio.timeout(args.max_seconds):
            return await run(args)

    try:
        return asyncio.run(bounded())
    except TimeoutError:
        print(f"bench: gave up after {args.max_seconds:g}s", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
