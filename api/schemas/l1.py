"""L1 workspace payloads: flows, categories, intake, walk sessions and flow proposals."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from api.schemas.common import FoldedName, JsonUuid, RequestBody, folded_name
from workflows.contracts.flow import MAX_FLOW_BYTES, FlowTree
from workflows.contracts.llm import WalkedStep
from workflows.contracts.walk import (
    EscalateInput,
    NotesInput,
    ResolveInput,
    SessionKind,
    StepInput,
    WalkControl,
    WalkNode,
    WalkNote,
)

EXAMPLE_TREE: dict[str, Any] = {
    "root": "power",
    "nodes": {
        "power": {"question": "Is the printer's power light on?", "options": [
            {"label": "Yes", "next": "paper"},
            {"label": "No", "resolution": "Plug it in and switch it on at the back."},
        ]},
        "paper": {"question": "Is there paper in the tray?", "options": [
            {"label": "Yes", "resolution": "Clear the queue and power-cycle the printer."},
            {"label": "No", "resolution": "Load paper."},
        ]},
    },
}


class FlowCreate(RequestBody):
    """An authored decision tree."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"title": "Printer not printing", "category": "printing", "keywords": ["printer", "print"],
         "tree": EXAMPLE_TREE},
    ]})

    title: str = Field(min_length=1, max_length=200)
    category: FoldedName
    keywords: list[folded_name(60)] = Field(default=[], max_length=50)  # type: ignore[valid-type]
    tree: FlowTree

    @model_validator(mode="after")
    def _tree_is_walkable(self) -> FlowCreate:
        size = len(self.tree.model_dump_json(exclude_none=True))
        if size > MAX_FLOW_BYTES:
            raise ValueError(f"the tree is {size:,} bytes as JSON; a flow may be at most {MAX_FLOW_BYTES:,} bytes")
        problems = self.tree.problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self


class FlowOut(BaseModel):
    """A flow as stored."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    category: str
    keywords: list[str]
    tree: dict[str, Any]
    source: Literal["authored", "proposal"]
    created_at: datetime


class CategoryOut(BaseModel):
    """A category: may L1 walk it, and who hears about its escalations."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    in_scope: bool
    escalation_recipient_ids: list[uuid.UUID]


class CategoryPatch(RequestBody):
    """Create a category or change the given fields of an existing one (matched by name)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "printing", "in_scope": True, "escalation_recipient_ids": []},
    ]})

    name: FoldedName
    in_scope: bool | None = None
    escalation_recipient_ids: list[JsonUuid] | None = None


class IntakeRequest(RequestBody):
    """The customer's problem as the tech typed it."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"problem_statement": "Printer on floor 2 shows paper jam but no paper is stuck",
         "customer_name": "Alice", "customer_contact": "alice@customer.com"},
        {"problem_statement": "Needs a new shared mailbox", "adhoc": True},
    ]})

    problem_statement: str = Field(min_length=1, max_length=5000)
    customer_name: str | None = Field(default=None, max_length=200)
    customer_contact: str | None = Field(default=None, max_length=200)
    flow_id: JsonUuid | None = Field(default=None, description="Walk this authored flow (skips matching).")
    adhoc: StrictBool = Field(default=False, description="Walk it ad hoc: notes only, no decision tree.")


class IntakeResponse(BaseModel):
    """What intake decided; `out_of_scope` starts no session."""

    outcome: Literal["match", "build", "out_of_scope", "adhoc"]
    session_kind: SessionKind | None
    ticket_kind: Literal["internal"] = "internal"
    session_id: uuid.UUID | None
    ticket_id: uuid.UUID
    category: str | None
    message: str
    pending_node: WalkNode | None = Field(default=None, description="The first question, when there is one.")

    @model_validator(mode="after")
    def _session_matches_outcome(self) -> IntakeResponse:
        starts_session = self.outcome != "out_of_scope"
        if starts_session != (self.session_id is not None) or starts_session != (self.session_kind is not None):
            raise ValueError(f"outcome {self.outcome} must {'' if starts_session else 'not '}come with a session")
        return self


