"""The walk workflow's `persistence.*` activities: each call is one transaction and safe to retry."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.persistence.guard import refused_values_rejected
from db.models import L1WalkSession, User
from db.repositories.accounts import AccountRepository
from db.repositories.l1_catalog import CategoryRepository, FlowRepository
from db.repositories.l1_proposals import FlowProposalRepository
from db.repositories.l1_sessions import WalkSessionRepository
from db.repositories.users import UserRepository, user_ids
from workflows.contracts.common import REJECT_CONFLICT, REJECT_NOT_FOUND, reject
from workflows.contracts.flow import FlowTree
from workflows.contracts.llm import WalkedStep
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
    WalkNode,
    WalkPrompt,
)

# An escalation email shows this much of the walk; the rest is in the session.
EMAIL_NOTES = 20
EMAIL_TEXT = 500

_STOPWORDS = frozenset({
    "that", "this", "with", "from", "have", "when", "will", "does", "what", "after", "before", "into",
    "their", "there", "they", "been", "were", "your", "cannot", "can't", "won't", "doesn't", "isn't",
    "about", "again", "still", "just", "only", "some", "very",
})


class WalkPersistence:
    """Creates, loads and changes walk sessions for `WalkSessionWorkflow`."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory

    def all(self) -> list[Any]:
        """Every activity of this class, for the worker."""
        return [self.create_walk, self.load_walk, self.record_step, self.set_pending_node, self.walk_prompt,
                self.add_notes, self.resolve_walk, self.escalate_walk, self.abandon_walk]

    @activity.defn(name=CREATE_WALK.name)
    async def create_walk(self, inp: WalkCreate) -> WalkControl:
        """Insert the ticket and session (nothing new when they exist) with a flow's first question."""
        async with self._session_factory() as session, session.begin(), refused_values_rejected():
            first: WalkNode | None = None
            if inp.flow_id is not None:
                tree = await _tree(session, inp.flow_id)
                first = tree.question(tree.root) if tree else None
                if first is None:
                    raise reject(REJECT_CONFLICT, "This flow no longer exists; walk it ad hoc or escalate it")
            row = await WalkSessionRepository(session).create_once(
                session_id=inp.session_id, ticket_id=inp.ticket_id, account_id=inp.account_id,
                created_by_user_id=inp.created_by_user_id, session_kind=inp.session_kind, category=inp.category,
                problem_text=inp.problem_text, customer_name=inp.customer_name,
                customer_contact=inp.customer_contact, flow_id=inp.flow_id,
                pending_node=first.model_dump(mode="json") if first else None, now=datetime.now(UTC),
            )
            return WalkControl.model_validate(row, from_attributes=True)

    @activity.defn(name=LOAD_WALK.name)
    async def load_walk(self, inp: WalkById) -> LoadWalkResult:
        """The session's control state, or none when the row does not exist.

        A flow session written without its first node (created outside a workflow) gets the root served."""
        async with self._session_factory() as session, session.begin():
            repo = WalkSessionRepository(session)
            row = await repo.get(inp.session_id)
            if row is None:
                return LoadWalkResult()
            if row.flow_id is not None and row.pending_node is None and not row.walked_path:
                tree = await _tree(session, row.flow_id)
                root = tree.question(tree.root) if tree else None
                if root is not None:
                    await repo.set_pending_node(row.id, root.model_dump(mode="json"))
                    await session.refresh(row)
            return LoadWalkResult(control=WalkControl.model_validate(row, from_attributes=True))

    @activity.defn(name=RECORD_STEP.name)
    async def record_step(self, inp: RecordStepInput) -> RecordStepResult:
        """Append the step and serve the next node (from the flow's tree unless given)."""
        async with self._session_factory() as session, session.begin(), refused_values_rejected():
            repo = WalkSessionRepository(session)
            next_node = inp.next_node
            if next_node is None:
                exists, stored = await repo.flow_tree_of(inp.session_id)
                if not exists:
                    raise _gone(inp.session_id)
                tree = FlowTree.model_validate(stored) if stored is not None else None
                next_node = tree.next_node(inp.node_id, inp.answer, lambda: str(uuid.uuid4())) if tree else None
                if next_node is None:
                    raise reject(REJECT_CONFLICT, "This session's flow changed or no longer exists; escalate it")
            step = WalkedStep(node_id=inp.node_id, question=inp.question, answer=inp.answer)
            depth = await repo.record_step(inp.session_id, node_id=inp.node_id, step=step.model_dump(),
                                             next_node=next_node.model_dump(mode="json"), at=inp.at)
            if depth is None:
                # A retry after the first attempt committed: the step is recorded, its node is pending.
                row = await _row(repo, inp.session_id)
                walked = row.walked_path[-1]["node_id"] if row.walked_path else None
                if walked != inp.node_id or row.pending_node is None:
                    raise reject(REJECT_CONFLICT, f"Node '{inp.node_id}' is not pending any more")
                return RecordStepResult(pending_node=WalkNode.model_validate(row.pending_node), depth=row.depth)
            return RecordStepResult(pending_node=next_node, depth=depth)

    @activity.defn(name=SET_PENDING.name)
    async def set_pending_node(self, inp: SetPendingInput) -> None:
        """Serve the first node of an AI-built walk."""
        async with self._session_factory() as session, session.begin(), refused_values_rejected():
            await WalkSessionRepository(session).set_pending_node(inp.session_id, inp.node.model_dump(mode="json"))

    @activity.defn(name=WALK_PROMPT.name)
    async def walk_prompt(self, inp: WalkById) -> WalkPrompt:
        """The problem and walked path the model needs for an AI-built walk's next node."""
        async with self._session_factory() as session:
            row = await _row(WalkSessionRepository(session), inp.session_id)
            return WalkPrompt(problem=row.problem_text, category=row.category,
                              walked_path=[WalkedStep.model_validate(s) for s in row.walked_path])

    @activity.defn(name=ADD_NOTES.name)
    async def add_notes(self, inp: AddNotesInput) -> NotesResult:
        """Insert the notes as rows (once per batch)."""
        async with self._session_factory() as session, session.begin(), refused_values_rejected():
            count = await WalkSessionRepository(session).add_notes(
                inp.session_id, batch_id=inp.batch_id, notes=[n.model_dump() for n in inp.notes], at=inp.at)
            return NotesResult(note_count=count)

    @activity.defn(name=RESOLVE_WALK.name)
    async def resolve_walk(self, inp: CloseWalkInput) -> ResolveWalkResult:
        """Close as resolved; a helpful AI-built walk also becomes a flow proposal."""
        async with self._session_factory() as session, session.begin(), refused_values_rejected():
            row = await self._close(session, inp, helpful=inp.helpful, resolution_notes=inp.resolution_notes,
                                    resolved_at=inp.at)
            if not (row.session_kind == "ai_build" and inp.helpful and row.walked_path):
                return ResolveWalkResult()
            proposal_id = await FlowProposalRepository(session).create_once(
                account_id=row.account_id, l1_session_id=row.id, title=row.problem_text[:200] or "Learned flow",
                category=row.category or "general", keywords=keywords_of(row.problem_text),
                tree=proposal_tree(row, inp.resolution_notes), validated_by_outcome=True,
            )
            return ResolveWalkResult(proposal_id=proposal_id)

    @activity.defn(name=ESCALATE_WALK.name)
    async def escalate_walk(self, inp: CloseWalkInput) -> EscalateWalkResult:
        """Close as escalated; name the live recipients (category's, else the account's) and the email."""
        async with self._session_factory() as session, session.begin(), refused_values_rejected():
            row = await self._close(session, inp, escalation_reason_category=inp.escalation_reason_category,
                                    escalation_reason=inp.escalation_reason, escalated_at=inp.at)
            recipients, source = await _recipients(session, row)
            notes = await WalkSessionRepository(session).notes(row.id, last=EMAIL_NOTES)
            subject, body = escalation_email(row, [n.text for n in notes])
            return EscalateWalkResult(recipients=[_recipient(u) for u in recipients], source=source,
                                      subject=subject, body=body)

    @activity.defn(name=ABANDON_WALK.name)
    async def abandon_walk(self, inp: CloseWalkInput) -> None:
        """Close as abandoned (idle too long)."""
        async with self._session_factory() as session, session.begin():
            await self._close(session, inp, abandoned_at=inp.at)

    async def _close(self, session: AsyncSession, inp: CloseWalkInput, **values: Any) -> L1WalkSession:
        repo = WalkSessionRepository(session)
        # A retried close finds the row already closed: same outcome, nothing written twice.
        await repo.close(inp.session_id, inp.status, values)
        return await _row(repo, inp.session_id)


