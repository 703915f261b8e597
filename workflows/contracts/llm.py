"""Inputs and outputs of the LLM operations (what the `llm.*` activities take and return).

Every output names the `provider` that produced it so nothing pretends a model answered.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal, get_args

from pydantic import BaseModel, Field
from temporalio.common import RetryPolicy

from workflows.contracts.common import ActivityRef

ConfidenceTier = Literal["discovery", "exploring", "guided"]
CONFIDENCE_TIERS: tuple[str, ...] = get_args(ConfidenceTier)
FixOutcome = Literal["applied_success", "applied_failed", "applied_partial", "applied_pending", "dismissed"]
ChatRole = Literal["user", "assistant"]
CHAT_ROLES: tuple[str, ...] = get_args(ChatRole)


def confidence_tier(confidence: float) -> ConfidenceTier:
    """discovery < 0.4 <= exploring < 0.8 <= guided."""
    if confidence < 0.4:
        return "discovery"
    return "exploring" if confidence < 0.8 else "guided"


class LlmCallContext(BaseModel):
    """Who the call is for (the usage ledger's account) and, optionally, what it is about."""

    account_id: str
    subject_id: str | None = Field(default=None, description="Session or walk the call serves.")


# --- intake -------------------------------------------------------------------------------------


class CategoryInfo(BaseModel):
    """An L1 category the intake may choose."""

    name: str
    in_scope: bool = True


class FlowSummary(BaseModel):
    """An authored flow the intake may match."""

    id: str
    title: str
    category: str
    keywords: list[str] = []


class ClassifyIntakeInput(BaseModel):
    """`classify_intake(problem, categories, flows)`."""

    context: LlmCallContext
    problem: str
    categories: list[CategoryInfo] = []
    flows: list[FlowSummary] = []


class IntakeClassification(BaseModel):
    """match (with flow_id) / build / out_of_scope, plus a category and a one-line reason."""

    outcome: Literal["match", "build", "out_of_scope"]
    category: str
    flow_id: str | None = None
    reason: str = ""
    provider: str


# --- AI-built walk ------------------------------------------------------------------------------


class WalkedStep(BaseModel):
    """One answered question of a walk."""

    node_id: str
    question: str
    answer: str


class NextWalkNodeInput(BaseModel):
    """`next_walk_node(problem, category, walked_path)`."""

    context: LlmCallContext
    problem: str
    category: str
    walked_path: list[WalkedStep] = []
    force_conclusion: bool = Field(default=False, description="Depth cap reached: give a resolution now.")


class WalkNodeSuggestion(BaseModel):
    """A question with options, or a resolution. The server, not the model, assigns node ids."""

    kind: Literal["question", "resolution"]
    question: str | None = None
    options: list[str] = []
    resolution: str | None = None
    escalate: bool = Field(default=False, description="The resolution is 'escalate to an engineer'.")
    provider: str


# --- AI session chat ----------------------------------------------------------------------------


class ChatTurn(BaseModel):
    """One message of a session transcript."""

    role: ChatRole
    content: str


class ProposedFix(BaseModel):
    """A candidate fix the model proposes."""

    title: str
    description: str
    confidence_pct: int = Field(ge=0, le=100)


class OutcomeProposal(BaseModel):
    """The model's suggestion of how the active fix turned out."""

    outcome: FixOutcome
    reason: str


class ChatReplyInput(BaseModel):
    """`chat_reply(transcript, facts)`."""

    context: LlmCallContext
    transcript: list[ChatTurn]
    facts: dict[str, str] = {}
    active_fix: ProposedFix | None = None
    current_confidence: float = Field(
        default=0.0, ge=0, le=1, description="The session's confidence so far; its tier picks the model."
    )


class ChatReply(BaseModel):
    """The assistant's reply with its confidence and optional proposals."""

    reply: str
    confidence: float = Field(ge=0, le=1)
    confidence_tier: ConfidenceTier
    proposed_fix: ProposedFix | None = None
    outcome_proposal: OutcomeProposal | None = None
    provider: str


# --- documents ----------------------------------------------------------------------------------


class SessionBundle(BaseModel):
    """Everything a note, package or assessment is written from."""

    context: LlmCallContext
    problem_summary: str
    transcript: list[ChatTurn] = []
    fixes: list[dict[str, str | int | None]] = Field(default=[], description=(
        "Every fix of the session, in order, each with exactly these keys: title, description, status (proposed, "
        "applied_success, applied_failed, applied_partial, applied_pending or dismissed), confidence_pct (int), "
        "applied_at and verified_at (ISO 8601 strings or None), failure_reason, partial_notes and pending_reason "
        "(text, None when unset), superseded ('yes' or 'no')."
    ))
    engineer_notes: str | None = None


class MarkdownDocument(BaseModel):
    """A generated markdown document (resolution note or escalation package)."""

    markdown: str
    provider: str
    model: str


class HandoffAssessment(BaseModel):
    """The AI's read of a parked or escalated session for the senior who picks it up."""

    summary_prose: str
    what_we_know: list[str]
    likely_cause: str
    suggested_steps: list[str]
    confidence: float = Field(ge=0, le=1)
    provider: str


# --- how workflows call the `llm.*` activities --------------------------------------------------
# e.g. `await workflow.execute_activity(LLM_CHAT_REPLY, inp, result_type=ChatReply,
#          start_to_close_timeout=LLM_START_TO_CLOSE, schedule_to_close_timeout=LLM_SCHEDULE_TO_CLOSE,
#          retry_policy=LLM_RETRY_POLICY)`
LLM_CLASSIFY_INTAKE = "llm.classify_intake"
LLM_NEXT_WALK_NODE = "llm.next_walk_node"
LLM_CHAT_REPLY = "llm.chat_reply"
LLM_RESOLUTION_NOTE = "llm.resolution_note"
LLM_ESCALATION_PACKAGE = "llm.escalation_package"
LLM_HANDOFF_ASSESSMENT = "llm.handoff_assessment"

# One attempt may make two model calls (the corrective retry), each bounded by ANTHROPIC_TIMEOUT_S (45 s).
LLM_START_TO_CLOSE = timedelta(seconds=120)
# Overall budget, retries included: an interactive caller should give up (and say so) rather than hang.
LLM_SCHEDULE_TO_CLOSE = timedelta(minutes=5)
# Rate limits, overload, 5xx and timeouts retry with backoff (a provider's retry-after overrides the
# interval); invalid output and 4xx are raised as non-retryable and fail at once.
LLM_RETRY_POLICY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
    non_retryable_error_types=["LlmNonRetryableError", "LlmInvalidOutputError"],
)


# --- typed activity references (what workflow code calls) ----------------------------------------

CLASSIFY_INTAKE: ActivityRef[ClassifyIntakeInput, IntakeClassification] = ActivityRef(
    LLM_CLASSIFY_INTAKE, IntakeClassification, LLM_START_TO_CLOSE, LLM_RETRY_POLICY,
    schedule_to_close=LLM_SCHEDULE_TO_CLOSE,
)
NEXT_WALK_NODE: ActivityRef[NextWalkNodeInput, WalkNodeSuggestion] = ActivityRef(
    LLM_NEXT_WALK_NODE, WalkNodeSuggestion, LLM_START_TO_CLOSE, LLM_RETRY_POLICY,
    schedule_to_close=LLM_SCHEDULE_TO_CLOSE,
)
