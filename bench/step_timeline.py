"""Where one walk step's wall-clock time goes, phase by phase, beside a floor update's.

    .venv/bin/python bench/step_timeline.py --base-url http://127.0.0.1:8000 --steps 30 \\
        --temporal-address 127.0.0.1:7233 --task-queue resolutionflow

Needs a running stack on *this* machine: it lines up the caller's clock with the event times in each
workflow's Temporal history, so client and server must share a clock. One caller, nothing else running:
`--steps` walk steps over HTTP (a fresh account and a linear flow), then as many EchoWorkflow `echo`
updates (the floor of bench/floor.py). For each command it splits the time between sending it and
having its answer at the workflow task the command caused:

- send -> task scheduled: the HTTP request, the API's work before the engine, the update RPC;
- scheduled -> started: the task waiting for the worker's poll;
- started -> completed: the worker (a step: two activations around its persistence local activity);
- completed -> answer: the server persisting the task, then (a walk step) the API's read and reply.

Prints the median of each phase (medians do not add up to the median total). Exits 0; it measures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field

from floor import http_client, parser_for, run_bounded
from l1_walk import setup
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter

from workflows.echo import EchoInput, EchoWorkflow

PHASES = ("send -> task scheduled", "scheduled -> started", "started -> completed", "completed -> answer", "total")


@dataclass
class Timeline:
    """Each phase's durations in milliseconds, one per command."""

    phases: dict[str, list[float]] = field(default_factory=lambda: {p: [] for p in PHASES})

    def median(self, phase: str) -> str:
        """The phase's median (a dash when no command could be split)."""
        values = self.phases[phase]
        return f"{statistics.median(values):.1f} ms" if values else "—"


def _at(event: HistoryEvent) -> float:
    return event.event_time.seconds + event.event_time.nanos / 1e9


async def split(handle: WorkflowHandle, sent: list[tuple[float, float]]) -> Timeline:
    """Line each (sent, answered) window up with the workflow task inside it in `handle`'s history."""
    events = [e async for e in handle.fetch_history_events()]
    timeline = Timeline()
    for start, end in sent:
        window = [e for e in events if start <= _at(e) <= end]
        first = {e.event_type: _at(e) for e in reversed(window)}  # the first of each type in the window
        scheduled = first.get(EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED)
        started = first.get(EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED)
        completed = first.get(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
        if scheduled is None or started is None or completed is None:
            continue  # the command rode on a task scheduled before it was sent: nothing to split
        for phase, seconds in zip(PHASES, (scheduled - start, started - scheduled, completed - started,
                                            end - completed, end - start), strict=True):
            timeline.phases[phase].append(1000 * seconds)
    return timeline


async def walk_steps(args: argparse.Namespace, client: Client) -> Timeline:
    """`--steps` steps of one walk over HTTP, one after another."""
    async with http_client(args.base_url, 1) as http:
        headers, flow_id = await setup(http, args.steps + 1)
        resp = await http.post("/api/v1/l1/intake", headers=headers,
                               json={"problem_statement": "timeline walk", "flow_id": flow_id})
        resp.raise_for_status()
        sid, node = resp.json()["session_id"], resp.json()["pending_node"]
        sent: list[tuple[float, float]] = []
        for _ in range(args.steps):
            start = time.time()
            resp = await http.post(f"/api/v1/l1/sessions/{sid}/step", headers=headers,
                                   json={"node_id": node["id"], "answer": node["options"][0]})
            sent.append((start, time.time()))
            resp.raise_for_status()
            node = resp.json()["next_node"]
        resp = await http.post(f"/api/v1/l1/sessions/{sid}/resolve", headers=headers, json={"helpful": True})
        resp.raise_for_status()
    return await split(client.get_workflow_handle(f"walk-{sid}"), sent)


async def floor_updates(args: argparse.Namespace, client: Client) -> Timeline:
    """As many echo updates as steps, one after another, on one EchoWorkflow."""
    handle = await client.start_workflow(EchoWorkflow.run, id=f"bench-echo-{uuid.uuid4()}", task_queue=args.task_queue)
    await handle.execute_update(EchoWorkflow.echo, EchoInput(value="warm"))
    sent: list[tuple[float, float]] = []
    for i in range(args.steps):
        start = time.time()
        await handle.execute_update(EchoWorkflow.echo, EchoInput(value=str(i)))
        sent.append((start, time.time()))
    await handle.signal(EchoWorkflow.stop)
    return await split(handle, sent)


async def run(args: argparse.Namespace) -> int:
    """Measure both and print the phases side by side."""
    client = await Client.connect(args.temporal_address, namespace=args.namespace,
                                  data_converter=pydantic_data_converter)
    step, floor = await walk_steps(args, client), await floor_updates(args, client)
    print(f"\nWhere a walk step's time goes, 1 caller, medians of {len(step.phases['total'])} steps and "
          f"{len(floor.phases['total'])} floor updates ({args.base_url}, Temporal {args.temporal_address})")
    width = max(map(len, PHASES))
    print(f"  {'phase':<{width}}  {'walk step':>10}  {'floor':>10}")
    for phase in PHASES:
        print(f"  {phase:<{width}}  {step.median(phase):>10}  {floor.median(phase):>10}")
    return 0


def main() -> int:
    """Parse arguments and run with an overall time limit."""
    parser = parser_for(__doc__, latency=1.3, throughput=0.75)
    parser.add_argument("--steps", type=int, default=30, help="walk steps, and floor updates, to time")
    return run_bounded(run, parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