async def _row(repo: WalkSessionRepository, session_id: uuid.UUID) -> L1WalkSession:
    row = await repo.get(session_id)
    if row is None:
        raise _gone(session_id)
    return row


def _gone(session_id: uuid.UUID) -> ApplicationError:
    return ApplicationError(f"Walk session {session_id} no longer exists", type=REJECT_NOT_FOUND, non_retryable=True)


async def _tree(session: AsyncSession, flow_id: uuid.UUID) -> FlowTree | None:
    flow = await FlowRepository(session).get(flow_id)
    return FlowTree.model_validate(flow.tree) if flow else None


async def _recipients(session: AsyncSession, row: L1WalkSession) -> tuple[Sequence[User], Any]:
    users = UserRepository(session)
    category = await CategoryRepository(session).get(row.account_id, row.category) if row.category else None
    if category is not None and category.escalation_recipient_ids:
        live = await users.active_in_account(row.account_id, user_ids(category.escalation_recipient_ids))
        if live:
            return live, "category"
    prefs = await AccountRepository(session).get_preferences(row.account_id)
    live = await users.active_in_account(row.account_id, user_ids(prefs.get("default_escalation_recipient_ids") or []))
    return (live, "default") if live else ([], "none")


def _recipient(user: User) -> Recipient:
    return Recipient(user_id=user.id, email=user.email, name=user.name)


