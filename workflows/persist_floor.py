"""PersistFloorWorkflow: the least a command can cost here, for the benches to measure commands against.

Like every entity workflow it is sandboxed, holds its state, and answers an update only after one local
activity committed the change in Postgres (one guarded `UPDATE … RETURNING` on one row). Nothing else: no
validator, no search attributes, no reads.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contracts.persist_floor import BUMP_ROW, BumpInput, BumpResult, BumpRow, PersistFloorInput


@workflow.defn
class PersistFloorWorkflow:
    """Bumps its row's version once per `bump` update until told to stop."""

    @workflow.init
    def __init__(self, inp: PersistFloorInput) -> None:
        self._row_id = inp.row_id
        self._version = 0
        self._done = False
        self._lock = asyncio.Lock()  # as the entity workflows: accepted commands apply one at a time

    @workflow.run
    async def run(self, inp: PersistFloorInput) -> int:
        """Serve `bump` until `stop`; the row's last version."""
        await workflow.wait_condition(lambda: self._done)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._version

    @workflow.update
    async def bump(self, _: BumpInput) -> BumpResult:
        """Persist one change, then answer it."""
        async with self._lock:
            result = await BUMP_ROW(BumpRow(row_id=self._row_id, version=self._version))
            self._version = result.version
            return result

    @workflow.signal
    def stop(self) -> None:
        """Let the workflow complete."""
        self._done = True
