"""L1 intake and escalate-without-walk: ticket, classification, session row, then the walk's workflow."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.errors import Conflict, NotFound
from db.models import L1Category, L1Flow, User
from db.repositories.l1_catalog import CategoryRepository, FlowRepository
from db.repositories.l1_tickets import InternalTicketRepository
from db.session import unit_of_work
from services.walks import WalkCommands
from workflows.contracts.llm import CategoryInfo, ClassifyIntakeInput, FlowSummary, LlmCallContext
from workflows.contracts.walk import EscalateInput, EscalateResult, WalkCreate, WalkNode

log = logging.getLogger(__name__)
Outcome = Literal["match", "build", "out_of_scope", "adhoc"]
KIND_BY_OUTCOME: dict[str, str] = {"match": "flow", "build": "ai_build", "adhoc": "adhoc"}
MAX_FLOWS_OFFERED = 200


class IdentityFor(Protocol):
    """Ids of what a command creates (stable across retries of one keyed request), and the key itself."""

    key: str | None

    def entity_id(self, kind: str) -> uuid.UUID:
        """The id of the `kind` entity the command creates."""
        ...


@dataclass
class IntakeOutcome:
    """What intake decided and what it created."""

    outcome: Outcome
    ticket_id: uuid.UUID
    category: str | None
    message: str
    session_id: uuid.UUID | None = None
    session_kind: str | None = None
    pending_node: WalkNode | None = None


@dataclass
class _Decision:
    outcome: Outcome
    category: str | None
    message: str
    flow: L1Flow | None = None


async def _decide(
    sessions: async_sessionmaker[AsyncSession], walks: WalkCommands, user: User, problem: str,
    flow_id: uuid.UUID | None, adhoc: bool,
) -> _Decision:
    if adhoc:
        return _Decision("adhoc", None, "Ad hoc walk started: take notes, then resolve or escalate it.")
    if flow_id is not None:
        async with unit_of_work(sessions) as session:
            flow = await FlowRepository(session).get_in_account(user.account_id, flow_id)
        if flow is None:
            raise NotFound("Flow not found")
        return _Decision("match", flow.category, f"Walking the flow you chose: '{flow.title}'.", flow)
    async with unit_of_work(sessions) as session:  # ended: the pooled connection is released while the model thinks
        categories = await CategoryRepository(session).list_for_account(user.account_id)
        offered = await FlowRepository(session).list_for_account(user.account_id, limit=MAX_FLOWS_OFFERED, offset=0)
    verdict = await walks.classify_intake(ClassifyIntakeInput(
        context=LlmCallContext(account_id=str(user.account_id)),
        problem=problem,
        categories=[CategoryInfo(name=c.name, in_scope=c.in_scope) for c in categories],
        flows=[FlowSummary(id=str(f.id), title=f.title, category=f.category, keywords=f.keywords) for f in offered],
    ))
    by_id = {str(f.id): f for f in offered}
    category = _known(categories, verdict.category)
    if verdict.outcome == "match" and verdict.flow_id in by_id:
        flow = by_id[verdict.flow_id or ""]
        return _Decision("match", flow.category, f"Matched the flow '{flow.title}': walk it step by step.", flow)
    if verdict.outcome == "out_of_scope" or (category is not None and not category.in_scope):
        name = category.name if category else verdict.category
        why = f" ({verdict.reason})" if verdict.reason else ""
        return _Decision("out_of_scope", name,
                         f"This looks like a {name} problem, which is outside L1 scope{why}. Walk it ad hoc "
                         "(POST /l1/intake with adhoc=true) or escalate it (POST /l1/escalate-without-walk).")
    name = category.name if category else verdict.category
    return _Decision("build", name, "No authored flow matches; the assistant builds the walk one question "
                                    f"at a time (answered by {verdict.provider}).")


def _known(categories: Sequence[L1Category], name: str) -> L1Category | None:
    wanted = name.strip().casefold()
    return next((c for c in categories if c.name.casefold() == wanted), None)


async def run_intake(
    sessions: async_sessionmaker[AsyncSession],
    walks: WalkCommands,
    user: User,
    ids: IdentityFor,
    *,
    problem: str,
    customer_name: str | None = None,
    customer_contact: str | None = None,
    flow_id: uuid.UUID | None = None,
    adhoc: bool = False,
) -> IntakeOutcome:
    """Decide, then (unless out of scope) let the walk's workflow create its session and serve the first node.

    Nothing is committed for a walk until its workflow runs: with Temporal down the caller gets a 503 and
    no session; a retry with the same Idempotency-Key reaches the same session id (`ids`). Each database step
    is a short unit of work of its own (`sessions`): none is open while the model or the workflow runs.
    """
    async with unit_of_work(sessions) as session:
        await CategoryRepository(session).ensure_defaults(user.account_id)
    decision = await _decide(sessions, walks, user, problem, flow_id, adhoc)
    if decision.outcome == "out_of_scope":
        async with unit_of_work(sessions) as session:
            ticket = await InternalTicketRepository(session).create(
                account_id=user.account_id, created_by_user_id=user.id, problem_statement=problem,
                customer_name=customer_name, customer_contact=customer_contact,
            )
        return IntakeOutcome("out_of_scope", ticket.id, decision.category, decision.message)
    # The read transactions have ended: no pooled connection waits on the workflow with us.
    walk = WalkCreate(
        session_id=ids.entity_id("session"), ticket_id=ids.entity_id("ticket"), account_id=user.account_id,
        created_by_user_id=user.id, session_kind=KIND_BY_OUTCOME[decision.outcome], category=decision.category,
        problem_text=problem, customer_name=customer_name, customer_contact=customer_contact,
        flow_id=decision.flow.id if decision.flow else None,
    )
    opened = await walks.create(walk, key=ids.key)
    log.info("intake %s: %s session %s for account %s", decision.outcome, walk.session_kind, walk.session_id,
             user.account_id)
    return IntakeOutcome(decision.outcome, walk.ticket_id, decision.category, decision.message, walk.session_id,
                         walk.session_kind, opened.pending_node)


async def escalate_without_walk(
    walks: WalkCommands,
    user: User,
    ids: IdentityFor,
    *,
    problem: str,
    reason_category: str,
    reason: str | None,
    category: str | None = None,
) -> tuple[WalkCreate, EscalateResult]:
    """An internal ticket and an adhoc session, created and escalated by one workflow update."""
    walk = WalkCreate(
        session_id=ids.entity_id("session"), ticket_id=ids.entity_id("ticket"), account_id=user.account_id,
        created_by_user_id=user.id, session_kind="adhoc", category=category, problem_text=problem,
    )
    opened = await walks.create(walk, escalate=EscalateInput(reason_category=reason_category, reason=reason),
                                key=ids.key)
    if opened.escalation is None:
        raise Conflict("This request's session already exists and is not active; send a new Idempotency-Key")
    return walk, opened.escalation
