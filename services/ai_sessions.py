"""Commands on AI sessions and their fixes: workflow ids, start inputs and search attributes, nothing else."""

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
from workflows.contracts.ai_session import (
    TURN_RESULT_TIMEOUT,
    AddFixResult,
    CloseInput,
    CloseResult,
    DocumentKind,
    DocumentRequest,
    DocumentResult,
    FixDraft,
    MessageInput,
    MessageResult,
    SessionControl,
    SessionCreate,
    SessionInput,
    session_workflow_id,
)
from workflows.contracts.fix import (
    TERMINAL_STATUSES,
    ApplyInput,
    ClearProposalInput,
    FixCommandResult,
    FixInput,
    OutcomeInput,
    final_outcome,
    fix_workflow_id,
    not_appliable,
)
from workflows.contracts.handoff import HandoffCreated, HandoffRequest, ResumeInput, ResumeResult
from workflows.contracts.llm import LLM_SCHEDULE_TO_CLOSE, LlmCallContext
from workflows.contracts.psa import PSA_RESULT_TIMEOUT, PsaCloseResult
from workflows.contracts.search_attributes import SA_ACCOUNT_ID, SA_FIX_STATUS, SA_SESSION_KIND, SA_STATUS
from workflows.fix_verification import FixVerificationWorkflow
from workflows.session_document import SessionDocumentWorkflow
from workflows.troubleshooting_session import TroubleshootingSessionWorkflow

ParamT = TypeVar("ParamT")
ResultT = TypeVar("ResultT")
# A command that only writes Postgres (a fix, an outcome, a close) answers well within this.
WRITE_RESULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class AiSessionRef:
    """What a command needs to know of a session before sending it (a short read)."""

    id: uuid.UUID
    account_id: uuid.UUID
    status: str
    session_type: str
    state_version: int
    psa_ticket_id: str | None
    problem_summary: str = ""


@dataclass(frozen=True)
class FixRef:
    """What a command needs to know of a fix before sending it, and its row as read before it (with a command's
    `FixView` the row makes the whole answer)."""

    id: uuid.UUID
    session_id: uuid.UUID
    account_id: uuid.UUID
    status: str
    title: str
    row: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def of_row(cls, row: Mapping[str, Any]) -> FixRef:
        """The fix as the access read found it (every column)."""
        return cls(id=row["id"], session_id=row["session_id"], account_id=row["account_id"], status=row["status"],
                   title=row["title"], row=row)


def session_start(ref: AiSessionRef, settings: Settings, *, creating: bool = False) -> StartSpec:
    """How a command starts `session-{id}` when no run is serving it (every session command, a claim too)."""
    return StartSpec(
        run=TroubleshootingSessionWorkflow.run,
        arg=SessionInput(session_id=ref.id, account_id=ref.account_id, created_by_update=creating,
                         idle_timeout_s=settings.workflow_idle_unload_s),
        id=session_workflow_id(ref.id),
        search_attributes=(
            SearchAttributePair(SA_ACCOUNT_ID, str(ref.account_id)),
            SearchAttributePair(SA_STATUS, ref.status),
            SearchAttributePair(SA_SESSION_KIND, f"ai_{ref.session_type}"),
        ),
        static_summary=f"AI {ref.session_type} session · {ref.problem_summary[:100]}",
        creating=creating,
        account_id=ref.account_id,
    )


