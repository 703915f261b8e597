"""HandoffWorkflow alone: its activities faked by name, the claim race and the assessment on the side."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.workflows.fakes_handoff import ESCALATOR, FakeHandoffStore, handoff_control
from tests.workflows.test_session_workflow import _accepted_updates, _rejection
from workflows.contracts.common import REJECT_CONFLICT, REJECT_RULE
from workflows.contracts.handoff import (
    CLAIM_HANDOFF,
    HANDOFF_NOTICE,
    SESSIONS_CLAIM_AND_RESUME,
    SESSIONS_RESUME_FROM_HANDOFF,
    ClaimInput,
    HandoffInput,
)
from workflows.handoff import HandoffWorkflow

Env = tuple[Client, str, FakeHandoffStore]


@pytest.fixture
async def env(temporal_env: WorkflowEnvironment) -> AsyncIterator[Env]:
    """A worker with the real workflow and the fake activities on a queue of its own."""
    store = FakeHandoffStore()
    queue = f"handoff-{uuid.uuid4().hex[:8]}"
    async with Worker(temporal_env.client, task_queue=queue, workflows=[HandoffWorkflow],
                      activities=store.activities()):
        yield temporal_env.client, queue, store
    store.assess.set()


async def _start(env: Env, intent: str = "escalate") -> WorkflowHandle[Any, Any]:
    client, queue, _ = env
    state = handoff_control(intent).model_copy(update={"id": uuid.uuid4()})
    return await client.start_workflow(HandoffWorkflow.run, HandoffInput(
        handoff_id=state.id, account_id=state.account_id, idle_timeout_s=60, assessment_timeout_s=30, state=state,
    ), id=f"handoff-test-{uuid.uuid4()}", task_queue=queue)


def _claim(user: uuid.UUID, name: str = "Senior") -> ClaimInput:
    return ClaimInput(user_id=user, user_name=name)


async def test_many_claims_have_one_winner_and_the_losers_learn_who(env: Env) -> None:
    _, _, store = env
    handle = await _start(env)
    seniors = [uuid.uuid4() for _ in range(10)]

    answers = await asyncio.gather(*(handle.execute_update(HandoffWorkflow.claim, _claim(u, f"S{i}"))
                                     for i, u in enumerate(seniors)), return_exceptions=True)

    won = [a for a in answers if not isinstance(a, BaseException)]
    lost = [a for a in answers if isinstance(a, WorkflowUpdateFailedError)]
    assert len(won) == 1 and len(lost) == 9
    # One activity records the claim and resumes the session; neither of the two older activities runs.
    assert store.calls.count(SESSIONS_CLAIM_AND_RESUME) == 1
    assert CLAIM_HANDOFF.name not in store.calls and SESSIONS_RESUME_FROM_HANDOFF not in store.calls
    winner = won[0]
    assert winner.session_status == "active" and winner.changed
    for failure in lost:
        cause = failure.cause
        assert isinstance(cause, ApplicationError) and cause.type == REJECT_CONFLICT
        assert cause.message.startswith(f"Already claimed by {winner.claimed_by_name}, ")
        assert cause.details[0]["claimed_by_id"] == str(winner.claimed_by_id)
    again = await handle.execute_update(HandoffWorkflow.claim, _claim(winner.claimed_by_id))  # a double click
    assert not again.changed and again.claimed_at == winner.claimed_at
    assert store.calls.count(SESSIONS_CLAIM_AND_RESUME) == 1


async def test_a_resume_still_to_do_is_retried_alone_and_a_refused_one_leaves_the_claim(env: Env) -> None:
    _, _, store = env
    store.first_resume = "to_retry"
    first = await (await _start(env)).execute_update(HandoffWorkflow.claim, _claim(uuid.uuid4()))
    assert first.changed and first.session_status == "active"  # from the retried resume
    assert store.calls.count(SESSIONS_CLAIM_AND_RESUME) == 1 and store.calls.count(SESSIONS_RESUME_FROM_HANDOFF) == 1
    store.first_resume, store.claimed = "refused", None
    second = await (await _start(env)).execute_update(HandoffWorkflow.claim, _claim(uuid.uuid4()))
    assert second.changed and second.session_status is None
    assert store.calls.count(SESSIONS_CLAIM_AND_RESUME) == 2 and store.calls.count(SESSIONS_RESUME_FROM_HANDOFF) == 1


async def test_the_escalator_is_refused_without_a_trace_in_history(env: Env) -> None:
    handle = await _start(env)
    await asyncio.sleep(0.3)  # loaded (the state came with the start)

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(HandoffWorkflow.claim, _claim(ESCALATOR))

    assert _rejection(refused).type == REJECT_RULE
    assert await _accepted_updates(handle) == 0


async def test_a_slow_then_failing_model_never_holds_up_a_claim(env: Env) -> None:
    _, _, store = env
    handle = await _start(env)

    claimed = await handle.execute_update(HandoffWorkflow.claim, _claim(uuid.uuid4()))  # the model still thinks

    assert claimed.changed and store.stored == []
    store.model_fails = True
    store.assess.set()
    async with asyncio.timeout(10):
        while not store.stored:  # noqa: ASYNC110 - set by the activity, on the worker
            await asyncio.sleep(0.05)
    assert store.stored[0].assessment is None and "prompt is too long" in (store.stored[0].error or "")


async def test_an_escalation_tells_the_team_once_and_a_park_tells_nobody(env: Env) -> None:
    _, _, store = env
    escalation = await _start(env)
    park = await _start(env, "park")
    await escalation.execute_update(HandoffWorkflow.claim, _claim(uuid.uuid4()))
    await park.execute_update(HandoffWorkflow.claim, _claim(ESCALATOR))  # the parker may resume their own park
    assert store.calls.count(f"{HANDOFF_NOTICE.name}:escalated") == 1
    assert f"{HANDOFF_NOTICE.name}:unclaimed" not in store.calls