class SessionSummaryOut(WalkControl):
    """A walk session without its notes (lists and command answers; `note_count` says how many)."""

    model_config = ConfigDict(from_attributes=True)

    ticket_id: str
    ticket_kind: str
    problem_text: str
    flow_id: uuid.UUID | None
    walked_path: list[WalkedStep]
    helpful: bool | None
    resolution_notes: str | None
    escalation_reason_category: str | None
    escalation_reason: str | None
    created_by_user_id: uuid.UUID | None
    started_at: datetime
    resolved_at: datetime | None
    escalated_at: datetime | None
    abandoned_at: datetime | None


class SessionOut(SessionSummaryOut):
    """A walk session with its notes, oldest first."""

    walk_notes: list[WalkNote]


class StepRequest(RequestBody, StepInput):
    """Answer the pending question (`node_id` must be the session's pending node)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"node_id": "power", "question": "Is the printer's power light on?", "answer": "Yes"},
    ]})



class StepResponse(BaseModel):
    """The session after the step, with the next question or the resolution reached."""

    session: SessionSummaryOut
    next_node: WalkNode | None
    resolution: WalkNode | None


class NotesRequest(RequestBody, NotesInput):
    """Notes to append (a walk keeps a bounded number of notes: see `notes` in the schema and the 400 detail)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"notes": [{"text": "Customer called about printer", "ts": "2026-05-28T10:00:00Z"}]},
    ]})


class NotesResponse(BaseModel):
    """All of the session's notes, oldest first."""

    walk_notes: list[WalkNote]


class ResolveRequest(RequestBody, ResolveInput):
    """Close the walk as resolved."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"helpful": True, "resolution_notes": "Restarted the printer."},
    ]})


class ResolveResponse(BaseModel):
    """The resolved session; `proposal_id` names the flow proposal learned from it, if any."""

    status: Literal["resolved"] = "resolved"
    session: SessionSummaryOut
    proposal_id: uuid.UUID | None = None


class EscalateRequest(RequestBody, EscalateInput):
    """Hand the walk to engineers."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"reason_category": "needs_l2", "reason": "Beyond L1 scope"},
    ]})


class EscalateResponse(BaseModel):
    """The escalated session, who is emailed, and a warning when nobody is."""

    status: Literal["escalated"] = "escalated"
    session: SessionSummaryOut
    notified: list[str] = []
    warning: str | None = None


class EscalateWithoutWalkRequest(RequestBody):
    """Escalate straight from intake: creates an internal ticket and an already-escalated adhoc session."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"problem_statement": "No KB available", "reason_category": "no_kb",
         "reason": "No knowledge base content matched"},
    ]})

    problem_statement: str = Field(min_length=1, max_length=5000)
    reason_category: str = Field(min_length=1, max_length=60)
    reason: str | None = Field(default=None, max_length=5000)
    category: FoldedName | None = Field(default=None, description="Picks the category's recipients.")


class EscalateWithoutWalkResponse(BaseModel):
    """The escalated adhoc session."""

    status: Literal["escalated"] = "escalated"
    session_kind: Literal["adhoc"] = "adhoc"
    session_id: uuid.UUID
    ticket_id: str
    ticket_kind: Literal["internal"] = "internal"
    notified: list[str] = []
    warning: str | None = None


class ProposalOut(BaseModel):
    """A flow learned from a resolved AI-built walk."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    l1_session_id: uuid.UUID
    title: str
    category: str
    keywords: list[str]
    tree: dict[str, Any]
    validated_by_outcome: bool
    status: Literal["pending", "approved", "rejected"]
    reviewed_by_user_id: uuid.UUID | None
    reviewed_at: datetime | None
    flow_id: uuid.UUID | None
    created_at: datetime


class ProposalReview(RequestBody):
    """Approve (it becomes an authored flow) or reject."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"action": "approve"}]})

    action: Literal["approve", "reject"]


class ProposalReviewResponse(BaseModel):
    """The reviewed proposal and, on approval, the flow it became."""

    proposal: ProposalOut
    flow: FlowOut | None = None
