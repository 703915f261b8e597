"""Commands on L1 walk workflows: the walk's id, start input and search attributes, nothing else."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.common import SearchAttributePair
from temporalio.workflow import UpdateMethodMultiParam

from core.config import Settings
from core.errors import Conflict
from services.workflow_client import StartSpec, WorkflowClient
from workflows.contracts.llm import LLM_SCHEDULE_TO_CLOSE, ClassifyIntakeInput, IntakeClassification
from workflows.contracts.search_attributes import SA_ACCOUNT_ID, SA_CATEGORY, SA_SESSION_KIND, SA_STATUS
from workflows.contracts.walk import (
    CreateInput,
    EscalateInput,
    EscalateResult,
    NotesInput,
    NotesResult,
    OpenInput,
    OpenResult,
    ResolveInput,
    ResolveResult,
    StepInput,
    StepResult,
    WalkCreate,
    WalkInput,
    walk_workflow_id,
)
from workflows.l1_intake import L1IntakeWorkflow
from workflows.walk_session import WalkSessionWorkflow

ParamT = TypeVar("ParamT")
ResultT = TypeVar("ResultT")
WHAT = "walk session"
# A flow step is one Postgres write; an AI-built step waits on the model.
STEP_RESULT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class WalkRef:
    """What a command needs to know of a walk before sending it (a short read, or what intake decided)."""

    id: uuid.UUID
    account_id: uuid.UUID
    status: str
    session_kind: str
    category: str | None
    problem_text: str = ""
    # Every column of the row as read with the caller (empty when the API has not read it): a step's answer is
    # this plus what the step wrote.
    row: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def of_row(cls, row: Mapping[str, Any]) -> WalkRef:
        """The ref of a walk read whole."""
        return cls(id=row["id"], account_id=row["account_id"], status=row["status"],
                   session_kind=row["session_kind"], category=row["category"], problem_text=row["problem_text"],
                   row=row)


class WalkCommands:
    """Sends each walk command as update-with-start on `walk-{id}`, so it always finds its workflow."""

    def __init__(self, workflows: WorkflowClient, settings: Settings) -> None:
        self._workflows = workflows
        self._settings = settings

    async def create(self, walk: WalkCreate, *, escalate: EscalateInput | None = None,
                     key: str | None = None) -> OpenResult:
        """Start the walk's workflow, which inserts its row (idempotent by id) and serves the first node."""
        ref = WalkRef(id=walk.session_id, account_id=walk.account_id, status="active",
                      session_kind=walk.session_kind, category=walk.category, problem_text=walk.problem_text)
        return await self._send(ref, WalkSessionWorkflow.create, CreateInput(walk=walk, escalate=escalate), key,
                                creating=True)

    async def step(self, ref: WalkRef, inp: StepInput, key: str | None) -> StepResult:
        """Answer the pending question."""
        return await self._send(ref, WalkSessionWorkflow.step, inp, key)

    async def open(self, ref: WalkRef) -> OpenResult:
        """The pending node (asks the model for an AI-built walk's first node)."""
        return await self._send(ref, WalkSessionWorkflow.open, OpenInput(), None)

    async def add_notes(self, ref: WalkRef, inp: NotesInput, key: str | None) -> NotesResult:
        """Append notes."""
        return await self._send(ref, WalkSessionWorkflow.add_notes, inp, key)

    async def resolve(self, ref: WalkRef, inp: ResolveInput, key: str | None) -> ResolveResult:
        """Close as resolved."""
        return await self._send(ref, WalkSessionWorkflow.resolve, inp, key)

    async def escalate(self, ref: WalkRef, inp: EscalateInput, key: str | None) -> EscalateResult:
        """Escalate to engineers."""
        return await self._send(ref, WalkSessionWorkflow.escalate, inp, key)

    async def classify_intake(self, inp: ClassifyIntakeInput) -> IntakeClassification:
        """Run the intake classification workflow and wait for its answer."""
        return await self._workflows.execute(
            L1IntakeWorkflow.run, inp, id=f"l1-intake-{uuid.uuid4()}", what="intake classification",
            limit=LLM_SCHEDULE_TO_CLOSE + timedelta(minutes=1), account_id=inp.context.account_id,
            failed="The AI could not classify the problem; try again or walk it ad hoc",
        )

    async def _send(self, ref: WalkRef, update: UpdateMethodMultiParam[[WalkSessionWorkflow, ParamT], ResultT],
                    arg: ParamT, key: str | None, *, creating: bool = False) -> ResultT:
        if not creating and ref.status != "active":
            # Checked here too so a finished session never gets a fresh workflow run just to say no.
            raise Conflict(f"This walk session is {ref.status}; only active sessions change")
        return await self._workflows.update(
            self._start(ref, creating), update, arg, what=WHAT, idempotency_key=key,
            result_timeout_s=max(STEP_RESULT_TIMEOUT_S, self._settings.workflow_call_timeout_s),
        )

    def _start(self, ref: WalkRef, creating: bool) -> StartSpec:
        summary = f"L1 {ref.session_kind} walk · {ref.category or 'uncategorised'}"
        if ref.problem_text:
            summary += f" · {ref.problem_text[:80]}"
        return StartSpec(
            run=WalkSessionWorkflow.run,
            arg=WalkInput(session_id=ref.id, account_id=ref.account_id,
                          idle_timeout_s=self._settings.l1_idle_timeout_s, max_depth=self._settings.l1_max_depth,
                          created_by_update=creating),
            id=walk_workflow_id(ref.id),
            search_attributes=(
                SearchAttributePair(SA_ACCOUNT_ID, str(ref.account_id)),
                SearchAttributePair(SA_STATUS, ref.status),
                SearchAttributePair(SA_SESSION_KIND, ref.session_kind),
                SearchAttributePair(SA_CATEGORY, ref.category or "none"),
            ),
            static_summary=summary,
            creating=creating,
            account_id=ref.account_id,
        )
