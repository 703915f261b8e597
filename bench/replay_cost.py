"""What a workflow evicted from the worker's cache costs to rebuild, under each of the worker's sandboxes.

    python3 run.py bench replay_cost [--rounds 30]

A workflow's next task after an eviction (or after a worker restart) builds a new instance in a new sandbox and
replays its whole history before it can run the task. This replays the suite's recorded histories
(tests/workflows/histories: a fix, a handoff, sessions and walks from their start to their end) with the
`Replayer` and the worker's own runners, `--rounds` times each after one warm-up, and prints the mean CPU time
of one replay per history and runner: `shared` (what the worker runs: our workflow modules imported once),
`strict` (what the suite runs: each instance imports them afresh) and, as the floor no sandbox can beat, no
sandbox at all. Needs nothing running.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, WorkflowRunner

from worker import RUNNERS
from workflows.registry import ALL_WORKFLOWS

HISTORIES = Path(__file__).resolve().parent.parent / "tests" / "workflows" / "histories"


async def replay_ms(runner: WorkflowRunner, history: WorkflowHistory, rounds: int) -> float:
    """Mean CPU milliseconds of one replay of `history` with a new instance each time."""
    replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=pydantic_data_converter, workflow_runner=runner)
    await replayer.replay_workflow(history)  # warm-up: the first one also imports and validates the workflows
    started = time.process_time()
    for _ in range(rounds):
        await replayer.replay_workflow(history)
    return 1000 * (time.process_time() - started) / rounds


async def run(args: argparse.Namespace) -> int:
    """Replay every recorded history under every runner; print one row per history."""
    runners: dict[str, WorkflowRunner] = {**RUNNERS, "no sandbox": UnsandboxedWorkflowRunner()}
    paths = sorted(HISTORIES.glob("*.json"))
    if not paths:
        print(f"no histories in {HISTORIES}", file=sys.stderr)
        return 2
    print(f"Rebuilding an evicted workflow: CPU ms per replay, mean of {args.rounds} (python {sys.version.split()[0]})")
    print(f"  {'history':<44} {'events':>6}  " + "  ".join(f"{name:>10}" for name in runners))
    totals = dict.fromkeys(runners, 0.0)
    for path in paths:
        history = WorkflowHistory.from_json(path.stem, path.read_text())
        cells = []
        for name, runner in runners.items():
            ms = await replay_ms(runner, history, args.rounds)
            totals[name] += ms
            cells.append(f"{ms:>10.1f}")
        print(f"  {path.stem:<44} {len(history.events):>6}  " + "  ".join(cells), flush=True)
    print(f"  {'mean':<44} {'':>6}  " + "  ".join(f"{totals[name] / len(paths):>10.1f}" for name in runners))
    print(f"shared / strict  {totals['shared'] / totals['strict']:.2f}")
    return 0


def main() -> int:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30, help="replays per history and runner, after a warm-up")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
