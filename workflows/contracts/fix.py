"""Contracts of `FixVerificationWorkflow` (`fix-{fix_id}`): seed 001's outcome state machine and the
durable pending-verification reminders.

`proposed` -> applied_success | applied_failed | dismissed (terminal) | applied_partial |
applied_pending (both need notes; both may move on). Sandbox-safe.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal, get_args

from pydantic import BaseModel, Field, computed_field

from workflows.contracts.common import persistence
from workflows.contracts.llm import FixOutcome
from workflows.contracts.notify import NotificationEmail

FixStatus = Literal["proposed", "applied_success", "applied_failed", "applied_partial", "applied_pending", "dismissed"]
FIX_STATUSES: tuple[str, ...] = get_args(FixStatus)
TERMINAL_STATUSES = frozenset({"applied_success", "applied_failed", "dismissed"})
NEEDS_NOTES = frozenset({"applied_partial", "applied_pending"})
# Which column an outcome's notes go to; the others keep what they had (an audit trail).
NOTES_COLUMN: Mapping[str, str] = MappingProxyType({
    "applied_failed": "failure_reason", "applied_partial": "partial_notes", "applied_pending": "pending_reason",
})
MAX_NOTES_CHARS = 4_000
DEFAULT_REMINDERS = (timedelta(hours=2), timedelta(hours=8), timedelta(hours=24))
DEFAULT_OVERDUE_AFTER = timedelta(days=3)
DETAIL_CHARS = 80

QUERY_FIX_STATE = "fix_state"


def fix_workflow_id(fix_id: uuid.UUID | str) -> str:
    """The workflow id of a suggested fix."""
    return f"fix-{fix_id}"


def final_outcome(status: str) -> str:
    """Why an outcome may not change any more (the 409's detail)."""
    return f"This fix's outcome is final ({status}); it can no longer change"


def not_appliable(status: str) -> str:
    """Why `apply` is refused (the 409's detail)."""
    return f"Only a proposed fix can be applied; this one is {status}"


class Notice(BaseModel):
    """One scheduled moment of a parked fix: a reminder to its engineer, or the overdue escalation."""

    due_at: datetime
    kind: Literal["reminder", "overdue"]
    index: int = Field(ge=0, description="Position in the schedule (names the notification's dedupe key).")


class FixControl(BaseModel):
    """Everything the fix workflow decides by (a few hundred bytes)."""

    id: uuid.UUID
    session_id: uuid.UUID
    account_id: uuid.UUID
    title: str = Field(description=f"Clipped to {DETAIL_CHARS} characters, for the Web UI.")
    status: FixStatus
    version: int = Field(description="Bumped by every accepted change; writes are guarded by it.")
    applied_at: datetime | None = None
    pending_reason: str | None = Field(default=None, description=f"Clipped to {DETAIL_CHARS} characters.")
    parked_by_user_id: uuid.UUID | None = None
    schedule: list[Notice] = Field(default=[], description="While parked: reminders and overdue, in time order.")
    fired: int = Field(default=0, description="How many notices of the schedule went out.")
    verification_overdue_at: datetime | None = None

    def next_notice(self) -> Notice | None:
        """The next reminder or overdue notice due, if the fix is parked and one is left."""
        if self.status != "applied_pending" or self.fired >= len(self.schedule):
            return None
        return self.schedule[self.fired]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def next_reminder_at(self) -> datetime | None:
        """When the next notice goes out."""
        notice = self.next_notice()
        return notice.due_at if notice else None


class FixInput(BaseModel):
    """Start input: the fix, how long an idle run stays loaded, and (continue-as-new) the state."""

    fix_id: uuid.UUID
    account_id: uuid.UUID
    idle_timeout_s: int = Field(default=3600, ge=1)
    state: FixControl | None = None


class FixById(BaseModel):
    """A fix by id."""

    fix_id: uuid.UUID


class LoadFixResult(BaseModel):
    """The control state, or None when no such fix exists."""

    control: FixControl | None = None


# --- updates ----------------------------------------------------------------------------------


class ApplyInput(BaseModel):
    """`apply`: the engineer applied the fix (its outcome comes later)."""


class OutcomeInput(BaseModel):
    """`record_outcome`: how the fix turned out."""

    outcome: FixOutcome
    notes: str | None = Field(default=None, max_length=MAX_NOTES_CHARS)
    by_user_id: uuid.UUID


class ClearProposalInput(BaseModel):
    """`clear_ai_proposal`: the engineer rejected the AI's outcome proposal."""


class FixView(BaseModel):
    """What a command may change of a fix, as stored after it: with the columns the API read before the command
    (title, description, …) it is the whole answer, so nothing is read after the command."""

    status: FixStatus
    applied_at: datetime | None = None
    verified_at: datetime | None = None
    partial_notes: str | None = None
    failure_reason: str | None = None
    pending_reason: str | None = None
    ai_outcome_proposal: dict[str, Any] | None = None
    superseded_at: datetime | None = None
    updated_at: datetime
    parked_at: datetime | None = None
    next_reminder_at: datetime | None = None
    verification_overdue_at: datetime | None = None


class FixCommandResult(BaseModel):
    """The fix's status after the command, and its changeable columns as stored (None from runs before they were
    answered: the API then reads the row)."""

    status: FixStatus
    changed: bool
    next_reminder_at: datetime | None = None
    view: FixView | None = None


# --- activities -------------------------------------------------------------------------------


class ChangedFix(FixControl):
    """A change's result: the workflow's new state, and the row's changeable columns for the caller's answer
    (absent in results recorded before it existed, which are a bare FixControl)."""

    view: FixView | None = None

    def control(self) -> FixControl:
        """The workflow's state alone (the view is an answer, not state to carry on)."""
        return FixControl.model_validate(self.model_dump(exclude={"view", "next_reminder_at"}))


class ApplyFixInput(BaseModel):
    """Stamp `applied_at` (guarded by the version the workflow saw)."""

    fix_id: uuid.UUID
    session_id: uuid.UUID | None = Field(default=None, description="Lets the write go first, with no read before it "
                                                                     "(None from runs before it was sent).")
    expected_version: int
    change_id: str = Field(description="The command's id: a retry recognises its own committed write by it.")
    at: datetime


class RecordOutcomeInput(BaseModel):
    """Write an outcome (guarded by version); a pending one gets its schedule from the account's settings."""

    fix_id: uuid.UUID
    session_id: uuid.UUID | None = None
    expected_version: int
    change_id: str
    outcome: FixOutcome
    notes: str | None
    by_user_id: uuid.UUID
    at: datetime


class FixNoticeInput(BaseModel):
    """Send one scheduled notice of a parked fix (once, even when retried), and move `next_reminder_at`."""

    fix_id: uuid.UUID
    version: int
    notice: Notice
    next_reminder_at: datetime | None


class FixNoticeResult(BaseModel):
    """The emails to send, or `stale` when the fix moved on since the notice was scheduled."""

    stale: bool = False
    emails: list[NotificationEmail] = []


LOAD_FIX = persistence("persistence.load_fix", FixById, LoadFixResult)
APPLY_FIX = persistence("persistence.apply_fix", ApplyFixInput, ChangedFix)
RECORD_OUTCOME = persistence("persistence.record_fix_outcome", RecordOutcomeInput, ChangedFix)
CLEAR_AI_PROPOSAL = persistence("persistence.clear_ai_outcome_proposal", FixById, FixCommandResult)
SEND_FIX_NOTICE = persistence("persistence.fix_notice", FixNoticeInput, FixNoticeResult)
