"""Contracts of the L1 walk: its control state, the updates it accepts and the activities it calls.

The workflow holds only what its decisions need (`WalkControl`: status, the pending node, counters);
the walked path, the notes and the flow's tree live in Postgres and activities read them by id, so
no payload grows with the walk.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import AwareDatetime, BaseModel, BeforeValidator, Field, StrictBool

from workflows.contracts.common import ActivityRef, persistence
from workflows.contracts.llm import WalkedStep

SessionKind = Literal["flow", "ai_build", "adhoc"]
WalkStatus = Literal["active", "resolved", "escalated", "abandoned"]
SESSION_KINDS: tuple[str, ...] = get_args(SessionKind)
WALK_STATUSES: tuple[str, ...] = get_args(WalkStatus)

WALK_WORKFLOW_PREFIX = "walk-"
QUERY_STATE = "state"

# Bounds on what a walk accumulates; each is refused with a 4xx that names it.
MAX_NOTES_PER_REQUEST = 50
MAX_NOTES_PER_WALK = 500
NOTE_TEXT_MAX = 10_000
ANSWER_MAX = 2000
QUESTION_MAX = 1000
NODE_ID_MAX = 200
CATEGORY_MAX = 60


def walk_workflow_id(session_id: uuid.UUID | str) -> str:
    """The one workflow id of a walk session."""
    return f"{WALK_WORKFLOW_PREFIX}{session_id}"


class WalkNode(BaseModel):
    """The node served to the tech: a question with options, or a resolution (maybe "escalate")."""

    id: str
    kind: Literal["question", "resolution"]
    question: str | None = None
    options: list[str] = []
    resolution: str | None = None
    escalate: bool = False

    def option_matching(self, answer: str) -> str | None:
        """The option label `answer` names (trimmed, case-insensitive), or None."""
        wanted = answer.strip().casefold()
        return next((o for o in self.options if o.strip().casefold() == wanted), None)


def _timestamp_not_number(value: Any) -> Any:
    # Pydantic reads a number as seconds since 1970: `"ts": 0` would silently become 1970-01-01.
    if isinstance(value, int | float):
        raise ValueError("must be an ISO 8601 timestamp with a timezone, e.g. 2026-05-28T10:00:00Z, not a number")
    return value


class WalkNote(BaseModel):
    """A timestamped note the tech typed (`ts`: an ISO 8601 timestamp with a timezone)."""

    text: str = Field(min_length=1, max_length=NOTE_TEXT_MAX)
    ts: Annotated[AwareDatetime, BeforeValidator(_timestamp_not_number)]


class WalkControl(BaseModel):
    """Everything the walk workflow decides on; small, so it crosses Temporal at no cost."""

    id: uuid.UUID
    account_id: uuid.UUID
    status: WalkStatus = "active"
    session_kind: SessionKind
    category: str | None = None
    pending_node: WalkNode | None = None
    depth: int = 0
    note_count: int = 0
    last_step_at: datetime


class WalkCreate(BaseModel):
    """What the walk's first `create` inserts: its session row and internal ticket (ids chosen by the API)."""

    session_id: uuid.UUID
    ticket_id: uuid.UUID
    account_id: uuid.UUID
    created_by_user_id: uuid.UUID | None
    session_kind: SessionKind
    category: str | None = None
    problem_text: str
    customer_name: str | None = None
    customer_contact: str | None = None
    flow_id: uuid.UUID | None = None


class WalkInput(BaseModel):
    """Start input: which session, the knobs from settings, and the state when continuing as new."""

    session_id: uuid.UUID
    account_id: uuid.UUID
    idle_timeout_s: int = Field(default=24 * 3600, ge=1)
    max_depth: int = Field(default=12, ge=1)
    # Started by its `create` update: wait for that to insert the row instead of loading it.
    created_by_update: bool = False
    state: WalkControl | None = None


# --- update inputs and results ------------------------------------------------------------------


class CreateInput(BaseModel):
    """Insert the session (idempotent by id) and serve its first node; escalate at once if asked."""

    walk: WalkCreate
    escalate: EscalateInput | None = None


class OpenInput(BaseModel):
    """Serve the pending node (asks the model for the first one of an AI-built walk)."""


class OpenResult(BaseModel):
    """The pending node, and the escalation when `create` escalated at once."""

    pending_node: WalkNode | None
    escalation: EscalateResult | None = None


class StepInput(BaseModel):
    """The tech answered the pending question."""

    node_id: str = Field(min_length=1, max_length=NODE_ID_MAX)
    question: str = Field(default="", max_length=QUESTION_MAX)
    answer: str = Field(min_length=1, max_length=ANSWER_MAX)


