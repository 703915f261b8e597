"""A worker interceptor that drops workflow tasks after their commands committed, to test exactly-once.

Temporal records a local activity's result only when the workflow task that ran it completes. When that
completion is lost (the task timed out under load, "Workflow task not found"), the task runs again from
history: every update it held is delivered again and its persistence activities run a second time, although
their writes already committed. Failing the task from the worker does the same thing on demand: the server
drops everything the task did and schedules it again.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from temporalio import workflow
from temporalio.worker import (
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)


class DroppedTask(RuntimeError):
    """Raised from workflow code: not a Temporal failure, so it fails the workflow task, not the update."""


@dataclass
class TaskDropper(Interceptor):
    """Fail the workflow task each time `every` updates completed in it, `budget` times in all."""

    every: int = 3
    budget: int = 3
    dropped: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        """The inbound interceptor every workflow of this worker runs with."""
        dropper = self

        class _Inbound(WorkflowInboundInterceptor):
            completed_in_task = 0  # per workflow instance: a replay after a drop starts from zero

            async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
                result = await super().handle_update_handler(input)
                if workflow.unsafe.is_replaying():
                    return result
                self.completed_in_task += 1
                if self.completed_in_task >= dropper.every and dropper._take():
                    self.completed_in_task = 0
                    raise DroppedTask(f"test: dropping the workflow task after {dropper.every} committed updates")
                return result

        return _Inbound

    def _take(self) -> bool:
        with self._lock:
            if self.dropped >= self.budget:
                return False
            self.dropped += 1
            return True
