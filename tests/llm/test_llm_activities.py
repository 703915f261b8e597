"""LLM activities on the real Temporal dev server: retries, non-retryable failures and the usage ledger."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.llm import LlmActivities
from activities.registry import ActivityDeps, build_activities
from db.models import LlmUsage
from db.repositories.accounts import AccountRepository
from integrations.llm.offline_provider import OfflineProvider
from tests.llm.fake_anthropic import FakeAnthropic
from tests.llm.probe_workflows import ChatProbeWorkflow, IntakeProbeWorkflow
from workflows.contracts.llm import (
    CategoryInfo,
    ChatReplyInput,
    ChatTurn,
    ClassifyIntakeInput,
    LlmCallContext,
)

VALID_CHAT = {"reply": "Does outlook.office.com sign-in work?", "confidence": 0.3}


@asynccontextmanager
async def probe_worker(client: Client, activities: list[Callable[..., Any]]) -> AsyncIterator[str]:
    """A worker for the probe workflows on a task queue of its own."""
    queue = f"llm-probe-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[IntakeProbeWorkflow, ChatProbeWorkflow],
                      activities=activities):
        yield queue


async def _account(db: AsyncSession) -> str:
    account = await AccountRepository(db).create("Acme MSP")
    await db.commit()
    return str(account.id)


async def _ledger(db: AsyncSession, account_id: str) -> list[LlmUsage]:
    rows = await db.execute(select(LlmUsage).where(LlmUsage.account_id == uuid.UUID(account_id))
                            .order_by(LlmUsage.created_at))
    return list(rows.scalars())


def _chat(account_id: str) -> ChatReplyInput:
    return ChatReplyInput(context=LlmCallContext(account_id=account_id, subject_id="session-42"),
                          transcript=[ChatTurn(role="user", content="Outlook keeps asking for my password")])


async def test_registered_offline_activity_fills_the_ledger(
    temporal_client: Client, activity_deps: ActivityDeps, db: AsyncSession
) -> None:
    account_id = await _account(db)
    data = ClassifyIntakeInput(context=LlmCallContext(account_id=account_id, subject_id="walk-1"),
                               problem="Printer shows offline", categories=[CategoryInfo(name="Printing")])
    async with probe_worker(temporal_client, build_activities(activity_deps)) as queue:
        result = await temporal_client.execute_workflow(
            IntakeProbeWorkflow.run, data, id=f"probe-{uuid.uuid4()}", task_queue=queue,
            execution_timeout=timedelta(seconds=30))
    assert (result.outcome, result.category, result.provider) == ("build", "Printing", "offline")
    [row] = await _ledger(db, account_id)
    assert (row.operation, row.provider, row.model, row.subject_id) == ("classify_intake", "offline",
                                                                        "offline-rules-v1", "walk-1")
    assert row.succeeded and row.error is None and row.cost_usd == 0


async def test_rate_limit_is_retried_after_retry_after_and_both_calls_are_recorded(
    temporal_client: Client, session_factory: async_sessionmaker[AsyncSession], db: AsyncSession
) -> None:
    account_id = await _account(db)
    fake = FakeAnthropic()
    # 3 s is longer than the policy's 2 s first interval, so finishing after it proves retry-after was used.
    fake.error(429, "rate_limit_error", "slow down", {"retry-after": "3"})
    fake.tool_call("record_chat_reply", VALID_CHAT)
    activities = LlmActivities(fake.provider(), session_factory).all()
    started = time.monotonic()
    async with probe_worker(temporal_client, activities) as queue:
        reply = await temporal_client.execute_workflow(
            ChatProbeWorkflow.run, _chat(account_id), id=f"probe-{uuid.uuid4()}", task_queue=queue,
            execution_timeout=timedelta(seconds=30))
    assert time.monotonic() - started >= 2.9
    assert reply.reply == VALID_CHAT["reply"] and reply.provider == "anthropic"
    failed, ok = await _ledger(db, account_id)
    assert not failed.succeeded and "429" in (failed.error or "") and failed.input_tokens == 0
    assert ok.succeeded and (ok.input_tokens, ok.output_tokens, ok.cache_read_tokens) == (1200, 150, 900)
    assert (ok.model, ok.operation, ok.subject_id) == ("claude-haiku-4-5", "chat_reply", "session-42")
    # haiku 4.5: 1200 x $1 + 150 x $5 + 900 x $0.10 per million tokens
    assert ok.cost_usd == Decimal("0.002040")


@pytest.mark.parametrize("failure", ["400", "invalid twice"])
async def test_non_retryable_failure_fails_the_workflow_after_one_attempt(
    temporal_client: Client, session_factory: async_sessionmaker[AsyncSession], db: AsyncSession, failure: str
) -> None:
    account_id = await _account(db)
    fake = FakeAnthropic()
    if failure == "400":
        fake.error(400, "invalid_request_error", "max_tokens: too large")
    else:
        fake.tool_call("record_chat_reply", {"reply": ""})
        fake.tool_call("record_chat_reply", {"confidence": 2})
    async with probe_worker(temporal_client, LlmActivities(fake.provider(), session_factory).all()) as queue:
        with pytest.raises(WorkflowFailureError) as err:
            await temporal_client.execute_workflow(
                ChatProbeWorkflow.run, _chat(account_id), id=f"probe-{uuid.uuid4()}", task_queue=queue,
                execution_timeout=timedelta(seconds=30))
    activity_error = err.value.cause
    assert isinstance(activity_error, ActivityError)
    app_error = activity_error.cause
    assert isinstance(app_error, ApplicationError) and app_error.non_retryable
    expected = "LlmNonRetryableError" if failure == "400" else "LlmInvalidOutputError"
    assert app_error.type == expected
    assert len(fake.requests) == (1 if failure == "400" else 2)
    [row] = await _ledger(db, account_id)
    assert not row.succeeded and expected in (row.error or "")
    assert row.input_tokens == (0 if failure == "400" else 2400)


async def test_bad_account_id_is_refused_before_any_call(session_factory: async_sessionmaker[AsyncSession]) -> None:
    activities = LlmActivities(OfflineProvider(), session_factory)
    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(activities.chat_reply, _chat("not-a-uuid"))
    assert err.value.non_retryable and err.value.type == "LlmBadInput"
