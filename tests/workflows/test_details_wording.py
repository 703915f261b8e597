"""What the Temporal Web UI shows as a workflow's current details reads as English (issue 21)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from activities.persistence.fixes import notice_text
from db.models import AiSession, SuggestedFix
from workflows.contracts.ai_session import SessionControl
from workflows.contracts.fix import FixControl, Notice
from workflows.contracts.handoff import already_claimed
from workflows.contracts.walk import WalkControl
from workflows.fix_verification import _details as fix_details
from workflows.troubleshooting_session import _details as session_details
from workflows.walk_session import _details as walk_details

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def _fix(reason: str) -> FixControl:
    return FixControl(id=uuid.uuid4(), session_id=uuid.uuid4(), account_id=uuid.uuid4(), title="Force AD sync",
                      status="applied_pending", version=2, applied_at=NOW, pending_reason=reason)


def test_a_reason_that_says_waiting_on_is_not_prefixed_again() -> None:
    assert "waiting on waiting on" not in fix_details(_fix("waiting on AD replication"))
    assert "waiting on AD replication" in fix_details(_fix("waiting on AD replication"))
    assert "waiting on AD replication" in fix_details(_fix("AD replication"))
    assert "Awaiting the customer's reboot" in fix_details(_fix("Awaiting the customer's reboot"))


def test_counts_of_one_are_singular() -> None:
    session = SessionControl(id=uuid.uuid4(), account_id=uuid.uuid4(), status="active", session_type="chat",
                             problem_summary="VPN drops", message_count=1, last_activity_at=NOW)
    assert "· 1 message ·" in session_details(session)
    assert "· 2 messages ·" in session_details(session.model_copy(update={"message_count": 2}))
    walk = WalkControl(id=uuid.uuid4(), account_id=uuid.uuid4(), session_kind="flow", depth=1, note_count=1,
                       last_step_at=NOW)
    assert walk_details(walk).endswith("· 1 step, 1 note")
    assert walk_details(walk.model_copy(update={"depth": 0, "note_count": 2})).endswith("· 0 steps, 2 notes")
    assert walk_details(walk.model_copy(update={"status": "resolved"})) == "resolved after 1 step"
    assert already_claimed("Lee", NOW, NOW.replace(second=1)) == "Already claimed by Lee, 1 second ago"
    assert already_claimed("Lee", NOW, NOW.replace(second=3)) == "Already claimed by Lee, 3 seconds ago"


def test_the_reminder_names_what_the_fix_waits_on_once() -> None:
    fix = SuggestedFix(id=uuid.uuid4(), title="Force AD sync", pending_reason="waiting on AD replication",
                       parked_at=NOW)
    session = AiSession(id=uuid.uuid4(), problem_summary="Users cannot sign in")
    for kind in ("reminder", "overdue"):
        title, body = notice_text(fix, session, Notice(due_at=NOW, kind=kind, index=0))
        assert "waiting on waiting on" not in title.lower()
        assert body.lower().count("waiting on") == 1 and "waiting on AD replication" in body
