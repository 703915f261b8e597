"""The fix workflow's `persistence.*` activities: outcomes, `apply`, and the parked fix's notices.

Each change is one transaction guarded by the fix's `version` and logged by its command id, so a re-run
after a committed first attempt changes nothing twice and answers as the first time did: the session's
`state_version` counts each accepted change once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import func, null
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.persistence.guard import refused_values_rejected
from db.models import AiSession, SuggestedFix, User
from db.repositories.accounts import AccountRepository
from db.repositories.ai_sessions import AiSessionRepository
from db.repositories.applied_commands import AppliedCommandRepository
from db.repositories.notifications import NotificationRepository
from db.repositories.suggested_fixes import SuggestedFixRepository
from db.repositories.users import UserRepository, user_ids
from workflows.contracts.common import REJECT_NOT_FOUND, REJECT_STALE, reject
from workflows.contracts.fix import (
    APPLY_FIX,
    CLEAR_AI_PROPOSAL,
    DEFAULT_OVERDUE_AFTER,
    DEFAULT_REMINDERS,
    DETAIL_CHARS,
    LOAD_FIX,
    NOTES_COLUMN,
    RECORD_OUTCOME,
    SEND_FIX_NOTICE,
    ApplyFixInput,
    ChangedFix,
    FixById,
    FixCommandResult,
    FixControl,
    FixNoticeInput,
    FixNoticeResult,
    FixView,
    LoadFixResult,
    Notice,
    RecordOutcomeInput,
)
from workflows.contracts.notify import NotificationEmail
from workflows.contracts.wording import waiting_on

log = logging.getLogger(__name__)
_DURATION = TypeAdapter(timedelta)


def fix_control(row: SuggestedFix) -> FixControl:
    """The workflow's view of a fix row."""
    reason = row.pending_reason
    return FixControl(
        id=row.id, session_id=row.session_id, account_id=row.account_id, title=_clip(row.title),
        status=row.status, version=row.version, applied_at=row.applied_at,
        pending_reason=_clip(reason) if reason and row.status == "applied_pending" else None,
        parked_by_user_id=row.parked_by_user_id,
        schedule=[Notice.model_validate(n) for n in row.reminder_schedule], fired=row.notices_sent,
        verification_overdue_at=row.verification_overdue_at,
    )


def fix_view(row: SuggestedFix) -> FixView:
    """The fix's changeable columns, for a command's answer."""
    return FixView.model_validate(row, from_attributes=True)


def changed_fix(row: SuggestedFix) -> ChangedFix:
    """A change's result: the new control state with the row's changeable columns."""
    return ChangedFix(**fix_control(row).model_dump(exclude={"next_reminder_at"}), view=fix_view(row))


def reminder_schedule(preferences: dict[str, Any], parked_at: datetime) -> list[Notice]:
    """The account's reminders and overdue moment after `parked_at`, in time order (defaults when unset)."""
    reminders = stored_durations(preferences.get("pending_verification_reminders")) or list(DEFAULT_REMINDERS)
    overdue = (stored_durations([preferences.get("verification_overdue_after")]) or [DEFAULT_OVERDUE_AFTER])[0]
    moments = sorted([(parked_at + d, "reminder") for d in reminders] + [(parked_at + overdue, "overdue")])
    return [Notice(due_at=at, kind=kind, index=i) for i, (at, kind) in enumerate(moments)]


