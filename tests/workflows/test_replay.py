"""Saved histories of every entity workflow replay against today's code, so runs in flight survive a deploy."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from worker import RUNNERS
from workflows.fix_verification import FixVerificationWorkflow
from workflows.handoff import HandoffWorkflow
from workflows.troubleshooting_session import TroubleshootingSessionWorkflow
from workflows.walk_session import WalkSessionWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))
TEXTS = {p: p.read_text() for p in HISTORIES}


def test_there_are_histories_to_replay() -> None:
    prefixes = sorted({p.stem.split("_")[0] for p in HISTORIES})
    assert prefixes == ["fix", "handoff", "session", "walk"], "run `python -m tests.workflows.record_histories`"
    assert len(HISTORIES) >= 6, "run `python -m tests.workflows.record_histories`"


@pytest.mark.parametrize("sandbox", sorted(RUNNERS))
@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path, sandbox: str) -> None:
    history = WorkflowHistory.from_json(path.stem, TEXTS[path])
    replayer = Replayer(workflows=[WalkSessionWorkflow, TroubleshootingSessionWorkflow, FixVerificationWorkflow,
                                   HandoffWorkflow],
                        data_converter=pydantic_data_converter, workflow_runner=RUNNERS[sandbox])
    await replayer.replay_workflow(history)