class SessionCommands:
    """Sends each session command as update-with-start on `session-{id}`, so it always finds its workflow."""

    def __init__(self, workflows: WorkflowClient, settings: Settings) -> None:
        self._workflows = workflows
        self._settings = settings

    async def create(self, create: SessionCreate, key: str | None) -> SessionControl:
        """Start the session's workflow, which inserts its row (idempotent by id)."""
        ref = AiSessionRef(id=create.session_id, account_id=create.account_id, status="active",
                           session_type=create.session_type, state_version=0, psa_ticket_id=create.psa_ticket_id,
                           problem_summary=create.problem_summary)
        return await self._send(ref, TroubleshootingSessionWorkflow.create, create, key, creating=True)

    async def message(self, ref: AiSessionRef, inp: MessageInput, key: str | None) -> MessageResult:
        """One turn of the conversation (waits on the model)."""
        self._require_active(ref)
        return await self._send(ref, TroubleshootingSessionWorkflow.message, inp, key,
                                timeout_s=TURN_RESULT_TIMEOUT.total_seconds())

    async def add_fix(self, ref: AiSessionRef, draft: FixDraft, key: str | None) -> AddFixResult:
        """Record an engineer's own fix."""
        self._require_active(ref)
        return await self._send(ref, TroubleshootingSessionWorkflow.add_fix, draft, key)

    async def close_local(self, ref: AiSessionRef, inp: CloseInput, key: str | None) -> CloseResult:
        """Post the resolution note or escalation package on a session without a PSA ticket."""
        self._require_closable(ref, inp.kind)
        return await self._send(ref, TroubleshootingSessionWorkflow.close_local, inp, key)

    async def post_to_psa(self, ref: AiSessionRef, inp: CloseInput, key: str | None) -> PsaCloseResult:
        """Post the document to the session's ticket, change and verify its status, then close the session."""
        self._require_closable(ref, inp.kind)
        return await self._send(ref, TroubleshootingSessionWorkflow.post_to_psa, inp, key,
                                timeout_s=PSA_RESULT_TIMEOUT.total_seconds())

    async def hand_off(self, ref: AiSessionRef, req: HandoffRequest, key: str | None) -> HandoffCreated:
        """Park or escalate the session; its workflow records the handoff and starts the handoff's workflow."""
        if ref.status != "active":
            raise Conflict(f"This AI session is {ref.status}; only an active session is parked or escalated")
        return await self._send(ref, TroubleshootingSessionWorkflow.hand_off, req, key)

    async def resume(self, ref: AiSessionRef, inp: ResumeInput, key: str | None) -> ResumeResult:
        """Make the session active again after its handoff was claimed (idempotent)."""
        return await self._send(ref, TroubleshootingSessionWorkflow.resume, inp, key)

    async def preview(self, ref: AiSessionRef, kind: DocumentKind) -> DocumentResult:
        """The document for the session's current version (concurrent callers share one run and one model call)."""
        request = DocumentRequest(context=LlmCallContext(account_id=str(ref.account_id), subject_id=str(ref.id)),
                                  session_id=ref.id, kind=kind)
        label = kind.replace("_", " ")
        return await self._workflows.execute(
            SessionDocumentWorkflow.run, request, id=f"session-doc-{ref.id}-{kind}-v{ref.state_version}",
            what=f"{label} preview", limit=LLM_SCHEDULE_TO_CLOSE + timedelta(minutes=1), share_running=True,
            account_id=ref.account_id,
            failed=f"The AI could not write the {label}; try again",
        )

    @staticmethod
    def _require_closable(ref: AiSessionRef, kind: DocumentKind) -> None:
        closed = ("resolved",) if kind == "resolution_note" else ("resolved", "escalated")
        if ref.status in closed:  # no fresh workflow run just to say no
            raise Conflict(f"This session is already {ref.status}")

    @staticmethod
    def _require_active(ref: AiSessionRef) -> None:
        if ref.status != "active":
            raise Conflict(f"This AI session is {ref.status}; only active sessions change")

    async def _send(self, ref: AiSessionRef,
                    update: UpdateMethodMultiParam[[TroubleshootingSessionWorkflow, ParamT], ResultT],
                    arg: ParamT, key: str | None, *, creating: bool = False,
                    timeout_s: float = WRITE_RESULT_TIMEOUT_S) -> ResultT:
        return await self._workflows.update(
            session_start(ref, self._settings, creating=creating), update, arg, what="AI session", idempotency_key=key,
            result_timeout_s=max(timeout_s, self._settings.workflow_call_timeout_s),
        )


class FixCommands:
    """Sends each fix command as update-with-start on `fix-{id}` (the run loads the fix from Postgres)."""

    def __init__(self, workflows: WorkflowClient, settings: Settings) -> None:
        self._workflows = workflows
        self._settings = settings

    async def apply(self, ref: FixRef, key: str | None) -> FixCommandResult:
        """Stamp `applied_at` once."""
        if ref.status != "proposed":
            raise Conflict(not_appliable(ref.status))
        return await self._send(ref, FixVerificationWorkflow.apply, ApplyInput(), key)

    async def record_outcome(self, ref: FixRef, inp: OutcomeInput, key: str | None) -> FixCommandResult:
        """Record an outcome (parking it starts the reminders)."""
        if ref.status in TERMINAL_STATUSES:
            raise Conflict(final_outcome(ref.status))
        return await self._send(ref, FixVerificationWorkflow.record_outcome, inp, key)

    async def clear_ai_proposal(self, ref: FixRef, key: str | None) -> FixCommandResult | None:
        """Drop the AI's outcome proposal; None when there is nothing to do (a final outcome cleared it)."""
        if ref.status in TERMINAL_STATUSES:
            return None
        return await self._send(ref, FixVerificationWorkflow.clear_ai_proposal, ClearProposalInput(), key)

    async def _send(self, ref: FixRef, update: UpdateMethodMultiParam[[FixVerificationWorkflow, ParamT], ResultT],
                    arg: ParamT, key: str | None) -> ResultT:
        start = StartSpec(
            run=FixVerificationWorkflow.run,
            arg=FixInput(fix_id=ref.id, account_id=ref.account_id,
                         idle_timeout_s=self._settings.workflow_idle_unload_s),
            id=fix_workflow_id(ref.id),
            search_attributes=(
                SearchAttributePair(SA_ACCOUNT_ID, str(ref.account_id)),
                SearchAttributePair(SA_FIX_STATUS, ref.status),
            ),
            static_summary=f"Fix '{ref.title[:80]}' of AI session {ref.session_id}",
            account_id=ref.account_id,
        )
        return await self._workflows.update(
            start, update, arg, what="suggested fix", idempotency_key=key,
            result_timeout_s=max(WRITE_RESULT_TIMEOUT_S, self._settings.workflow_call_timeout_s),
        )