class FixPersistence:
    """Loads and changes suggested fixes for `FixVerificationWorkflow`."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory

    def all(self) -> list[Any]:
        """Every activity of this class, for the worker."""
        return [self.load_fix, self.apply_fix, self.record_fix_outcome, self.clear_ai_outcome_proposal,
                self.fix_notice]

    @activity.defn(name=LOAD_FIX.name)
    async def load_fix(self, inp: FixById) -> LoadFixResult:
        """The fix's control state, or none when it does not exist."""
        async with self._session_factory() as session:
            row = await SuggestedFixRepository(session).get(inp.fix_id)
            return LoadFixResult(control=fix_control(row) if row else None)

    @activity.defn(name=APPLY_FIX.name)
    async def apply_fix(self, inp: ApplyFixInput) -> ChangedFix:
        """Stamp `applied_at` (status stays proposed) and count the change on the session."""
        return await self._change(inp.fix_id, inp.session_id, inp.expected_version, inp.change_id, inp.at,
                                  {"applied_at": inp.at})

    @activity.defn(name=RECORD_OUTCOME.name)
    async def record_fix_outcome(self, inp: RecordOutcomeInput) -> ChangedFix:
        """Write the outcome, its stamps and notes; parking it schedules its notices from the account's settings."""
        at, outcome = inp.at, inp.outcome
        values: dict[str, Any] = {"status": outcome, "ai_outcome_proposal": null(), "reminder_schedule": [],
                                  "notices_sent": 0, "next_reminder_at": None}
        if outcome != "dismissed":
            values["applied_at"] = func.coalesce(SuggestedFix.applied_at, at)
        if outcome in ("applied_success", "applied_failed"):
            values["verified_at"] = at
        if outcome in NOTES_COLUMN and inp.notes is not None:
            values[NOTES_COLUMN[outcome]] = inp.notes
        if outcome == "applied_pending":
            async with self._session_factory() as session:
                row = await _row(SuggestedFixRepository(session), inp.fix_id)
                preferences = await AccountRepository(session).get_preferences(row.account_id)
            schedule = reminder_schedule(preferences, at)
            values.update(parked_by_user_id=inp.by_user_id, parked_at=at, verification_overdue_at=None,
                          reminder_schedule=[n.model_dump(mode="json") for n in schedule],
                          next_reminder_at=schedule[0].due_at if schedule else None)
        return await self._change(inp.fix_id, inp.session_id, inp.expected_version, inp.change_id, at, values)

    @activity.defn(name=CLEAR_AI_PROPOSAL.name)
    async def clear_ai_outcome_proposal(self, inp: FixById) -> FixCommandResult:
        """Drop the AI's outcome proposal (idempotent; the status does not change)."""
        async with self._session_factory() as session, session.begin():
            fixes = SuggestedFixRepository(session)
            cleared = await fixes.clear_proposal(inp.fix_id)
            row = await _row(fixes, inp.fix_id)
            return FixCommandResult(status=row.status, changed=cleared,
                                    next_reminder_at=row.next_reminder_at)

    @activity.defn(name=SEND_FIX_NOTICE.name)
    async def fix_notice(self, inp: FixNoticeInput) -> FixNoticeResult:
        """Record one reminder (to who parked the fix) or the overdue notice (to the escalation recipients)."""
        notice = inp.notice
        async with self._session_factory() as session, session.begin(), refused_values_rejected():
            fixes = SuggestedFixRepository(session)
            fix = await _row(fixes, inp.fix_id)
            owner = await AiSessionRepository(session).get(fix.session_id)
            assert owner is not None  # fixes cascade with their session
            if owner.status == "resolved":
                # The engineer closed the case: nobody is left to owe this fix a verdict (docs/ai_sessions.md).
                await fixes.stop_reminders(inp.fix_id, version=inp.version)
                log.info("fix %s: its session is resolved; its remaining notices are dropped", fix.id)
                return FixNoticeResult(stale=True)
            if not await fixes.record_notice(
                inp.fix_id, version=inp.version, sent=notice.index + 1, next_reminder_at=inp.next_reminder_at,
                overdue_at=notice.due_at if notice.kind == "overdue" else None,
            ):
                return FixNoticeResult(stale=True)  # an outcome was recorded since: nothing to remind of
            # `fix` keeps what it was read with: the notice's text and recipients use nothing record_notice changed.
            recipients = await _recipients(session, fix, notice)
            if not recipients:
                log.warning("fix %s: %s notice %d has no live recipient; it stays on the fix only",
                            fix.id, notice.kind, notice.index)
            title, body = notice_text(fix, owner, notice)
            notifications = NotificationRepository(session)
            emails = []
            for user in recipients:
                row = await notifications.create_once(
                    account_id=fix.account_id, user_id=user.id,
                    kind="fix_verification_reminder" if notice.kind == "reminder" else "fix_verification_overdue",
                    title=title, body=body, session_id=fix.session_id, fix_id=fix.id,
                    dedupe_key=f"fix:{fix.id}:v{inp.version}:{notice.kind}:{notice.index}",
                )
                if row.email_status != "sent":
                    emails.append(NotificationEmail(notification_id=row.id, to=user.email, subject=row.title,
                                                    body=body))
            log.info("fix %s: %s %d recorded for %d user(s)", fix.id, notice.kind, notice.index, len(recipients))
            return FixNoticeResult(emails=emails)

    async def _change(self, fix_id: uuid.UUID, session_id: uuid.UUID | None, expected_version: int, change_id: str,
                      at: datetime, values: dict[str, Any]) -> ChangedFix:
        values = {**values, "last_change_id": change_id}
        if session_id is not None:
            try:
                return await self._write_first(fix_id, session_id, expected_version, change_id, at, values)
            except _NotWritten:
                pass  # rolled back: a re-run of a committed command, a stale version, or a fix that is gone
        return await self._change_after_read(fix_id, expected_version, change_id, at, values)

    async def _write_first(self, fix_id: uuid.UUID, session_id: uuid.UUID, expected_version: int, change_id: str,
                           at: datetime, values: dict[str, Any]) -> ChangedFix:
        """The common case in one transaction with no read: the guarded writes, then the log."""
        async with self._session_factory() as session, session.begin(), refused_values_rejected():
            # The session row first, then the fix: the order a message turn takes, so the two never deadlock.
            try:
                await AiSessionRepository(session).bump_version(session_id, at)
            except LookupError:
                raise _NotWritten from None
            changed = await SuggestedFixRepository(session).change(fix_id, expected_version, values)
            if changed is None:
                raise _NotWritten  # undoes the bump
            answer = changed_fix(changed)
            # A command that committed before can meet a matching version again (a dropped task replayed in
            # another order reloads the row): the log's key tells, and the read-first path answers as the first time.
            if not await AppliedCommandRepository(session).record_first(fix_id, change_id,
                                                                        answer.model_dump(mode="json")):
                raise _NotWritten
            return answer

    async def _change_after_read(self, fix_id: uuid.UUID, expected_version: int, change_id: str, at: datetime,
                                 values: dict[str, Any]) -> ChangedFix:
        """Read first: answers a re-run from the log, or says why the write cannot go (gone, stale)."""
        async with self._session_factory() as session, session.begin(), refused_values_rejected():
            fixes, commands = SuggestedFixRepository(session), AppliedCommandRepository(session)
            # A re-run of a command that committed (a retry, or a dropped workflow task replayed with later
            # changes of the same task committed after it) answers what it answered the first time.
            earlier = await commands.result_of(fix_id, change_id)
            if earlier is not None:
                return ChangedFix.model_validate(earlier)  # logged before answers carried a view: view None
            row = await _row(fixes, fix_id)
            if row.version == expected_version + 1 and row.last_change_id == change_id:
                return changed_fix(row)  # committed before the log existed (a retry across the upgrade)
            # The session row first, then the fix: the order a message turn takes, so the two never deadlock.
            await AiSessionRepository(session).bump_version(row.session_id, at)
            changed = await fixes.change(fix_id, expected_version, values)
            if changed is None:  # rolls back: the workflow reloads the fix and re-checks the command
                raise reject(REJECT_STALE, f"This fix changed meanwhile (now version {row.version})")
            answer = changed_fix(changed)
            await commands.record(fix_id, change_id, answer.model_dump(mode="json"))
            return answer


