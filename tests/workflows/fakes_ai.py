"""In-memory stand-ins for every activity TroubleshootingSessionWorkflow and FixVerificationWorkflow call.

One store holds sessions and fixes (a session's proposed fix is a fix row the fix workflow then loads),
mirrors activities/persistence/ai_sessions.py, fixes.py, llm.session_reply and notify.email_notification,
and records every call with the moment it ran.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.persistence.ai_sessions import turn_fix_id
from activities.persistence.fixes import reminder_schedule
from workflows.contracts.ai_session import (
    ADD_FIX,
    CLOSE_SESSION,
    CREATE_SESSION,
    LOAD_SESSION,
    RECORD_TURN,
    SESSION_REPLY,
    SUMMARY_CHARS,
    AddFixInput,
    AddFixResult,
    CloseResult,
    CloseSessionInput,
    LoadSessionResult,
    RecordTurnInput,
    RecordTurnResult,
    SessionControl,
    SessionCreate,
    SessionRef,
    SessionReplyInput,
)
from workflows.contracts.common import REJECT_CONFLICT, REJECT_NOT_FOUND, REJECT_STALE, reject
from workflows.contracts.fix import (
    APPLY_FIX,
    CLEAR_AI_PROPOSAL,
    DETAIL_CHARS,
    LOAD_FIX,
    NOTES_COLUMN,
    RECORD_OUTCOME,
    SEND_FIX_NOTICE,
    TERMINAL_STATUSES,
    ApplyFixInput,
    FixById,
    FixCommandResult,
    FixControl,
    FixNoticeInput,
    FixNoticeResult,
    LoadFixResult,
    RecordOutcomeInput,
)
from workflows.contracts.handoff import CREATE_HANDOFF, CreateHandoffInput, HandoffControl
from workflows.contracts.llm import ChatReply, OutcomeProposal, ProposedFix, confidence_tier
from workflows.contracts.notify import EMAIL_NOTIFICATION, NotificationEmail

ENGINEER_EMAIL = "eng@example.com"


def chat_reply(text: str = "Try restarting the spooler.", confidence: float = 0.5, *,
               fix: ProposedFix | None = None, outcome: OutcomeProposal | None = None) -> ChatReply:
    """A scripted model answer (its tier follows the confidence, as the real provider's does)."""
    return ChatReply(reply=text, confidence=confidence, confidence_tier=confidence_tier(confidence),
                     proposed_fix=fix, outcome_proposal=outcome, provider="fake")


def llm_failure(message: str = "the model refused the request") -> ApplicationError:
    """What llm.session_reply raises when the provider fails for good (not retried)."""
    return ApplicationError(message, type="LlmNonRetryableError", non_retryable=True)


class Call(NamedTuple):
    """One activity call: its name, its input, and the wall-clock moment it ran."""

    name: str
    inp: Any
    at: datetime


@dataclass
class FakeAiStore:
    """Session rows, fix rows and notifications as dicts; `replies` scripts the model (then `default_reply`)."""

    sessions: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    fixes: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    turns: set[tuple[uuid.UUID, str]] = field(default_factory=set)
    notifications: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    replies: list[ChatReply | Exception] = field(default_factory=list)
    default_reply: ChatReply = field(default_factory=chat_reply)
    # The account's pending_verification_reminders and verification_overdue_after, in seconds.
    reminders_s: tuple[float, ...] = (1.0, 2.0)
    overdue_s: float = 3.0
    failing_emails: int = 0  # how many of the next emails the mail server refuses
    emailed: list[NotificationEmail] = field(default_factory=list)
    handoffs: dict[uuid.UUID, CreateHandoffInput] = field(default_factory=dict)

    def activities(self) -> list[Any]:
        """Every fake, for a Worker."""
        return [self.create_session, self.load_session, self.record_turn, self.add_engineer_fix,
                self.close_session_local, self.session_reply, self.load_fix, self.apply_fix,
                self.record_fix_outcome, self.clear_ai_outcome_proposal, self.fix_notice,
                self.email_notification, self.create_handoff]

    # --- inspection and arrangement ----------------------------------------------------------

    def names(self) -> list[str]:
        """The activity names called, in order."""
        return [c.name for c in self.calls]

    def inputs(self, name: str) -> list[Any]:
        """The inputs of every call of one activity, in order."""
        return [c.inp for c in self.calls if c.name == name]

    def session(self, session_id: uuid.UUID) -> SessionControl:
        """A session row's control columns."""
        row = self.sessions[session_id]
        return SessionControl(
            id=row["id"], account_id=row["account_id"], user_id=row["user_id"], status=row["status"],
            session_type=row["session_type"], problem_summary=row["problem_summary"][:SUMMARY_CHARS],
            message_count=row["message_count"], confidence=row["confidence"],
            confidence_tier=row["confidence_tier"], has_psa_ticket=row["psa_ticket_id"] is not None,
            last_activity_at=row["last_activity_at"],
        )

    def fix(self, fix_id: uuid.UUID) -> FixControl:
        """A fix row's control columns (as activities/persistence/fixes.fix_control reads them)."""
        row = self.fixes[fix_id]
        reason = row["pending_reason"]
        return FixControl(
            id=row["id"], session_id=row["session_id"], account_id=row["account_id"], title=_clip(row["title"]),
            status=row["status"], version=row["version"], applied_at=row["applied_at"],
            pending_reason=_clip(reason) if reason and row["status"] == "applied_pending" else None,
            parked_by_user_id=row["parked_by_user_id"], schedule=row["reminder_schedule"],
            fired=row["notices_sent"], verification_overdue_at=row["verification_overdue_at"],
        )

    def seed_session(self, status: str = "active", psa_ticket_id: str | None = None) -> SessionControl:
        """A session row that exists before any workflow runs (e.g. paused by a handoff)."""
        sid = uuid.uuid4()
        self.sessions[sid] = _session_row(sid, uuid.uuid4(), uuid.uuid4(), "chat", "printer offline", psa_ticket_id,
                                          datetime.now(UTC), status=status)
        return self.session(sid)

    def seed_fix(self, session_id: uuid.UUID | None = None, title: str = "Restart the spooler") -> FixControl:
        """A proposed fix row (in a fresh session unless one is named)."""
        if session_id is None:
            session_id = self.seed_session().id
        fix_id = uuid.uuid4()
        self._insert_fix(fix_id, session_id, "ai", title, None, datetime.now(UTC))
        return self.fix(fix_id)

    # --- persistence.* of the session ---------------------------------------------------------

    @activity.defn(name=CREATE_SESSION.name)
    async def create_session(self, inp: SessionCreate) -> SessionControl:
        self._record(CREATE_SESSION.name, inp)
        if inp.session_id not in self.sessions:  # idempotent by id, like create_once
            self.sessions[inp.session_id] = _session_row(
                inp.session_id, inp.account_id, inp.user_id, inp.session_type, inp.problem_summary,
                inp.psa_ticket_id, activity.info().current_attempt_scheduled_time)
        return self.session(inp.session_id)

    @activity.defn(name=LOAD_SESSION.name)
    async def load_session(self, inp: SessionRef) -> LoadSessionResult:
        self._record(LOAD_SESSION.name, inp)
        return LoadSessionResult(control=self.session(inp.session_id) if inp.session_id in self.sessions else None)

    @activity.defn(name=RECORD_TURN.name)
    async def record_turn(self, inp: RecordTurnInput) -> RecordTurnResult:
        self._record(RECORD_TURN.name, inp)
        row = self._session_row(inp.session_id)
        fix_id = turn_fix_id(inp.session_id, inp.turn_id)
        if (inp.session_id, inp.turn_id) in self.turns:  # a retry after the first attempt stored it
            proposal = next((f["id"] for f in self.fixes.values()
                             if (f["ai_outcome_proposal"] or {}).get("turn_id") == inp.turn_id), None)
            return RecordTurnResult(message_count=row["message_count"], state_version=row["state_version"],
                                    suggested_fix_id=fix_id if inp.reply.proposed_fix else None,
                                    outcome_fix_id=proposal)
        self.turns.add((inp.session_id, inp.turn_id))
        reply = inp.reply
        row.update(message_count=row["message_count"] + 2, state_version=row["state_version"] + 1,
                   confidence=reply.confidence, confidence_tier=reply.confidence_tier, last_activity_at=inp.at)
        row["transcript"] += [("user", inp.user_content), ("assistant", reply.reply)]
        active = self._active_fix(inp.session_id)
        outcome_fix_id = None
        if reply.outcome_proposal is not None and active is not None and active["status"] not in TERMINAL_STATUSES:
            active["ai_outcome_proposal"] = {**reply.outcome_proposal.model_dump(mode="json"), "turn_id": inp.turn_id}
            outcome_fix_id = active["id"]
        suggested = None
        if reply.proposed_fix is not None:
            self._insert_fix(fix_id, inp.session_id, "ai", reply.proposed_fix.title[:200], None, inp.at)
            suggested = fix_id
        return RecordTurnResult(message_count=row["message_count"], state_version=row["state_version"],
                                suggested_fix_id=suggested, outcome_fix_id=outcome_fix_id)

    @activity.defn(name=ADD_FIX.name)
    async def add_engineer_fix(self, inp: AddFixInput) -> AddFixResult:
        self._record(ADD_FIX.name, inp)
        row = self._session_row(inp.session_id)
        draft = inp.draft
        if self._insert_fix(draft.fix_id, inp.session_id, "engineer", draft.title, draft.by_user_id, inp.at):
            row.update(state_version=row["state_version"] + 1, last_activity_at=inp.at)
        return AddFixResult(fix_id=draft.fix_id, state_version=row["state_version"])

    @activity.defn(name=CLOSE_SESSION.name)
    async def close_session_local(self, inp: CloseSessionInput) -> CloseResult:
        self._record(CLOSE_SESSION.name, inp)
        row = self._session_row(inp.session_id)
        resolving = inp.kind == "resolution_note"
        status = "resolved" if resolving else "escalated"
        closable = ("active", "paused", "escalated") if resolving else ("active", "paused")
        if row["status"] in closable:
            row.update(status=status, state_version=row["state_version"] + 1, last_activity_at=inp.at,
                       closed_by_user_id=inp.by_user_id)
            row[inp.kind] = inp.markdown
        elif not (row["status"] == status and row.get(inp.kind) == inp.markdown):  # else: a retry
            raise reject(REJECT_CONFLICT, f"This session is already {row['status']}")
        outcome = "resolved_local" if resolving else "escalated_local"
        return CloseResult(outcome=outcome, session_status=status, state_version=row["state_version"])

    @activity.defn(name=CREATE_HANDOFF.name)
    async def create_handoff(self, inp: CreateHandoffInput) -> HandoffControl:
        """The handoff an escalation package's post makes (once per id; the session stays as posted)."""
        self._record(CREATE_HANDOFF.name, inp)
        row, req = self._session_row(inp.session_id), inp.request
        self.handoffs.setdefault(req.handoff_id, inp)
        return HandoffControl(id=req.handoff_id, account_id=row["account_id"], session_id=inp.session_id,
                              intent=req.intent, priority=req.priority, created_by_user_id=req.by_user_id,
                              problem_summary=row["problem_summary"][:SUMMARY_CHARS], assessment_status="pending",
                              team_notified=False)

    # --- llm.session_reply ---------------------------------------------------------------------

    @activity.defn(name=SESSION_REPLY.name)
    async def session_reply(self, inp: SessionReplyInput) -> ChatReply:
        self._record(SESSION_REPLY.name, inp)
        if inp.session_id not in self.sessions:
            raise ApplicationError(f"AI session {inp.session_id} does not exist", type="LlmBadInput",
                                   non_retryable=True)
        scripted = self.replies.pop(0) if self.replies else self.default_reply
        if isinstance(scripted, Exception):
            raise scripted
        return scripted

    # --- persistence.* of the fix ---------------------------------------------------------------

    @activity.defn(name=LOAD_FIX.name)
    async def load_fix(self, inp: FixById) -> LoadFixResult:
        self._record(LOAD_FIX.name, inp)
        return LoadFixResult(control=self.fix(inp.fix_id) if inp.fix_id in self.fixes else None)

    @activity.defn(name=APPLY_FIX.name)
    async def apply_fix(self, inp: ApplyFixInput) -> FixControl:
        self._record(APPLY_FIX.name, inp)
        return self._change(inp.fix_id, inp.expected_version, inp.change_id, inp.at, {"applied_at": inp.at})

    @activity.defn(name=RECORD_OUTCOME.name)
    async def record_fix_outcome(self, inp: RecordOutcomeInput) -> FixControl:
        self._record(RECORD_OUTCOME.name, inp)
        at, outcome = inp.at, inp.outcome
        row = self._fix_row(inp.fix_id)
        values: dict[str, Any] = {"status": outcome, "ai_outcome_proposal": None, "reminder_schedule": [],
                                  "notices_sent": 0, "next_reminder_at": None}
        if outcome != "dismissed":
            values["applied_at"] = row["applied_at"] or at
        if outcome in NOTES_COLUMN and inp.notes is not None:
            values[NOTES_COLUMN[outcome]] = inp.notes
        if outcome == "applied_pending":
            schedule = reminder_schedule({"pending_verification_reminders": list(self.reminders_s),
                                          "verification_overdue_after": self.overdue_s}, at)
            values.update(parked_by_user_id=inp.by_user_id, verification_overdue_at=None, reminder_schedule=schedule,
                          next_reminder_at=schedule[0].due_at if schedule else None)
        return self._change(inp.fix_id, inp.expected_version, inp.change_id, at, values, note=inp.notes)

    @activity.defn(name=CLEAR_AI_PROPOSAL.name)
    async def clear_ai_outcome_proposal(self, inp: FixById) -> FixCommandResult:
        self._record(CLEAR_AI_PROPOSAL.name, inp)
        row = self._fix_row(inp.fix_id)
        cleared = row["ai_outcome_proposal"] is not None
        row["ai_outcome_proposal"] = None
        return FixCommandResult(status=row["status"], changed=cleared, next_reminder_at=row["next_reminder_at"])

    @activity.defn(name=SEND_FIX_NOTICE.name)
    async def fix_notice(self, inp: FixNoticeInput) -> FixNoticeResult:
        self._record(SEND_FIX_NOTICE.name, inp)
        row = self.fixes.get(inp.fix_id)
        notice = inp.notice
        if row is None or row["version"] != inp.version or row["status"] != "applied_pending":
            return FixNoticeResult(stale=True)  # moved on (or deleted) since the notice was scheduled
        row.update(notices_sent=max(row["notices_sent"], notice.index + 1), next_reminder_at=inp.next_reminder_at)
        if notice.kind == "overdue":
            row["verification_overdue_at"] = row["verification_overdue_at"] or notice.due_at
        key = f"fix:{inp.fix_id}:v{inp.version}:{notice.kind}:{notice.index}"
        note = self.notifications.setdefault(key, {"id": uuid.uuid4(), "email_status": "pending", "error": None})
        if note["email_status"] == "sent":
            return FixNoticeResult()
        return FixNoticeResult(emails=[NotificationEmail(notification_id=note["id"], to=ENGINEER_EMAIL,
                                                         subject=f"{notice.kind} {notice.index}", body=key)])

    # --- notify.email_notification ---------------------------------------------------------------

    @activity.defn(name=EMAIL_NOTIFICATION.name)
    async def email_notification(self, email: NotificationEmail) -> None:
        self._record(EMAIL_NOTIFICATION.name, email)
        note = next(n for n in self.notifications.values() if n["id"] == email.notification_id)
        if self.failing_emails > 0:
            self.failing_emails -= 1
            note.update(email_status="failed", error="EmailRejected")
            raise ApplicationError("SMTP refused the message", type="EmailRejected", non_retryable=True)
        note.update(email_status="sent", error=None)
        self.emailed.append(email)

    # --- helpers ------------------------------------------------------------------------------

    def _record(self, name: str, inp: Any) -> None:
        self.calls.append(Call(name, inp, datetime.now(UTC)))

    def _session_row(self, session_id: uuid.UUID) -> dict[str, Any]:
        if session_id not in self.sessions:
            raise reject(REJECT_NOT_FOUND, f"AI session {session_id} no longer exists")
        return self.sessions[session_id]

    def _fix_row(self, fix_id: uuid.UUID) -> dict[str, Any]:
        if fix_id not in self.fixes:
            raise reject(REJECT_NOT_FOUND, f"Suggested fix {fix_id} no longer exists")
        return self.fixes[fix_id]

    def _active_fix(self, session_id: uuid.UUID) -> dict[str, Any] | None:
        return next((f for f in self.fixes.values()
                     if f["session_id"] == session_id and f["superseded_at"] is None), None)

    def _insert_fix(self, fix_id: uuid.UUID, session_id: uuid.UUID, source: str, title: str,
                    by_user_id: uuid.UUID | None, at: datetime) -> bool:
        """Insert the fix as the session's active one (superseding the previous); False when it exists."""
        if fix_id in self.fixes:
            return False
        active = self._active_fix(session_id)
        if active is not None:
            active["superseded_at"] = at
        self.fixes[fix_id] = {
            "id": fix_id, "session_id": session_id, "account_id": self.sessions[session_id]["account_id"],
            "source": source, "title": title, "status": "proposed", "version": 0, "applied_at": None,
            "pending_reason": None, "partial_notes": None, "failure_reason": None, "parked_by_user_id": None,
            "reminder_schedule": [], "notices_sent": 0, "next_reminder_at": None, "verification_overdue_at": None,
            "ai_outcome_proposal": None, "superseded_at": None, "created_by_user_id": by_user_id,
            "updated_at": at, "notes_log": [],
        }
        return True

    def _change(self, fix_id: uuid.UUID, expected_version: int, change_id: str, at: datetime,
                values: dict[str, Any], note: str | None = None) -> FixControl:
        """Apply `values` if the fix is still at `expected_version` (and count it on the session).

        `notes_log` keeps every note actually written, in order (a lost write shows as a missing note)."""
        row = self._fix_row(fix_id)
        if row["version"] == expected_version:
            row.update(values, version=row["version"] + 1, updated_at=at, last_change_id=change_id)
            if note is not None:
                row["notes_log"].append(note)
            session = self.sessions.get(row["session_id"])
            if session is not None:
                session.update(state_version=session["state_version"] + 1, last_activity_at=at)
            return self.fix(fix_id)
        if row["version"] == expected_version + 1 and row.get("last_change_id") == change_id:
            return self.fix(fix_id)  # a retry after the first attempt committed
        raise reject(REJECT_STALE, f"This fix changed meanwhile (now version {row['version']})")


def _session_row(sid: uuid.UUID, account_id: uuid.UUID, user_id: uuid.UUID, session_type: str, summary: str,
                 psa_ticket_id: str | None, now: datetime, status: str = "active") -> dict[str, Any]:
    return {"id": sid, "account_id": account_id, "user_id": user_id, "status": status, "session_type": session_type,
            "problem_summary": summary, "message_count": 1, "state_version": 0, "confidence": 0.0,
            "confidence_tier": "discovery", "psa_ticket_id": psa_ticket_id, "last_activity_at": now,
            "transcript": []}


def _clip(text: str, limit: int = DETAIL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
