"""A walk workflow with a bug, in a module of its own so the workflow sandbox can import it."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contracts.walk import NotesInput, WalkInput


@workflow.defn(name="WalkSessionWorkflow")
class BrokenWalkWorkflow:
    """A deploy with a bug: handling a command fails the workflow task (Temporal retries it, the run stays open)."""

    @workflow.run
    async def run(self, inp: WalkInput) -> str:
        """Waits forever."""
        await workflow.wait_condition(lambda: False)
        return "never"

    @workflow.update(name="add_notes")
    async def add_notes(self, inp: NotesInput) -> None:
        """Fails its workflow task: a plain exception is a bug, which Temporal retries rather than fails."""
        raise RuntimeError("a bug in the new workflow code")
