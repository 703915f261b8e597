"""What a provider drafts for each operation, the checks that turn a draft into a contract model, and
the markdown both providers render documents with (so the section headings never depend on a model).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from workflows.contracts.llm import (
    ChatReply,
    ChatReplyInput,
    ClassifyIntakeInput,
    HandoffAssessment,
    IntakeClassification,
    NextWalkNodeInput,
    OutcomeProposal,
    ProposedFix,
    WalkNodeSuggestion,
    confidence_tier,
)

MAX_OPTIONS = 6


class IntakeDraft(BaseModel):
    """Tool input for classify_intake."""

    outcome: Literal["match", "build", "out_of_scope"] = Field(
        description="match: an existing flow fits; build: in scope but no flow fits; out_of_scope: not ours."
    )
    category: str = Field(min_length=1, description="One of the given category names.")
    flow_id: str | None = Field(default=None, description="The matched flow's id (only when outcome=match).")
    reason: str = Field(min_length=1, max_length=500, description="One sentence: why.")


class WalkNodeDraft(BaseModel):
    """Tool input for next_walk_node."""

    kind: Literal["question", "resolution"]
    question: str | None = Field(default=None, description="For kind=question: one yes/no or pick-one question.")
    options: list[str] = Field(default=[], description=f"For kind=question: 2 to {MAX_OPTIONS} short answers.")
    resolution: str | None = Field(default=None, description="For kind=resolution: the steps that fix it.")
    escalate: bool = Field(default=False, description="True when the resolution is: escalate to an engineer.")


class ChatDraft(BaseModel):
    """Tool input for chat_reply."""

    reply: str = Field(min_length=1, description="The message to the engineer (markdown allowed).")
    confidence: float = Field(ge=0, le=1, description="How sure you are of the cause, 0 to 1.")
    proposed_fix: ProposedFix | None = Field(default=None, description="Only when you recommend a concrete fix.")
    outcome_proposal: OutcomeProposal | None = Field(
        default=None, description="Only when the engineer reported how the active fix went."
    )


class ResolutionNoteDraft(BaseModel):
    """Tool input for resolution_note: the four sections."""

    problem: str = Field(min_length=1)
    what_we_confirmed: list[str] = Field(min_length=1)
    root_cause: str = Field(min_length=1)
    resolution: str = Field(min_length=1)


class EscalationDraft(BaseModel):
    """Tool input for escalation_package: the five sections."""

    problem: str = Field(min_length=1)
    what_we_confirmed: list[str] = Field(min_length=1)
    what_we_tried: list[str] = Field(min_length=1)
    current_hypothesis: str = Field(min_length=1)
    suggested_next_steps: list[str] = Field(min_length=1)


class HandoffDraft(BaseModel):
    """Tool input for handoff_assessment."""

    summary_prose: str = Field(min_length=1)
    what_we_know: list[str]
    likely_cause: str = Field(min_length=1)
    suggested_steps: list[str] = Field(min_length=1)
    confidence: float = Field(ge=0, le=1)


def tool_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with `$ref`s inlined (one self-contained object schema per tool)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    result: dict[str, Any] = inline(schema)
    return result


# --- semantic checks: a failure here earns the model one corrective retry ------------------------


def finalize_intake(draft: IntakeDraft, data: ClassifyIntakeInput, provider: str) -> IntakeClassification:
    """Check the flow id and category against what was offered; normalize the category's spelling."""
    flow_id = None
    if draft.outcome == "match":
        flow_ids = {f.id for f in data.flows}
        if draft.flow_id not in flow_ids:
            raise ValueError(f"outcome=match needs flow_id to be one of {sorted(flow_ids)}, got {draft.flow_id!r}")
        flow_id = draft.flow_id
    category = draft.category.strip()
    if data.categories:
        by_name = {c.name.lower(): c for c in data.categories}
        chosen = by_name.get(category.lower())
        if chosen is None:
            names = [c.name for c in data.categories]
            raise ValueError(f"category must be one of {names}, got {category!r}")
        category = chosen.name
        if not chosen.in_scope and draft.outcome != "out_of_scope":
            raise ValueError(f"category {chosen.name!r} is out of scope: answer outcome=out_of_scope")
    return IntakeClassification(
        outcome=draft.outcome, category=category, flow_id=flow_id, reason=draft.reason.strip(), provider=provider
    )


def finalize_walk_node(draft: WalkNodeDraft, data: NextWalkNodeInput, provider: str) -> WalkNodeSuggestion:
    """A question needs 2-6 distinct options; a resolution needs text; a forced conclusion is a resolution."""
    if data.force_conclusion and draft.kind != "resolution":
        raise ValueError("the walk has reached its depth limit: answer kind=resolution")
    if draft.kind == "question":
        options = [o.strip() for o in draft.options if o.strip()]
        if not (draft.question or "").strip():
            raise ValueError("kind=question needs a non-empty question")
        if len(set(options)) != len(options) or not 2 <= len(options) <= MAX_OPTIONS:
            raise ValueError(f"kind=question needs 2 to {MAX_OPTIONS} distinct options, got {draft.options!r}")
        return WalkNodeSuggestion(kind="question", question=(draft.question or "").strip(), options=options,
                                  provider=provider)
    if not (draft.resolution or "").strip():
        raise ValueError("kind=resolution needs a non-empty resolution")
    return WalkNodeSuggestion(kind="resolution", resolution=(draft.resolution or "").strip(),
                              escalate=draft.escalate, provider=provider)


def finalize_chat(draft: ChatDraft, data: ChatReplyInput, provider: str) -> ChatReply:
    """An outcome proposal only makes sense while a fix is active."""
    if draft.outcome_proposal is not None and data.active_fix is None:
        raise ValueError("outcome_proposal is only allowed while a fix is active; there is none")
    return ChatReply(
        reply=draft.reply.strip(), confidence=draft.confidence, confidence_tier=confidence_tier(draft.confidence),
        proposed_fix=draft.proposed_fix, outcome_proposal=draft.outcome_proposal, provider=provider,
    )


def finalize_handoff(draft: HandoffDraft, provider: str) -> HandoffAssessment:
    """The draft as the contract model."""
    return HandoffAssessment(**draft.model_dump(), provider=provider)


# --- markdown -----------------------------------------------------------------------------------


def _bullets(items: list[str]) -> str:
    return "\n".join(f"- {item.strip()}" for item in items if item.strip()) or "- (nothing recorded)"


def _document(sections: list[tuple[str, str]], footer: str | None) -> str:
    body = "\n\n".join(f"## {title}\n\n{text.strip()}" for title, text in sections)
    return f"{body}\n\n---\n_{footer}_\n" if footer else body + "\n"


def render_resolution_note(draft: ResolutionNoteDraft, footer: str | None = None) -> str:
    """Problem / What we confirmed / Root cause / Resolution."""
    return _document(
        [("Problem", draft.problem), ("What we confirmed", _bullets(draft.what_we_confirmed)),
         ("Root cause", draft.root_cause), ("Resolution", draft.resolution)],
        footer,
    )


def render_escalation_package(draft: EscalationDraft, footer: str | None = None) -> str:
    """Problem / What we've confirmed / What we've tried / Current hypothesis / Suggested next steps."""
    steps = "\n".join(f"{i}. {s.strip()}" for i, s in enumerate(draft.suggested_next_steps, 1))
    return _document(
        [("Problem", draft.problem), ("What we've confirmed", _bullets(draft.what_we_confirmed)),
         ("What we've tried", _bullets(draft.what_we_tried)), ("Current hypothesis", draft.current_hypothesis),
         ("Suggested next steps", steps)],
        footer,
    )