def _clip(text: str, limit: int = EMAIL_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escalation_email(row: L1WalkSession, notes: Sequence[str]) -> tuple[str, str]:
    """Subject and body of an L1 escalation email (bounded: the last notes, clipped)."""
    path = "\n".join(f"  {i}. {_clip(s['question'])} -> {_clip(s['answer'])}"
                     for i, s in enumerate(row.walked_path, 1))
    shown = "\n".join(f"  - {_clip(n)}" for n in notes)
    earlier = row.note_count - len(notes)
    more = f"\n  ({earlier} earlier notes are in the session)" if earlier > 0 else ""
    body = (
        f"An L1 walk was escalated.\n\nProblem: {_clip(row.problem_text, 2000)}\nCategory: {row.category or '-'}\n"
        f"Reason: {row.escalation_reason_category}: {_clip(row.escalation_reason or '-', 2000)}\n"
        f"Ticket: {row.ticket_kind} {row.ticket_id}\nSession: {row.id}\n\n"
        f"Walked path:\n{path or '  (none)'}\n\nNotes:\n{shown or '  (none)'}{more}\n"
    )
    subject = f"L1 escalation [{row.category or 'uncategorised'}]: {row.problem_text[:80]}"
    return subject, body


def proposal_tree(row: L1WalkSession, resolution_notes: str | None) -> dict[str, Any]:
    """An authored-flow tree that replays the walked path and ends in its resolution."""
    pending = row.pending_node or {}
    if pending.get("kind") == "resolution" and pending.get("resolution"):
        final = pending["resolution"]
    else:
        final = resolution_notes or "Resolved; see the original walk's notes."
    nodes: dict[str, Any] = {}
    steps = row.walked_path
    for i, step in enumerate(steps):
        option: dict[str, Any] = {"label": step["answer"]}
        if i + 1 < len(steps):
            option["next"] = f"q{i + 2}"
        else:
            option["resolution"] = final
        nodes[f"q{i + 1}"] = {"question": step["question"], "options": [option]}
    return {"root": "q1", "nodes": nodes}


def keywords_of(text: str, limit: int = 8) -> list[str]:
    """Distinctive lowercase words of a problem statement, in order of appearance."""
    seen: list[str] = []
    for word in re.findall(r"[a-z][a-z0-9'-]{3,}", text.lower()):
        if word not in _STOPWORDS and word not in seen:
            seen.append(word)
    return seen[:limit]
