"""A trivial workflow whose update round-trip is the latency floor benchmarks compare against."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel


class EchoInput(BaseModel):
    """The payload echoed back."""

    value: str = ""


@workflow.defn
class EchoWorkflow:
    """Answers `echo` updates until told to stop; does no I/O."""

    def __init__(self) -> None:
        self._done = False
        self._count = 0

    @workflow.run
    async def run(self) -> int:
        """Wait for `stop`, then return how many echoes were served."""
        await workflow.wait_condition(lambda: self._done)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._count

    @workflow.update
    async def echo(self, payload: EchoInput) -> EchoInput:
        """Return the payload unchanged."""
        self._count += 1
        return payload

    @workflow.signal
    def stop(self) -> None:
        """Let the workflow complete."""
        self._done = True
