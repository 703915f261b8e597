"""The Anthropic provider: one forced tool call per operation, validated by pydantic, with one
corrective retry on invalid output; SDK errors mapped to retryable / non-retryable for Temporal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import anthropic
from anthropic.types import ContentBlockParam, Message, MessageParam, TextBlockParam, ToolParam
from pydantic import BaseModel, ValidationError

from core.config import Settings
from integrations.llm.base import (
    LlmError,
    LlmInvalidOutputError,
    LlmNonRetryableError,
    LlmResult,
    LlmRetryableError,
    LlmUsageReport,
    Operation,
)
from integrations.llm.drafts import (
    ChatDraft,
    EscalationDraft,
    HandoffDraft,
    IntakeDraft,
    ResolutionNoteDraft,
    WalkNodeDraft,
    finalize_chat,
    finalize_handoff,
    finalize_intake,
    finalize_walk_node,
    render_escalation_package,
    render_resolution_note,
    tool_schema,
)
from integrations.llm.prompts import (
    TOOL_NAMES,
    render_bundle,
    render_chat,
    render_intake,
    render_walk,
    system_prompt,
)
from workflows.contracts.llm import (
    ChatReply,
    ChatReplyInput,
    ClassifyIntakeInput,
    ConfidenceTier,
    HandoffAssessment,
    IntakeClassification,
    MarkdownDocument,
    NextWalkNodeInput,
    SessionBundle,
    WalkNodeSuggestion,
    confidence_tier,
)

log = logging.getLogger(__name__)

PROVIDER = "anthropic"
MAX_TOKENS: dict[Operation, int] = {
    "classify_intake": 512, "next_walk_node": 800, "chat_reply": 1500,
    "resolution_note": 2000, "escalation_package": 2500, "handoff_assessment": 1500,
}
MAX_RETRY_AFTER_S = 300.0  # never let a provider park a workflow's activity for longer than this
D = TypeVar("D", bound=BaseModel)
T = TypeVar("T", bound=BaseModel)


@dataclass(frozen=True)
class ModelRouting:
    """Which model serves each operation (and, for chat, each confidence tier)."""

    classify_intake: str
    next_walk_node: str
    chat_discovery: str
    chat_exploring: str
    chat_guided: str
    resolution_note: str
    escalation_package: str
    handoff_assessment: str

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelRouting:
        """The LLM_MODEL_* settings."""
        return cls(
            classify_intake=settings.llm_model_classify_intake, next_walk_node=settings.llm_model_next_walk_node,
            chat_discovery=settings.llm_model_chat_discovery, chat_exploring=settings.llm_model_chat_exploring,
            chat_guided=settings.llm_model_chat_guided, resolution_note=settings.llm_model_resolution_note,
            escalation_package=settings.llm_model_escalation_package,
            handoff_assessment=settings.llm_model_handoff_assessment,
        )

    def chat(self, tier: ConfidenceTier) -> str:
        """The chat model for a confidence tier."""
        return {"discovery": self.chat_discovery, "exploring": self.chat_exploring, "guided": self.chat_guided}[tier]


def retry_after_seconds(headers: Any) -> float | None:
    """`retry-after-ms` or `retry-after` (seconds or an HTTP date), capped; None when absent or garbled."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return min(max(float(raw_ms) / 1000, 0.0), MAX_RETRY_AFTER_S)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return min(max(float(raw), 0.0), MAX_RETRY_AFTER_S)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return min(max(when.timestamp() - time.time(), 0.0), MAX_RETRY_AFTER_S)


def map_sdk_error(exc: anthropic.AnthropicError, usage: LlmUsageReport) -> LlmError:
    """429/529/5xx/408/timeouts/connection failures are retryable; every other 4xx is not."""
    if isinstance(exc, anthropic.APITimeoutError):
        return LlmRetryableError("Anthropic request timed out", usage=usage)
    if isinstance(exc, anthropic.APIConnectionError):
        return LlmRetryableError(f"Could not reach the Anthropic API: {exc}", usage=usage)
    if isinstance(exc, anthropic.APIStatusError):
        code = exc.status_code
        detail = f"Anthropic API answered {code}: {exc.api_message or exc.message}"
        if code in (408, 429) or code >= 500:
            return LlmRetryableError(detail, usage=usage, retry_after_s=retry_after_seconds(exc.response.headers))
        if code in (401, 403):
            detail += " (check ANTHROPIC_API_KEY)"
        return LlmNonRetryableError(detail, usage=usage)
    return LlmNonRetryableError(f"Anthropic client error: {exc}", usage=usage)


def _assistant_blocks(message: Message) -> list[ContentBlockParam]:
    # Echo the model's turn back as request params (only the block kinds we asked for).
    blocks: list[ContentBlockParam] = []
    for block in message.content:
        if block.type == "text":
            blocks.append({"type": "text", "text": block.text})
        elif block.type == "tool_use":
            blocks.append({"type": "tool_use", "id": block.id, "name": block.name, "input": block.input})
    return blocks