class _NotWritten(Exception):
    """The write-first path did not apply (its transaction rolls back); the read-first path says why."""


async def _row(fixes: SuggestedFixRepository, fix_id: uuid.UUID) -> SuggestedFix:
    # Each activity reads in a session of its own, so `get` reads the row as stored (nothing stale to refresh).
    row = await fixes.get(fix_id)
    if row is None:
        raise reject(REJECT_NOT_FOUND, f"Suggested fix {fix_id} no longer exists")
    return row


async def _recipients(session: AsyncSession, fix: SuggestedFix, notice: Notice) -> Sequence[User]:
    users = UserRepository(session)
    parker = [fix.parked_by_user_id] if fix.parked_by_user_id else []
    if notice.kind == "reminder":
        return await users.active_in_account(fix.account_id, parker)
    preferences = await AccountRepository(session).get_preferences(fix.account_id)
    ids = user_ids(preferences.get("default_escalation_recipient_ids") or [])
    # Nobody configured (or nobody left): the engineer who parked it hears of it rather than no one.
    return await users.active_in_account(fix.account_id, ids) or await users.active_in_account(fix.account_id, parker)


def notice_text(fix: SuggestedFix, owner: AiSession, notice: Notice) -> tuple[str, str]:
    """Title and body of a reminder or overdue notice."""
    parked = fix.parked_at.strftime("%Y-%m-%d %H:%M UTC") if fix.parked_at else "earlier"
    if notice.kind == "reminder":
        title = f"Verify the fix '{_clip(fix.title)}': {_clip(fix.pending_reason or 'awaiting verification')}"
    else:
        title = f"Overdue: the fix '{_clip(fix.title)}' is still unverified since {parked}"
    body = (f"The fix '{fix.title}' was applied and parked as awaiting verification on {parked}.\n"
            f"Parked: {waiting_on(fix.pending_reason) if fix.pending_reason else 'no reason given'}\n"
            f"Problem: {owner.problem_summary}\n"
            f"Session: {owner.id}\nFix: {fix.id}\n\n"
            "Record how it went (worked, did not work, partly worked, or still waiting) on the fix's outcome.")
    return title, body


def _clip(text: str, limit: int = DETAIL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def stored_durations(values: Any) -> list[timedelta]:
    """Durations stored in account preferences (ISO 8601); one that does not parse is skipped with a warning."""
    found = []
    for value in values or []:
        if value is None:
            continue
        try:
            found.append(_DURATION.validate_python(value))
        except ValidationError:
            log.warning("ignoring a stored duration that does not parse: %r", value)
    return found
