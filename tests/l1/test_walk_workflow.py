"""The walk workflow with the LLM activities replaced by name: depth cap, server-assigned ids, LLM failure."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.persistence import WalkPersistence
from tests.helpers import make_user
from tests.l1.support import is_uuid
from tests.stack import StackFactory
from workflows.contracts.llm import (
    LLM_CLASSIFY_INTAKE,
    LLM_NEXT_WALK_NODE,
    ClassifyIntakeInput,
    IntakeClassification,
    NextWalkNodeInput,
    WalkNodeSuggestion,
)
from workflows.l1_intake import L1IntakeWorkflow
from workflows.walk_session import WalkSessionWorkflow

API = "/api/v1/l1"


class FakeLlm:
    """Stands in for the `llm.*` activities: always builds, always asks another question."""

    def __init__(self) -> None:
        self.calls: list[NextWalkNodeInput] = []
        self.fail_next = False

    @activity.defn(name=LLM_CLASSIFY_INTAKE)
    async def classify(self, inp: ClassifyIntakeInput) -> IntakeClassification:
        if self.fail_next:
            raise ApplicationError("provider said 400", type="LlmNonRetryableError", non_retryable=True)
        return IntakeClassification(outcome="build", category="network", provider="fake")

    @activity.defn(name=LLM_NEXT_WALK_NODE)
    async def next_node(self, inp: NextWalkNodeInput) -> WalkNodeSuggestion:
        if self.fail_next:
            raise ApplicationError("provider said 400", type="LlmNonRetryableError", non_retryable=True)
        self.calls.append(inp)
        # A model that never concludes, even when told to: the workflow must stop it.
        return WalkNodeSuggestion(kind="question", question=f"Question {len(inp.walked_path) + 1}?",
                                  options=["yes", "no"], provider="fake")


def fake_worker(client: Client, stack: Any, llm: FakeLlm) -> Worker:
    """A worker on the stack's queue with real persistence and the fake LLM."""
    return Worker(
        client, task_queue=stack.settings.temporal_task_queue,
        workflows=[WalkSessionWorkflow, L1IntakeWorkflow],
        activities=[*WalkPersistence(stack.deps.session_factory).all(), llm.classify, llm.next_node],
    )


async def test_depth_cap_ends_an_ai_walk_with_an_escalation_prompt(
    make_stack: StackFactory, temporal_client: Client, db: AsyncSession
) -> None:
    llm = FakeLlm()
    async with make_stack(with_worker=False, l1_max_depth=3) as stack, fake_worker(temporal_client, stack, llm):
        info = await make_user(stack.client, db, role="l1_tech")
        h = info["headers"]
        body = (await stack.client.post(f"{API}/intake", headers=h, json={"problem_statement": "VPN flaps"})).json()
        assert body["outcome"] == "build" and body["category"] == "network"
        sid, node = body["session_id"], body["pending_node"]
        ids = []
        for _ in range(3):
            ids.append(node["id"])
            resp = await stack.client.post(f"{API}/sessions/{sid}/step", headers=h,
                                           json={"node_id": node["id"], "answer": "no"})
            assert resp.status_code == 200, resp.text
            node = resp.json()["next_node"] or resp.json()["resolution"]
        assert node["kind"] == "resolution" and node["escalate"] is True
        assert "limit of 3 questions" in node["resolution"]
        ids.append(node["id"])
        assert all(is_uuid(i) for i in ids) and len(set(ids)) == 4
        assert [c.force_conclusion for c in llm.calls] == [False, False, False, True]
        assert [len(c.walked_path) for c in llm.calls] == [0, 1, 2, 3]
        got = (await stack.client.get(f"{API}/sessions/{sid}", headers=h)).json()
        assert got["depth"] == 3 and got["pending_node"] == node
        late = await stack.client.post(f"{API}/sessions/{sid}/step", headers=h,
                                       json={"node_id": node["id"], "answer": "no"})
        assert late.status_code == 409 and "resolution" in late.json()["detail"]


async def test_llm_failure_is_502_and_leaves_the_walk_unchanged(
    make_stack: StackFactory, temporal_client: Client, db: AsyncSession
) -> None:
    llm = FakeLlm()
    async with make_stack(with_worker=False) as stack, fake_worker(temporal_client, stack, llm):
        info = await make_user(stack.client, db, role="l1_tech")
        h = info["headers"]
        body = (await stack.client.post(f"{API}/intake", headers=h, json={"problem_statement": "DNS"})).json()
        sid, node = body["session_id"], body["pending_node"]
        llm.fail_next = True
        resp = await stack.client.post(f"{API}/sessions/{sid}/step", headers=h,
                                       json={"node_id": node["id"], "answer": "yes"})
        assert resp.status_code == 502, resp.text
        assert "AI" in resp.json()["detail"]
        got = (await stack.client.get(f"{API}/sessions/{sid}", headers=h)).json()
        assert got["walked_path"] == [] and got["pending_node"] == node
        llm.fail_next = False
        resp = await stack.client.post(f"{API}/sessions/{sid}/step", headers=h,
                                       json={"node_id": node["id"], "answer": "yes"})
        assert resp.status_code == 200, resp.text
        assert len(resp.json()["session"]["walked_path"]) == 1


async def test_a_failed_classification_is_a_502_and_creates_nothing(
    make_stack: StackFactory, temporal_client: Client, db: AsyncSession
) -> None:
    llm = FakeLlm()
    llm.fail_next = True
    async with make_stack(with_worker=False) as stack, fake_worker(temporal_client, stack, llm):
        info = await make_user(stack.client, db, role="l1_tech")
        resp = await stack.client.post(f"{API}/intake", headers=info["headers"], json={"problem_statement": "VPN"})
        assert resp.status_code == 502 and "could not classify" in resp.json()["detail"]
        listed = await stack.client.get(f"{API}/sessions/active", headers=info["headers"])
        assert listed.json() == []