class AnthropicProvider:
    """LlmProvider backed by the official async client (which must be built with max_retries=0)."""

    name = PROVIDER

    def __init__(self, client: anthropic.AsyncAnthropic, routing: ModelRouting) -> None:
        self._client = client
        self._routing = routing

    async def classify_intake(self, data: ClassifyIntakeInput) -> LlmResult[IntakeClassification]:
        """match / build / out_of_scope through the fast model."""
        return await self._structured("classify_intake", self._routing.classify_intake, render_intake(data),
                                      IntakeDraft, lambda d: finalize_intake(d, data, PROVIDER))

    async def next_walk_node(self, data: NextWalkNodeInput) -> LlmResult[WalkNodeSuggestion]:
        """The next walk question or its resolution."""
        return await self._structured("next_walk_node", self._routing.next_walk_node, render_walk(data),
                                      WalkNodeDraft, lambda d: finalize_walk_node(d, data, PROVIDER))

    async def chat_reply(self, data: ChatReplyInput) -> LlmResult[ChatReply]:
        """The next assistant message, on the model of the session's current confidence tier."""
        model = self._routing.chat(confidence_tier(data.current_confidence))
        return await self._structured("chat_reply", model, render_chat(data),
                                      ChatDraft, lambda d: finalize_chat(d, data, PROVIDER))

    async def resolution_note(self, data: SessionBundle) -> LlmResult[MarkdownDocument]:
        """The four-section resolution note."""
        model = self._routing.resolution_note
        return await self._structured(
            "resolution_note", model, render_bundle(data), ResolutionNoteDraft,
            lambda d: MarkdownDocument(markdown=render_resolution_note(d), provider=PROVIDER, model=model),
        )

    async def escalation_package(self, data: SessionBundle) -> LlmResult[MarkdownDocument]:
        """The five-section escalation package."""
        model = self._routing.escalation_package
        return await self._structured(
            "escalation_package", model, render_bundle(data), EscalationDraft,
            lambda d: MarkdownDocument(markdown=render_escalation_package(d), provider=PROVIDER, model=model),
        )

    async def handoff_assessment(self, data: SessionBundle) -> LlmResult[HandoffAssessment]:
        """The senior's read of a parked or escalated session."""
        return await self._structured("handoff_assessment", self._routing.handoff_assessment, render_bundle(data),
                                      HandoffDraft, lambda d: finalize_handoff(d, PROVIDER))

    async def _structured(
        self, operation: Operation, model: str, user_content: str, draft_type: type[D], finalize: Callable[[D], T]
    ) -> LlmResult[T]:
        tool_name = TOOL_NAMES[operation]
        tool: ToolParam = {"name": tool_name, "description": f"Record the {operation.replace('_', ' ')}.",
                           "input_schema": tool_schema(draft_type)}
        # The system prompt is identical for every call of an operation: cache it (tools + system prefix).
        system: list[TextBlockParam] = [
            {"type": "text", "text": system_prompt(operation), "cache_control": {"type": "ephemeral"}}
        ]
        messages: list[MessageParam] = [{"role": "user", "content": user_content}]
        usage = LlmUsageReport(provider=PROVIDER, model=model)
        started = time.monotonic()
        try:
            for attempt in (1, 2):
                message = await self._create(model, system, tool, messages, MAX_TOKENS[operation], usage)
                call = next((b for b in message.content if b.type == "tool_use" and b.name == tool_name), None)
                try:
                    if call is None:
                        raise ValueError(f"the reply did not call the tool {tool_name}")
                    return LlmResult(output=finalize(draft_type.model_validate(call.input)), usage=usage)
                except ValueError as exc:  # pydantic's ValidationError is a ValueError too
                    problem = _describe(exc)
                    log.warning("%s on %s: invalid output (attempt %d): %s", operation, model, attempt, problem)
                    if attempt == 2:
                        raise LlmInvalidOutputError(
                            f"{operation}: the model's output was invalid twice: {problem}", usage=usage
                        ) from exc
                    messages += self._correction(message, call, tool_name, problem)
            raise AssertionError("unreachable")
        finally:
            usage.latency_ms = int((time.monotonic() - started) * 1000)

    @staticmethod
    def _correction(message: Message, call: Any, tool_name: str, problem: str) -> list[MessageParam]:
        instruction = f"Call {tool_name} again with input that fixes this: {problem}"
        content: str | list[ContentBlockParam]
        if call is None:
            content = f"Your reply was not usable: {problem}. {instruction}"
        else:
            content = [{"type": "tool_result", "tool_use_id": call.id, "is_error": True, "content": instruction}]
        assistant = _assistant_blocks(message) or [{"type": "text", "text": "(empty reply)"}]
        return [{"role": "assistant", "content": assistant}, {"role": "user", "content": content}]

    async def _create(
        self, model: str, system: list[TextBlockParam], tool: ToolParam, messages: list[MessageParam],
        max_tokens: int, usage: LlmUsageReport,
    ) -> Message:
        try:
            message = await self._client.messages.create(
                model=model, max_tokens=max_tokens, system=system, tools=[tool],
                tool_choice={"type": "tool", "name": tool["name"]}, messages=messages,
            )
        except anthropic.AnthropicError as exc:
            raise map_sdk_error(exc, usage) from exc
        u = message.usage
        usage.add(input_tokens=u.input_tokens, output_tokens=u.output_tokens,
                  cache_read_tokens=u.cache_read_input_tokens or 0,
                  cache_write_tokens=u.cache_creation_input_tokens or 0)
        return message


def _describe(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in exc.errors())[:1000]
    return str(exc)[:1000]
