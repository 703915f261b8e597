"""`post_to_psa` of TroubleshootingSessionWorkflow alone: PSA and write-back activities faked by name."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.workflows.fakes_ai import FakeAiStore
from tests.workflows.test_session_workflow import Env, _accepted_updates, _create, _open, _rejection
from workflows.contracts.ai_session import CloseInput
from workflows.contracts.common import REJECT_RULE, REJECT_UPSTREAM
from workflows.contracts.psa import (
    BEGIN_WRITEBACK,
    CHANGE_STATUS,
    COMPLETE_WRITEBACK,
    NOTE_POSTED,
    POST_NOTE,
    READ_TICKET,
    STATUS_CHECKED,
    BeginWritebackInput,
    ChangeStatusInput,
    CompleteWritebackInput,
    NotePostedInput,
    PostedNote,
    PostNoteInput,
    SessionClosed,
    StatusCheckedInput,
    TicketFacts,
    TicketRef,
    WritebackPlan,
)
from workflows.troubleshooting_session import TroubleshootingSessionWorkflow

TARGET = 42
NOTE = CloseInput(kind="resolution_note", markdown="Restarted the spooler.", by_user_id=uuid.uuid4())


class FakePsa:
    """One ticket whose status changes only when `applies` is set; records every call by name."""

    def __init__(self, store: FakeAiStore) -> None:
        self.store = store
        self.calls: list[str] = []
        self.applies = False
        self.status = 16
        self.note_id: str | None = None
        self.posted_markdown: str | None = None  # the note's text on the ticket
        self.requested_markdown: str | None = None  # what the write-back row holds for the activities to read
        self.checked: list[str] = []
        self.writeback_id = uuid.uuid4()

    def activities(self) -> list[Any]:
        return [self.begin, self.note_posted, self.status_checked, self.complete, self.read_ticket, self.post_note,
                self.change_status]

    @activity.defn(name=BEGIN_WRITEBACK.name)
    async def begin(self, inp: BeginWritebackInput) -> WritebackPlan:
        self.calls.append(BEGIN_WRITEBACK.name)
        self.requested_markdown = inp.markdown
        return WritebackPlan(writeback_id=self.writeback_id, marker="ref", note_id=self.note_id, attempts=1,
                             text_edited=self.note_id is not None and self.posted_markdown != inp.markdown,
                             ticket=TicketRef(account_id=uuid.uuid4(), connection_id=uuid.uuid4(), ticket_id="7"),
                             target_status_id=TARGET, recheck_after_s=600)

    @activity.defn(name=POST_NOTE.name)
    async def post_note(self, inp: PostNoteInput) -> PostedNote:
        self.calls.append(POST_NOTE.name)
        # The text is read from the write-back row by id, never carried in the input.
        assert inp.text is None and inp.writeback_id == self.writeback_id
        self.posted_markdown = self.requested_markdown
        return PostedNote(note_id="note-1", reused=False)

    @activity.defn(name=NOTE_POSTED.name)
    async def note_posted(self, inp: NotePostedInput) -> None:
        self.note_id = inp.note_id

    @activity.defn(name=CHANGE_STATUS.name)
    async def change_status(self, inp: ChangeStatusInput) -> None:
        self.calls.append(CHANGE_STATUS.name)
        if self.applies:
            self.status = inp.status_id

    @activity.defn(name=READ_TICKET.name)
    async def read_ticket(self, ref: TicketRef) -> TicketFacts:
        self.calls.append(READ_TICKET.name)
        return TicketFacts(ticket_id=ref.ticket_id, summary="printer", status_id=self.status,
                           status_name=f"S{self.status}")

    @activity.defn(name=STATUS_CHECKED.name)
    async def status_checked(self, inp: StatusCheckedInput) -> None:
        self.checked.append(inp.outcome)

    @activity.defn(name=COMPLETE_WRITEBACK.name)
    async def complete(self, inp: CompleteWritebackInput) -> SessionClosed:
        self.store.sessions[inp.session_id]["status"] = "resolved"
        return SessionClosed(session_status="resolved", state_version=1)


@pytest.fixture
async def env(temporal_env: WorkflowEnvironment) -> AsyncIterator[tuple[Env, FakePsa]]:
    store = FakeAiStore()
    psa = FakePsa(store)
    queue = f"psa-{uuid.uuid4().hex[:8]}"
    async with Worker(temporal_env.client, task_queue=queue, workflows=[TroubleshootingSessionWorkflow],
                      activities=[*store.activities(), *psa.activities()]):
        yield (temporal_env.client, queue, store), psa


async def test_a_session_without_a_ticket_is_refused_before_history(env: tuple[Env, FakePsa]) -> None:
    (e, psa) = env
    _, handle = await _open(e)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(TroubleshootingSessionWorkflow.post_to_psa, NOTE)
    assert _rejection(refused).type == REJECT_RULE
    assert await _accepted_updates(handle) == 1 and psa.calls == []
    await handle.terminate()


async def test_a_change_that_does_not_verify_leaves_the_state_and_a_retry_posts_no_second_note(
    env: tuple[Env, FakePsa],
) -> None:
    (e, psa) = env
    _, handle = await _open(e, _create(psa_ticket_id="7"))
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update(TroubleshootingSessionWorkflow.post_to_psa, NOTE)
    assert _rejection(failed).type == REJECT_UPSTREAM and "did not verify" in str(_rejection(failed))
    state = await handle.query(TroubleshootingSessionWorkflow.state)
    assert state.status == "active" and state.status_recheck is None
    assert psa.checked == ["did_not_verify"]

    psa.applies = True
    done = await handle.execute_update(TroubleshootingSessionWorkflow.post_to_psa, NOTE)
    assert done.outcome == "resolved" and done.verified_status_id == TARGET and done.external_id == "note-1"
    assert psa.calls.count(POST_NOTE.name) == 1  # the second post resumed the write-back with its note
    state = await handle.query(TroubleshootingSessionWorkflow.state)
    assert state.status == "resolved" and state.status_recheck is not None
    assert state.status_recheck.expected_status_id == TARGET
    # Ten minutes from the verification (the closing write runs a moment later, in another workflow task).
    waits = state.status_recheck.due_at - state.last_activity_at
    assert timedelta(minutes=9, seconds=55) <= waits <= timedelta(minutes=10)
    await handle.terminate()
