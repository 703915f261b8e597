"""LLM activities: every model call of the product runs here, records a ledger row and maps failures
to retryable / non-retryable ApplicationErrors (honouring a provider's retry-after).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.session_bundle import chat_context, session_bundle
from db.repositories.ai_sessions import SessionDocumentRepository
from db.repositories.handoffs import HandoffRepository
from db.repositories.llm_usage import LlmUsageRepository
from db.session import unit_of_work
from integrations.llm.base import LlmError, LlmProvider, LlmResult, LlmUsageReport, Operation
from integrations.llm.pricing import estimate_cost
from workflows.contracts.ai_session import (
    LLM_SESSION_DOCUMENT,
    LLM_SESSION_REPLY,
    DocumentRequest,
    DocumentResult,
    SessionReplyInput,
)
from workflows.contracts.handoff import LLM_HANDOFF_ASSESSMENT_FOR, AssessmentRequest
from workflows.contracts.llm import (
    LLM_CHAT_REPLY,
    LLM_CLASSIFY_INTAKE,
    LLM_ESCALATION_PACKAGE,
    LLM_HANDOFF_ASSESSMENT,
    LLM_NEXT_WALK_NODE,
    LLM_RESOLUTION_NOTE,
    ChatReply,
    ChatReplyInput,
    ChatTurn,
    ClassifyIntakeInput,
    HandoffAssessment,
    IntakeClassification,
    LlmCallContext,
    MarkdownDocument,
    NextWalkNodeInput,
    SessionBundle,
    WalkNodeSuggestion,
)

log = logging.getLogger(__name__)
T = TypeVar("T", bound=BaseModel)


class LlmActivities:
    """The `llm.*` activities, bound to one provider and the ledger's database."""

    def __init__(self, provider: LlmProvider, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self.provider = provider
        self._session_factory = session_factory

    @activity.defn(name=LLM_CLASSIFY_INTAKE)
    async def classify_intake(self, data: ClassifyIntakeInput) -> IntakeClassification:
        """match / build / out_of_scope for an L1 intake."""
        return await self._run("classify_intake", data.context, lambda: self.provider.classify_intake(data))

    @activity.defn(name=LLM_NEXT_WALK_NODE)
    async def next_walk_node(self, data: NextWalkNodeInput) -> WalkNodeSuggestion:
        """The next question or the resolution of an AI-built walk."""
        return await self._run("next_walk_node", data.context, lambda: self.provider.next_walk_node(data))

    @activity.defn(name=LLM_CHAT_REPLY)
    async def chat_reply(self, data: ChatReplyInput) -> ChatReply:
        """The assistant's next message in a troubleshooting session."""
        return await self._run("chat_reply", data.context, lambda: self.provider.chat_reply(data))

    @activity.defn(name=LLM_RESOLUTION_NOTE)
    async def resolution_note(self, data: SessionBundle) -> MarkdownDocument:
        """The customer-visible resolution note."""
        return await self._run("resolution_note", data.context, lambda: self.provider.resolution_note(data))

    @activity.defn(name=LLM_ESCALATION_PACKAGE)
    async def escalation_package(self, data: SessionBundle) -> MarkdownDocument:
        """The internal escalation package."""
        return await self._run("escalation_package", data.context, lambda: self.provider.escalation_package(data))

    @activity.defn(name=LLM_HANDOFF_ASSESSMENT)
    async def handoff_assessment(self, data: SessionBundle) -> HandoffAssessment:
        """The AI assessment shown to the senior who claims a handoff."""
        return await self._run("handoff_assessment", data.context, lambda: self.provider.handoff_assessment(data))

    @activity.defn(name=LLM_HANDOFF_ASSESSMENT_FOR)
    async def handoff_assessment_for(self, data: AssessmentRequest) -> HandoffAssessment:
        """The assessment of a handoff, written from its session and notes read by id (no transcript in history)."""
        async with self._session_factory() as session:
            handoff = await HandoffRepository(session).get(data.handoff_id)
            try:
                if handoff is None:
                    raise LookupError(f"Handoff {data.handoff_id} does not exist")
                bundle, _ = await session_bundle(session, handoff.session_id, data.context)
            except LookupError as exc:
                raise ApplicationError(str(exc), type="LlmBadInput", non_retryable=True) from exc
        bundle = bundle.model_copy(update={"engineer_notes": handoff.engineer_notes or None})
        return await self._run("handoff_assessment", data.context, lambda: self.provider.handoff_assessment(bundle))

    @activity.defn(name=LLM_SESSION_REPLY)
    async def session_reply(self, data: SessionReplyInput) -> ChatReply:
        """The assistant's reply in an AI session, from the transcript and active fix read by id."""
        async with self._session_factory() as session:
            try:
                found = await chat_context(session, data.session_id)
            except LookupError as exc:
                raise ApplicationError(str(exc), type="LlmBadInput", non_retryable=True) from exc
        request = ChatReplyInput(
            context=data.context, transcript=[*found.transcript, ChatTurn(role="user", content=data.user_content)],
            facts={"problem": found.problem_summary}, active_fix=found.active_fix,
            current_confidence=data.current_confidence,
        )
        return await self._run("chat_reply", data.context, lambda: self.provider.chat_reply(request))

    @activity.defn(name=LLM_SESSION_DOCUMENT)
    async def session_document(self, data: DocumentRequest) -> DocumentResult:
        """A resolution-note or escalation-package preview, cached by (session, kind, state_version)."""
        async with self._session_factory() as session:
            async with session.begin():
                # One snapshot: the version the cache is keyed by is the version the facts come from.
                await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
                try:
                    bundle, version = await session_bundle(session, data.session_id, data.context)
                except LookupError as exc:
                    raise ApplicationError(str(exc), type="LlmBadInput", non_retryable=True) from exc
                cached = await SessionDocumentRepository(session).get(data.session_id, data.kind, version)
            if cached is not None:
                return DocumentResult(markdown=cached.markdown, state_version=version, from_cache=True)
            if data.kind == "resolution_note":
                document = await self._run("resolution_note", data.context,
                                           lambda: self.provider.resolution_note(bundle))
            else:
                document = await self._run("escalation_package", data.context,
                                           lambda: self.provider.escalation_package(bundle))
            async with session.begin():
                markdown = await SessionDocumentRepository(session).store(
                    data.session_id, data.kind, version, document.markdown, document.provider)
        return DocumentResult(markdown=markdown, state_version=version, from_cache=False)

    def all(self) -> list[Callable[..., Awaitable[BaseModel]]]:
        """Every activity method, for the worker."""
        return [self.classify_intake, self.next_walk_node, self.chat_reply, self.resolution_note,
                self.escalation_package, self.handoff_assessment, self.handoff_assessment_for, self.session_reply,
                self.session_document]

    async def _run(
        self, operation: Operation, context: LlmCallContext, call: Callable[[], Awaitable[LlmResult[T]]]
    ) -> T:
        try:
            account_id = uuid.UUID(context.account_id)
        except ValueError:
            raise ApplicationError(f"context.account_id is not a UUID: {context.account_id!r}",
                                   type="LlmBadInput", non_retryable=True) from None
        try:
            result = await call()
        except LlmError as exc:
            usage = exc.usage or LlmUsageReport(provider=self.provider.name, model="unknown")
            await self._record(operation, account_id, context, usage, error=f"{type(exc).__name__}: {exc}")
            delay = timedelta(seconds=exc.retry_after_s) if exc.retry_after_s else None
            raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=not exc.retryable,
                                   next_retry_delay=delay) from exc
        except Exception as exc:
            # A bug rather than a provider failure: record it, then let Temporal's policy decide.
            usage = LlmUsageReport(provider=self.provider.name, model="unknown")
            await self._record(operation, account_id, context, usage, error=f"{type(exc).__name__}: {exc}")
            raise
        await self._record(operation, account_id, context, result.usage, error=None)
        return result.output

    async def _record(
        self, operation: Operation, account_id: uuid.UUID, context: LlmCallContext, usage: LlmUsageReport,
        *, error: str | None,
    ) -> None:
        cost = estimate_cost(usage)
        try:
            async with unit_of_work(self._session_factory) as session:
                await LlmUsageRepository(session).record(
                    account_id=account_id, operation=operation, provider=usage.provider, model=usage.model,
                    subject_id=context.subject_id[:64] if context.subject_id else None,
                    input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                    cache_read_tokens=usage.cache_read_tokens, cache_write_tokens=usage.cache_write_tokens,
                    latency_ms=usage.latency_ms, cost_usd=cost, succeeded=error is None, error=error,
                )
        except Exception:
            # Failing the activity here would repeat a call that was already paid for; log the row
            # loudly instead so it can be reconciled.
            log.exception("could not record LLM usage for account %s: %s %s/%s in=%d out=%d cost=%s error=%s",
                          account_id, operation, usage.provider, usage.model, usage.input_tokens,
                          usage.output_tokens, cost, error)
