"""A workflow that finishes in its first task: the order such workflows finish in is the order matching
dispatched them (tests/test_fairness.py)."""

from __future__ import annotations

from temporalio import workflow


@workflow.defn
class FirstTaskWorkflow:
    """Completes at once."""

    @workflow.run
    async def run(self) -> str:
        """Return the workflow id."""
        return workflow.info().workflow_id
