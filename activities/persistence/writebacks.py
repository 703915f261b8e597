"""The write-back log's `persistence.*` activities: each call is one transaction and safe to retry.

Lock order matches every other session change: the session row first, then the write-back row.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.persistence.fixes import stored_durations
from activities.persistence.guard import refused_values_rejected
from db.models import AiSession, PsaWriteback
from db.repositories.accounts import AccountRepository
from db.repositories.ai_sessions import AiSessionRepository
from db.repositories.notifications import NotificationRepository
from db.repositories.psa import PsaConnectionRepository, PsaWritebackRepository
from db.repositories.users import UserRepository
from workflows.contracts.common import REJECT_CONFLICT, REJECT_NOT_FOUND, REJECT_RULE, reject
from workflows.contracts.psa import (
    BEGIN_WRITEBACK,
    COMPLETE_WRITEBACK,
    DEFAULT_STATUS_RECHECK_AFTER,
    NOTE_POSTED,
    NOTE_VISIBILITY,
    PROVIDER_LABELS,
    RECORD_RECHECK,
    STATUS_CHECKED,
    STATUS_RECHECK_PREFERENCE,
    TARGET_STATUS_PREFERENCE,
    BeginWritebackInput,
    CompleteWritebackInput,
    DriftRecorded,
    NotePostedInput,
    RecheckResult,
    SessionClosed,
    StatusCheckedInput,
    StatusRecheck,
    TicketRef,
    WritebackPlan,
    writeback_marker,
)

log = logging.getLogger(__name__)
CLOSABLE = {"resolution_note": ("active", "paused", "escalated"), "escalation_package": ("active", "paused")}


def skipped_reason(kind: str) -> str:
    """Why no status change was asked for: neither the connection nor the account names a target status."""
    label = "resolved" if kind == "resolution_note" else "escalated"
    return (f"No target status is configured for {label} tickets: set the PSA connection's {label}_status_id "
            f"(PATCH /psa/connections/{{id}}) or, for ConnectWise, {TARGET_STATUS_PREFERENCE[kind]} in the account "
            "preferences to have the ticket's status changed and verified")


def target_status(connection: Any, kind: str, preferences: dict[str, Any]) -> int | None:
    """The status this kind of document sets: the connection's own, else the account's ConnectWise fallback."""
    own = connection.resolved_status_id if kind == "resolution_note" else connection.escalated_status_id
    if own is not None:
        return int(own)
    if connection.provider != "connectwise":
        return None  # the cw_* preferences name ConnectWise statuses: meaningless on another PSA
    fallback = preferences.get(TARGET_STATUS_PREFERENCE[kind])
    return fallback if isinstance(fallback, int) and not isinstance(fallback, bool) else None


def pending_recheck(row: PsaWriteback) -> StatusRecheck | None:
    """The drift watch a write-back still owes, if any."""
    if row.recheck_at is None or row.rechecked_at is not None or row.verified_status_id is None:
        return None
    return StatusRecheck(writeback_id=row.id, ticket=TicketRef(account_id=row.account_id,
                                                               connection_id=row.connection_id,
                                                               ticket_id=row.ticket_id),
                         expected_status_id=row.verified_status_id, expected_status_name=row.verified_status_name,
                         due_at=row.recheck_at)


class WritebackPersistence:
    """Opens, advances and completes write-backs for `TroubleshootingSessionWorkflow`."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory

    def all(self) -> list[Any]:
        """Every activity of this class, for the worker."""
        return [self.begin_writeback, self.note_posted, self.status_checked, self.complete_writeback,
                self.status_rechecked]

    @activity.defn(name=BEGIN_WRITEBACK.name)
    async def begin_writeback(self, inp: BeginWritebackInput) -> WritebackPlan:
        """Open the session's write-back of this kind, or resume the unfinished one (its note may be posted)."""
        async with self._session_factory() as session, session.begin(), refused_values_rejected():
            owner = await _locked_session(session, inp.session_id)
            if owner.status not in CLOSABLE[inp.kind]:
                raise reject(REJECT_CONFLICT, f"This session is already {owner.status}")
            if owner.psa_ticket_id is None or owner.psa_connection_id is None:
                raise reject(REJECT_RULE, "This session is not linked to a PSA ticket")
            connection = await PsaConnectionRepository(session).live(owner.psa_connection_id)
            if connection is None:
                raise reject(REJECT_RULE, "This session's PSA connection was deleted; post the document after "
                                          "reconnecting, or close the session without posting")
            preferences = await AccountRepository(session).get_preferences(owner.account_id)
            target_id = target_status(connection, inp.kind, preferences)
            target = {"target_status_id": target_id,
                      "status_skipped_reason": None if target_id else skipped_reason(inp.kind)}
            writebacks = PsaWritebackRepository(session)
            row = await writebacks.open_for_update(inp.session_id, inp.kind)
            if row is None:
                row = await writebacks.add(PsaWriteback(
                    id=uuid.uuid4(), account_id=owner.account_id, session_id=owner.id, connection_id=connection.id,
                    provider=connection.provider, ticket_id=owner.psa_ticket_id, kind=inp.kind,
                    note_type=NOTE_VISIBILITY[inp.kind], state="pending", markdown=inp.markdown,
                    requested_markdown=inp.markdown, attempts=1,
                    posted_by_user_id=inp.by_user_id, note_reused=False, time_minutes=inp.time_minutes, **target,
                ))
            else:
                # Another attempt: the posted text only changes while no note is known to be posted; once it
                # is, `requested_markdown` holds the edit until the note is replaced.
                text = {"markdown": inp.markdown, "time_minutes": inp.time_minutes} if row.state == "pending" else {}
                row = await writebacks.change(row.id, attempts=row.attempts + 1, posted_by_user_id=inp.by_user_id,
                                              requested_markdown=inp.markdown, **target, **text)
            after = (stored_durations([preferences.get(STATUS_RECHECK_PREFERENCE)])
                     or [DEFAULT_STATUS_RECHECK_AFTER])[0]
            return WritebackPlan(
                writeback_id=row.id, ticket=TicketRef(account_id=row.account_id, connection_id=row.connection_id,
                                                      ticket_id=row.ticket_id),
                marker=writeback_marker(row.id), note_id=row.external_note_id, attempts=row.attempts,
                target_status_id=target_id, skipped_reason=row.status_skipped_reason,
                recheck_after_s=max(1, int(after.total_seconds())), provider_name=PROVIDER_LABELS[connection.provider],
                time_entry_id=row.time_entry_id,
                text_edited=row.external_note_id is not None and row.markdown != inp.markdown,
            )

    @activity.defn(name=NOTE_POSTED.name)
    async def note_posted(self, inp: NotePostedInput) -> None:
        """Record the note's PSA id (from now on a retry never posts again), or the edited text that replaced it."""
        async with self._session_factory() as session, session.begin(), refused_values_rejected():
            writebacks = PsaWritebackRepository(session)
            if inp.text_replaced or inp.markdown is not None:  # an edited re-post replaced the posted note's text
                text = inp.markdown or await writebacks.requested_text(inp.writeback_id)
                await writebacks.change(inp.writeback_id, markdown=text)
                return
            await writebacks.change(
                inp.writeback_id, state="note_posted", external_note_id=inp.note_id, note_reused=inp.reused,
                note_posted_at=inp.at, last_error=None, time_entry_id=inp.time_entry_id)

    @activity.defn(name=STATUS_CHECKED.name)
    async def status_checked(self, inp: StatusCheckedInput) -> None:
        """Record whether the status change verified (and what the ticket showed)."""
        async with self._session_factory() as session, session.begin(), refused_values_rejected():
            verified = inp.outcome == "verified"
            await PsaWritebackRepository(session).change(
                inp.writeback_id, status_change=inp.outcome, verified_status_id=inp.status_id if verified else None,
                verified_status_name=inp.status_name if verified else None, verified_at=inp.at if verified else None,
                last_error=inp.error,
            )

    @activity.defn(name=COMPLETE_WRITEBACK.name)
    async def complete_writeback(self, inp: CompleteWritebackInput) -> SessionClosed:
        """Store the document on the session, close it, and mark the write-back completed (one transaction)."""
        async with self._session_factory() as session, session.begin(), refused_values_rejected():
            owner = await _locked_session(session, inp.session_id)
            writebacks = PsaWritebackRepository(session)
            row = await writebacks.get(inp.writeback_id)
            if row is not None and row.state == "completed":  # a retry after the first attempt committed
                return SessionClosed(session_status=owner.status, state_version=owner.state_version)
            markdown = inp.markdown or await writebacks.requested_text(inp.writeback_id)
            if markdown is None:
                raise reject(REJECT_NOT_FOUND, f"write-back {inp.writeback_id} no longer exists")
            version = await AiSessionRepository(session).close(inp.session_id, kind=inp.kind, markdown=markdown,
                                                               by_user_id=inp.by_user_id, at=inp.at)
            if version is None:
                raise reject(REJECT_CONFLICT, f"This session is already {owner.status}")
            skipped = {"status_change": "skipped"} if row is not None and row.target_status_id is None else {}
            await writebacks.change(inp.writeback_id, state="completed", completed_at=inp.at,
                                    recheck_at=inp.recheck_at, markdown=markdown, **skipped)
            status = "resolved" if inp.kind == "resolution_note" else "escalated"
            return SessionClosed(session_status=status, state_version=version)

    @activity.defn(name=RECORD_RECHECK.name)
    async def status_rechecked(self, inp: RecheckResult) -> DriftRecorded:
        """Record the re-read; when the status moved, notify who posted (once)."""
        async with self._session_factory() as session, session.begin(), refused_values_rejected():
            writebacks = PsaWritebackRepository(session)
            row = await writebacks.get(inp.writeback_id)
            if row is None:
                raise reject(REJECT_NOT_FOUND, f"write-back {inp.writeback_id} no longer exists")
            drifted = inp.error is None and inp.status_id != row.verified_status_id
            if row.rechecked_at is None:
                row = await writebacks.change(row.id, rechecked_at=inp.at, recheck_status_id=inp.status_id,
                                              recheck_status_name=inp.status_name,
                                              drift_detected_at=inp.at if drifted else None,
                                              last_error=inp.error or row.last_error)
            if not drifted:
                return DriftRecorded(drifted=False)
            return await _notify_drift(session, row)