class StepResult(BaseModel):
    """The next question, or the resolution reached; and what the step wrote, so the caller's answer is the walk
    it read before plus this (None in results of runs from before they were answered: the API reads the row)."""

    next_node: WalkNode | None = None
    resolution: WalkNode | None = None
    step: WalkedStep | None = None
    depth: int | None = None
    last_step_at: datetime | None = None


class NotesInput(BaseModel):
    """Notes appended to the session."""

    notes: list[WalkNote] = Field(min_length=1, max_length=MAX_NOTES_PER_REQUEST)


class NotesResult(BaseModel):
    """How many notes the walk has now."""

    note_count: int


class ResolveInput(BaseModel):
    """The tech closes the walk as resolved."""

    helpful: StrictBool
    resolution_notes: str | None = Field(default=None, max_length=10_000)


class ResolveResult(BaseModel):
    """The flow proposal learned from the walk, if any."""

    proposal_id: uuid.UUID | None = None


class EscalateInput(BaseModel):
    """The tech hands the problem to engineers."""

    reason_category: str = Field(min_length=1, max_length=CATEGORY_MAX)
    reason: str | None = Field(default=None, max_length=5000)


class EscalateResult(BaseModel):
    """Who will be emailed, and a warning when nobody is."""

    notified: list[str] = []
    warning: str | None = None


CreateInput.model_rebuild()
OpenResult.model_rebuild()


# --- persistence activity contracts -------------------------------------------------------------


class WalkById(BaseModel):
    """Which session."""

    session_id: uuid.UUID


class RecordStepInput(BaseModel):
    """Append the answered step and serve `next_node` (computed from the flow's tree when None)."""

    session_id: uuid.UUID
    node_id: str
    question: str
    answer: str
    at: datetime
    next_node: WalkNode | None = None


class RecordStepResult(BaseModel):
    """The node now pending and the walk's depth."""

    pending_node: WalkNode
    depth: int


class SetPendingInput(BaseModel):
    """Serve `node` as the first node of an AI-built walk."""

    session_id: uuid.UUID
    node: WalkNode


class WalkPrompt(BaseModel):
    """What the model needs for the next node of an AI-built walk (bounded by the depth cap)."""

    problem: str
    category: str | None
    walked_path: list[WalkedStep]


class AddNotesInput(BaseModel):
    """Insert notes as rows; `batch_id` (the update's id) makes a retried insert a no-op."""

    session_id: uuid.UUID
    batch_id: str
    notes: list[WalkNote]
    at: datetime


class CloseWalkInput(BaseModel):
    """End the walk: resolved, escalated or abandoned, with what the tech said."""

    session_id: uuid.UUID
    status: Literal["resolved", "escalated", "abandoned"]
    at: datetime
    helpful: bool | None = None
    resolution_notes: str | None = None
    escalation_reason_category: str | None = None
    escalation_reason: str | None = None


class ResolveWalkResult(BaseModel):
    """The flow proposal created from a helpful AI-built walk."""

    proposal_id: uuid.UUID | None = None


class Recipient(BaseModel):
    """Someone to email about an escalation."""

    user_id: uuid.UUID
    email: str
    name: str


class LoadWalkResult(BaseModel):
    """The walk's control state, or None when its row does not exist."""

    control: WalkControl | None = None


class EscalateWalkResult(BaseModel):
    """Live recipients (the category's, else the account's defaults) and the email to send them."""

    recipients: list[Recipient] = []
    source: Literal["category", "default", "none"] = "none"
    subject: str = ""
    body: str = ""


CREATE_WALK = persistence("persistence.create_walk", WalkCreate, WalkControl)
LOAD_WALK = persistence("persistence.load_walk", WalkById, LoadWalkResult)
RECORD_STEP = persistence("persistence.record_walk_step", RecordStepInput, RecordStepResult)
SET_PENDING: ActivityRef[SetPendingInput, None] = persistence(
    "persistence.set_walk_pending_node", SetPendingInput, None)
WALK_PROMPT = persistence("persistence.walk_prompt", WalkById, WalkPrompt)
ADD_NOTES = persistence("persistence.add_walk_notes", AddNotesInput, NotesResult)
RESOLVE_WALK = persistence("persistence.resolve_walk", CloseWalkInput, ResolveWalkResult)
ESCALATE_WALK = persistence("persistence.escalate_walk", CloseWalkInput, EscalateWalkResult)
ABANDON_WALK: ActivityRef[CloseWalkInput, None] = persistence("persistence.abandon_walk", CloseWalkInput, None)
