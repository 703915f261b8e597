"""In-memory stand-ins for the walk's `persistence.*` and `llm.*` activities, registered by name."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from temporalio import activity

from workflows.contracts.flow import FlowTree
from workflows.contracts.llm import NEXT_WALK_NODE, NextWalkNodeInput, WalkedStep, WalkNodeSuggestion
from workflows.contracts.notify import SEND_EMAIL, EmailMessage
from workflows.contracts.walk import (
    ABANDON_WALK,
    ADD_NOTES,
    CREATE_WALK,
    ESCALATE_WALK,
    LOAD_WALK,
    RECORD_STEP,
    RESOLVE_WALK,
    SET_PENDING,
    WALK_PROMPT,
    AddNotesInput,
    CloseWalkInput,
    EscalateWalkResult,
    LoadWalkResult,
    NotesResult,
    Recipient,
    RecordStepInput,
    RecordStepResult,
    ResolveWalkResult,
    SetPendingInput,
    WalkById,
    WalkControl,
    WalkCreate,
    WalkPrompt,
)

TREE = FlowTree.model_validate({"root": "a", "nodes": {
    "a": {"question": "Q1?", "options": [{"label": "go", "next": "b"}, {"label": "stop", "resolution": "R1"}]},
    "b": {"question": "Q2?", "options": [{"label": "go", "resolution": "Fixed."}]},
}})


@dataclass
class FakeWalkStore:
    """Rows as dicts; every call recorded as (activity name, input) for assertions."""

    tree: FlowTree = field(default_factory=lambda: TREE)
    rows: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    emails: list[EmailMessage] = field(default_factory=list)

    def activities(self) -> list[Any]:
        """Every fake, for a Worker."""
        return [self.create_walk, self.load_walk, self.record_step, self.set_pending, self.walk_prompt,
                self.add_notes, self.resolve_walk, self.escalate_walk, self.abandon_walk, self.next_node,
                self.send_email]

    def control(self, session_id: uuid.UUID) -> WalkControl:
        """The row's control columns."""
        return WalkControl.model_validate(self.rows[session_id])

    @activity.defn(name=CREATE_WALK.name)
    async def create_walk(self, inp: WalkCreate) -> WalkControl:
        self.calls.append((CREATE_WALK.name, inp))
        first = self.tree.question(self.tree.root) if inp.session_kind == "flow" else None
        self.rows.setdefault(inp.session_id, {
            "id": inp.session_id, "account_id": inp.account_id, "status": "active",
            "session_kind": inp.session_kind, "category": inp.category, "pending_node": first, "depth": 0,
            "note_count": 0, "last_step_at": activity.info().current_attempt_scheduled_time,
            "problem_text": inp.problem_text, "walked_path": [],
        })
        return self.control(inp.session_id)

    @activity.defn(name=LOAD_WALK.name)
    async def load_walk(self, inp: WalkById) -> LoadWalkResult:
        self.calls.append((LOAD_WALK.name, inp))
        return LoadWalkResult(control=self.control(inp.session_id) if inp.session_id in self.rows else None)

    @activity.defn(name=RECORD_STEP.name)
    async def record_step(self, inp: RecordStepInput) -> RecordStepResult:
        self.calls.append((RECORD_STEP.name, inp))
        row = self.rows[inp.session_id]
        node = inp.next_node or self.tree.next_node(inp.node_id, inp.answer, lambda: str(uuid.uuid4()))
        assert node is not None
        row["walked_path"].append(WalkedStep(node_id=inp.node_id, question=inp.question, answer=inp.answer))
        row.update(pending_node=node, depth=row["depth"] + 1, last_step_at=inp.at)
        return RecordStepResult(pending_node=node, depth=row["depth"])

    @activity.defn(name=SET_PENDING.name)
    async def set_pending(self, inp: SetPendingInput) -> None:
        self.calls.append((SET_PENDING.name, inp))
        self.rows[inp.session_id]["pending_node"] = inp.node

    @activity.defn(name=WALK_PROMPT.name)
    async def walk_prompt(self, inp: WalkById) -> WalkPrompt:
        self.calls.append((WALK_PROMPT.name, inp))
        row = self.rows[inp.session_id]
        return WalkPrompt(problem=row["problem_text"], category=row["category"], walked_path=row["walked_path"])

    @activity.defn(name=ADD_NOTES.name)
    async def add_notes(self, inp: AddNotesInput) -> NotesResult:
        self.calls.append((ADD_NOTES.name, inp))
        row = self.rows[inp.session_id]
        row.update(note_count=row["note_count"] + len(inp.notes), last_step_at=inp.at)
        return NotesResult(note_count=row["note_count"])

    @activity.defn(name=RESOLVE_WALK.name)
    async def resolve_walk(self, inp: CloseWalkInput) -> ResolveWalkResult:
        self.calls.append((RESOLVE_WALK.name, inp))
        self.rows[inp.session_id]["status"] = "resolved"
        return ResolveWalkResult()

    @activity.defn(name=ESCALATE_WALK.name)
    async def escalate_walk(self, inp: CloseWalkInput) -> EscalateWalkResult:
        self.calls.append((ESCALATE_WALK.name, inp))
        self.rows[inp.session_id]["status"] = "escalated"
        return EscalateWalkResult(recipients=[Recipient(user_id=uuid.uuid4(), email="eng@example.com", name="Eng")],
                                  source="default", subject="L1 escalation", body="see the session")

    @activity.defn(name=ABANDON_WALK.name)
    async def abandon_walk(self, inp: CloseWalkInput) -> None:
        self.calls.append((ABANDON_WALK.name, inp))
        self.rows[inp.session_id]["status"] = "abandoned"

    @activity.defn(name=NEXT_WALK_NODE.name)
    async def next_node(self, inp: NextWalkNodeInput) -> WalkNodeSuggestion:
        self.calls.append((NEXT_WALK_NODE.name, inp))
        if inp.force_conclusion:
            return WalkNodeSuggestion(kind="resolution", resolution="Escalate.", escalate=True, provider="fake")
        return WalkNodeSuggestion(kind="question", question=f"AI question {len(inp.walked_path) + 1}?",
                                  options=["yes", "no"], provider="fake")

    @activity.defn(name=SEND_EMAIL.name)
    async def send_email(self, inp: EmailMessage) -> None:
        self.calls.append((SEND_EMAIL.name, inp))
        self.emails.append(inp)
