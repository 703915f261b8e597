"""Contracts of the L1 walk: its state, the updates it accepts and the `persistence.*` activities it calls.

Field names of `WalkState` match the `l1_walk_sessions` columns so the row and the state map one to one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field
from temporalio.common import RetryPolicy

from workflows.contracts.llm import WalkedStep

SessionKind = Literal["flow", "ai_build", "adhoc"]
WalkStatus = Literal["active", "resolved", "escalated", "abandoned"]

WALK_WORKFLOW_PREFIX = "walk-"

# Names of the updates, query and activities (workflows call activities by name).
UPDATE_OPEN = "open"
UPDATE_STEP = "step"
UPDATE_NOTES = "add_notes"
UPDATE_RESOLVE = "resolve"
UPDATE_ESCALATE = "escalate"
QUERY_STATE = "state"
ACT_LOAD_WALK = "persistence.load_walk"
ACT_SAVE_WALK = "persistence.save_walk"
ACT_RESOLVE_WALK = "persistence.resolve_walk"
ACT_ESCALATE_WALK = "persistence.escalate_walk"

# Rejections carry one of these as ApplicationError.type; the API maps each to its domain error.
REJECT_RULE = "RuleViolation"  # 400
REJECT_NOT_FOUND = "NotFound"  # 404
REJECT_CONFLICT = "Conflict"  # 409
REJECT_UPSTREAM = "UpstreamFailed"  # 502

# Persistence is short Postgres work next to the worker: run as local activities, retried with backoff.
PERSIST_TIMEOUT = timedelta(seconds=20)
PERSIST_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10))


def walk_workflow_id(session_id: str) -> str:
    """The one workflow id of a walk session."""
    return f"{WALK_WORKFLOW_PREFIX}{session_id}"


# --- authored flows -----------------------------------------------------------------------------


class FlowOption(BaseModel):
    """An answer: leads to another node (`next`) or ends the walk with a `resolution`."""

    label: str = Field(min_length=1, max_length=200)
    next: str | None = None
    resolution: str | None = Field(default=None, max_length=4000)


class FlowNode(BaseModel):
    """A question and its answers."""

    question: str = Field(min_length=1, max_length=1000)
    options: list[FlowOption] = Field(min_length=1, max_length=20)


class FlowTree(BaseModel):
    """`{root, nodes:{id: node}}`."""

    root: str
    nodes: dict[str, FlowNode]

    def problems(self) -> list[str]:
        """What makes this tree unwalkable: dangling links, ambiguous options, cycles (empty when fine)."""
        found: list[str] = []
        if self.root not in self.nodes:
            found.append(f"root '{self.root}' is not one of the nodes")
        for node_id, node in self.nodes.items():
            for option in node.options:
                if (option.next is None) == (option.resolution is None):
                    found.append(f"node '{node_id}' option '{option.label}' needs exactly one of next/resolution")
                elif option.next is not None and option.next not in self.nodes:
                    found.append(f"node '{node_id}' option '{option.label}' leads to unknown node '{option.next}'")
        if not found and self._has_cycle():
            found.append("the tree has a cycle: a walk could loop forever")
        return found

    def _has_cycle(self) -> bool:
        state: dict[str, int] = {}  # 1 = on the current path, 2 = done

        def visit(node_id: str) -> bool:
            state[node_id] = 1
            for option in self.nodes[node_id].options:
                nxt = option.next
                if nxt is not None and (state.get(nxt) == 1 or (nxt not in state and visit(nxt))):
                    return True
            state[node_id] = 2
            return False

        return any(visit(n) for n in self.nodes if n not in state)


# --- walk state ---------------------------------------------------------------------------------


class WalkNode(BaseModel):
    """The node served to the tech: a question with options, or a resolution (maybe "escalate")."""

    id: str
    kind: Literal["question", "resolution"]
    question: str | None = None
    options: list[str] = []
    resolution: str | None = None
    escalate: bool = False


class WalkNote(BaseModel):
    """A timestamped note the tech typed."""

    text: str = Field(min_length=1, max_length=10_000)
    ts: AwareDatetime


class WalkState(BaseModel):
    """Everything the walk workflow knows; persisted to its row after every accepted change."""

    id: str
    account_id: str
    created_by_user_id: str | None = None
    status: WalkStatus = "active"
    session_kind: SessionKind
    ticket_id: str
    ticket_kind: str = "internal"
    category: str | None = None
    problem_text: str = ""
    flow_id: str | None = None
    walked_path: list[WalkedStep] = []
    walk_notes: list[WalkNote] = []
    pending_node: WalkNode | None = None
    depth: int = 0
    helpful: bool | None = None
    resolution_notes: str | None = None
    escalation_reason_category: str | None = None
    escalation_reason: str | None = None
    started_at: datetime
    last_step_at: datetime
    resolved_at: datetime | None = None
    escalated_at: datetime | None = None
    abandoned_at: datetime | None = None


class WalkInput(BaseModel):
    """Start input: which session, the knobs from settings, and the state when continuing as new."""

    session_id: str
    account_id: str
    idle_timeout_s: int = Field(default=24 * 3600, ge=1)
    max_depth: int = Field(default=12, ge=1)
    state: WalkState | None = None
    flow_tree: FlowTree | None = None


# --- update inputs and results ------------------------------------------------------------------


class OpenInput(BaseModel):
    """Serve the pending node (asks the model for the first one of an AI-built walk)."""


class OpenResult(BaseModel):
    """The session and its pending node."""

    state: WalkState
    pending_node: WalkNode | None


class StepInput(BaseModel):
    """The tech answered the pending question."""

    node_id: str
    question: str = ""
    answer: str = Field(min_length=1, max_length=2000)


class StepResult(BaseModel):
    """The session after the step, plus the next question or the resolution reached."""

    state: WalkState
    next_node: WalkNode | None = None
    resolution: WalkNode | None = None


class NotesInput(BaseModel):
    """Notes appended to the session."""

    notes: list[WalkNote] = Field(min_length=1, max_length=100)


class ResolveInput(BaseModel):
    """The tech closes the walk as resolved."""

    helpful: bool
    resolution_notes: str | None = None


class ResolveResult(BaseModel):
    """The resolved session and the flow proposal learned from it, if any."""

    state: WalkState
    proposal_id: str | None = None


class EscalateInput(BaseModel):
    """The tech hands the problem to engineers."""

    reason_category: str
    reason: str | None = None


class EscalateResult(BaseModel):
    """The escalated session, who will be emailed, and a warning when nobody is."""

    state: WalkState
    notified: list[str] = []
    warning: str | None = None


# --- persistence activity contracts -------------------------------------------------------------


class LoadWalkInput(BaseModel):
    """Which session to load."""

    session_id: str


class LoadWalkResult(BaseModel):
    """The session's state and its flow's tree (a snapshot), or `state=None` when the row does not exist."""

    state: WalkState | None
    flow_tree: FlowTree | None = None


class SaveWalkInput(BaseModel):
    """Write the state to the session's row (and its ticket's status when it ends)."""

    state: WalkState


class ResolveWalkResult(BaseModel):
    """The flow proposal created from a helpful AI-built walk."""

    proposal_id: str | None = None


class Recipient(BaseModel):
    """Someone to email about an escalation."""

    user_id: str
    email: str
    name: str


class EscalateWalkResult(BaseModel):
    """Live recipients: the category's, else the account's defaults; `source` says which."""

    recipients: list[Recipient] = []
    source: Literal["category", "default", "none"] = "none"