async def _notify_drift(session: AsyncSession, row: PsaWriteback) -> DriftRecorded:
    owner = await AiSessionRepository(session).get(row.session_id)
    users = await UserRepository(session).active_in_account(row.account_id, [row.posted_by_user_id]
                                                            if row.posted_by_user_id else [])
    was = f"{row.verified_status_name or '?'} ({row.verified_status_id})"
    now = f"{row.recheck_status_name or '?'} ({row.recheck_status_id})"
    title = f"Ticket {row.ticket_id} moved from {row.verified_status_name or 'its status'} to " \
            f"{row.recheck_status_name or 'another status'}"
    body = (f"After the {row.kind.replace('_', ' ')} was posted, ticket {row.ticket_id}'s status was set to {was} "
            f"and verified. A re-read found it at {now}: a workflow rule or a customer reply may have changed it.\n"
            f"Problem: {owner.problem_summary if owner else '-'}\nSession: {row.session_id}\n\n"
            "Check the ticket and set its status again if it should stay closed.")
    log.warning("session %s: ticket %s drifted from status %s to %s after write-back %s", row.session_id,
                row.ticket_id, row.verified_status_id, row.recheck_status_id, row.id)
    if not users:
        return DriftRecorded(drifted=True)  # the log row keeps the drift; nobody active to tell
    user = users[0]
    note = await NotificationRepository(session).create_once(
        account_id=row.account_id, user_id=user.id, kind="psa_status_drift", title=title, body=body,
        session_id=row.session_id, dedupe_key=f"psa-drift:{row.id}",
    )
    return DriftRecorded(drifted=True, notification_id=note.id,
                         email_to=user.email if note.email_status != "sent" else None, subject=note.title, body=body)


async def _locked_session(session: AsyncSession, session_id: uuid.UUID) -> AiSession:
    row = await AiSessionRepository(session).locked(session_id)
    if row is None:
        raise reject(REJECT_NOT_FOUND, f"AI session {session_id} no longer exists")
    return row
