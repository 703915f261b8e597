"""HandoffWorkflow alone (its activities faked by name: the older claim race, the assessment on the side, the
claimed signal), and the claim on the session's workflow against a faked row."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.workflows.fakes_handoff import ESCALATOR, FakeHandoffStore, handoff_control
from tests.workflows.test_session_workflow import _accepted_updates, _rejection
from workflows.contracts.ai_session import SessionControl, SessionInput
from workflows.contracts.common import REJECT_CONFLICT, REJECT_RULE
from workflows.contracts.handoff import (
    CLAIM_HANDOFF,
    CLAIM_SESSION_HANDOFF,
    HANDOFF_NOTICE,
    SESSIONS_CLAIM_AND_RESUME,
    SESSIONS_RESUME_FROM_HANDOFF,
    SIGNAL_HANDOFF_CLAIMED,
    ClaimHandoffCommand,
    ClaimInput,
    ClaimSessionHandoff,
    HandoffClaimed,
    HandoffInput,
    LatestHandoff,
    SessionHandoffClaimed,
)
from workflows.handoff import HandoffWorkflow
from workflows.troubleshooting_session import TroubleshootingSessionWorkflow

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


async def test_the_claimed_signal_stops_the_re_announcements(env: Env) -> None:
    client, queue, _ = env
    state = handoff_control().model_copy(update={"id": uuid.uuid4(), "team_notified": True,
                                                 "next_renotify_at": datetime.now(UTC) + timedelta(minutes=30)})
    handle = await client.start_workflow(HandoffWorkflow.run, HandoffInput(
        handoff_id=state.id, account_id=state.account_id, idle_timeout_s=60, state=state,
    ), id=f"handoff-test-{uuid.uuid4()}", task_queue=queue)
    senior, at = uuid.uuid4(), datetime.now(UTC)

    await handle.signal(SIGNAL_HANDOFF_CLAIMED, HandoffClaimed(claimed_by_id=senior, claimed_by_name="Dana",
                                                               claimed_at=at))

    told = await handle.query(HandoffWorkflow.state)
    assert told is not None and (told.claimed_by_id, told.claimed_at, told.next_renotify_at) == (senior, at, None)


# --- the claim on the session's workflow, which owns it ------------------------------------------


class FakeClaimRow:
    """`persistence.claim_handoff_and_resume` by name: the row's claimer is whoever it names (first writer wins)."""

    def __init__(self) -> None:
        self.calls: list[ClaimSessionHandoff] = []
        self.claimer: tuple[uuid.UUID, str, datetime] | None = None

    @activity.defn(name=CLAIM_SESSION_HANDOFF.name)
    async def claim(self, inp: ClaimSessionHandoff) -> SessionHandoffClaimed:
        self.calls.append(inp)
        changed = self.claimer is None
        if self.claimer is None:
            self.claimer = (inp.user_id, inp.user_name, inp.at)
        by, name, at = self.claimer
        return SessionHandoffClaimed(handoff=LatestHandoff(id=inp.handoff_id, intent="escalate",
                                                           created_by_user_id=ESCALATOR, claimed_by_id=by,
                                                           claimed_by_name=name, claimed_at=at),
                                     changed=changed, session_status="active")


async def test_the_session_workflow_answers_every_claim_as_the_row_says(temporal_env: WorkflowEnvironment) -> None:
    """A state that did not know of the claim asks the row: its claimer is adopted and named; later losers are
    refused by the validator (nothing in history); the winner again is answered from the state."""
    row, queue = FakeClaimRow(), f"session-claim-{uuid.uuid4().hex[:8]}"
    handoff_id, winner = uuid.uuid4(), uuid.uuid4()
    row.claimer = (winner, "Dana", datetime.now(UTC))  # committed by an attempt whose workflow task was lost
    state = SessionControl(id=uuid.uuid4(), account_id=uuid.uuid4(), status="escalated", session_type="chat",
                           last_activity_at=datetime.now(UTC),
                           handoff=LatestHandoff(id=handoff_id, intent="escalate", created_by_user_id=ESCALATOR))
    async with Worker(temporal_env.client, task_queue=queue, workflows=[TroubleshootingSessionWorkflow],
                      activities=[row.claim]):
        handle = await temporal_env.client.start_workflow(
            TroubleshootingSessionWorkflow.run, SessionInput(session_id=state.id, account_id=state.account_id,
                                                             idle_timeout_s=60, state=state),
            id=f"session-test-{uuid.uuid4()}", task_queue=queue)

        with pytest.raises(WorkflowUpdateFailedError) as first:
            await handle.execute_update(TroubleshootingSessionWorkflow.claim_handoff, _command(handoff_id))
        accepted = await _accepted_updates(handle)
        with pytest.raises(WorkflowUpdateFailedError) as later:
            await handle.execute_update(TroubleshootingSessionWorkflow.claim_handoff, _command(handoff_id))
        again = await handle.execute_update(TroubleshootingSessionWorkflow.claim_handoff,
                                            _command(handoff_id, winner))

        for refused in (first, later):
            assert _rejection(refused).type == REJECT_CONFLICT
            assert _rejection(refused).details[0]["claimed_by_id"] == str(winner)
        assert await _accepted_updates(handle) == accepted + 1  # the later loser never reached history
        assert len(row.calls) == 1 and not again.changed and again.claimed_by_id == winner
        held = await handle.query(TroubleshootingSessionWorkflow.state)
        assert held is not None and held.status == "active" and held.handoff is not None
        assert held.handoff.claimed_by_id == winner
        with pytest.raises(WorkflowUpdateFailedError) as escalator:
            await handle.execute_update(TroubleshootingSessionWorkflow.claim_handoff,
                                        _command(handoff_id, ESCALATOR))
        assert _rejection(escalator).type == REJECT_CONFLICT  # claimed already: that is what the row says first
        await handle.terminate("test over")


def _command(handoff_id: uuid.UUID, user: uuid.UUID | None = None) -> ClaimHandoffCommand:
    return ClaimHandoffCommand(handoff_id=handoff_id, user_id=user or uuid.uuid4(), user_name="Senior")
