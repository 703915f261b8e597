"""The LLM provider interface, what a call reports for the usage ledger, and the errors it may raise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel

from workflows.contracts.llm import (
    ChatReply,
    ChatReplyInput,
    ClassifyIntakeInput,
    HandoffAssessment,
    IntakeClassification,
    MarkdownDocument,
    NextWalkNodeInput,
    SessionBundle,
    WalkNodeSuggestion,
)

Operation = Literal[
    "classify_intake", "next_walk_node", "chat_reply", "resolution_note", "escalation_package", "handoff_assessment"
]

T = TypeVar("T", bound=BaseModel)


@dataclass
class LlmUsageReport:
    """What one provider call consumed (summed over a corrective retry): one ledger row."""

    provider: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    latency_ms: int = 0
    calls: int = 0

    def add(self, *, input_tokens: int, output_tokens: int, cache_read_tokens: int, cache_write_tokens: int) -> None:
        """Add one HTTP call's token counts."""
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cache_read_tokens += cache_read_tokens
        self.cache_write_tokens += cache_write_tokens
        self.calls += 1


@dataclass
class LlmResult(Generic[T]):
    """A validated output and what producing it cost."""

    output: T
    usage: LlmUsageReport


class LlmError(Exception):
    """A provider call failed; `usage` is what was consumed before it did (for the ledger)."""

    retryable: bool = False

    def __init__(
        self, message: str, *, usage: LlmUsageReport | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.usage = usage
        self.retry_after_s = retry_after_s


class LlmRetryableError(LlmError):
    """Transient: rate limit (429), overload (529), 5xx, timeout or connection failure; try again later."""

    retryable = True


class LlmNonRetryableError(LlmError):
    """Permanent: the request was refused (4xx) or the provider is misconfigured; retrying cannot help."""


class LlmInvalidOutputError(LlmNonRetryableError):
    """The model's output failed validation twice (the first failure got one corrective retry)."""


class LlmProvider(Protocol):
    """Every AI operation the product needs; each returns a validated contract model and its usage."""

    name: str

    async def classify_intake(self, data: ClassifyIntakeInput) -> LlmResult[IntakeClassification]:
        """match (a flow id) / build / out_of_scope, plus a category."""
        ...

    async def next_walk_node(self, data: NextWalkNodeInput) -> LlmResult[WalkNodeSuggestion]:
        """The next question (with options) of an AI-built walk, or its resolution."""
        ...

    async def chat_reply(self, data: ChatReplyInput) -> LlmResult[ChatReply]:
        """The assistant's next message with confidence and optional fix/outcome proposals."""
        ...

    async def resolution_note(self, data: SessionBundle) -> LlmResult[MarkdownDocument]:
        """Problem / What we confirmed / Root cause / Resolution."""
        ...

    async def escalation_package(self, data: SessionBundle) -> LlmResult[MarkdownDocument]:
        """Problem / What we've confirmed / What we've tried / Current hypothesis / Suggested next steps."""
        ...

    async def handoff_assessment(self, data: SessionBundle) -> LlmResult[HandoffAssessment]:
        """A read of a parked or escalated session for the senior who picks it up."""
        ...
