"""L1IntakeWorkflow: classifies an L1 problem with the `llm.classify_intake` activity.

A short workflow, so the API never calls the model itself and the call gets Temporal's retries.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.contracts.llm import CLASSIFY_INTAKE, ClassifyIntakeInput, IntakeClassification


@workflow.defn
class L1IntakeWorkflow:
    """match / build / out_of_scope for one problem statement."""

    @workflow.run
    async def run(self, inp: ClassifyIntakeInput) -> IntakeClassification:
        """Ask the model (or the offline provider) and return its classification."""
        return await CLASSIFY_INTAKE(inp)
