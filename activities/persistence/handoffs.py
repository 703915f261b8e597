"""Handoff `persistence.*` activities: create and claim (for the session workflow), notices, assessment, resume.

Each call is one transaction and safe to retry: a handoff is inserted once per id, a claim is recorded once,
notifications and escalation events carry dedupe keys. Events are logged in the transaction of the change they
report, so the live queue hears of a change exactly when it commits, and before any email goes out.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from activities.persistence.fixes import stored_durations
from activities.persistence.guard import refused_values_rejected
from activities.persistence.handoff_texts import escalation_markdown, notice_text, session_snapshot
from db.models import AiSession, SessionHandoff, User
from db.repositories.accounts import AccountRepository
from db.repositories.ai_sessions import AiSessionRepository
from db.repositories.escalation_events import EscalationEventRepository
from db.repositories.handoffs import HandoffRepository
from db.repositories.notifications import NotificationRepository
from db.repositories.suggested_fixes import SuggestedFixRepository
from db.repositories.users import UserRepository
from workflows.contracts.ai_session import SUMMARY_CHARS
from workflows.contracts.common import REJECT_CONFLICT, REJECT_NOT_FOUND, REJECT_RULE, reject
from workflows.contracts.handoff import (
    CLAIM_HANDOFF,
    CLAIM_SESSION_HANDOFF,
    CREATE_HANDOFF,
    DEFAULT_RENOTIFY_AFTER,
    HANDOFF_NOTICE,
    LOAD_HANDOFF,
    PRIORITIES,
    RESUME_SESSION_ROW,
    STORE_ASSESSMENT,
    USER_NAME_CHARS,
    ClaimHandoffInput,
    ClaimRecorded,
    ClaimSessionHandoff,
    CreateHandoffInput,
    HandoffById,
    HandoffControl,
    HandoffNoticeInput,
    HandoffNoticeResult,
    LatestHandoff,
    LoadHandoffResult,
    ResumeResult,
    ResumeSessionRow,
    SessionHandoffClaimed,
    StoreAssessmentInput,
    claimed_conflict,
    raised,
)
from workflows.contracts.notify import NotificationEmail

log = logging.getLogger(__name__)


def handoff_control(row: SessionHandoff, problem_summary: str, session_status: str | None = None) -> HandoffControl:
    """The workflow's view of a handoff row."""
    return HandoffControl(
        id=row.id, account_id=row.account_id, session_id=row.session_id, intent=row.intent, priority=row.priority,
        created_by_user_id=row.created_by_user_id, problem_summary=problem_summary[:SUMMARY_CHARS],
        assessment_status=row.assessment_status, team_notified=row.team_notified_at is not None,
        claimed_by_id=row.claimed_by_user_id, claimed_by_name=row.claimed_by_name, claimed_at=row.claimed_at,
        next_renotify_at=row.next_renotify_at, renotify_every_s=row.renotify_every_s,
        renotify_count=row.renotify_count,
        session_closed=session_status == "resolved",
    )


def latest_handoff_of(row: SessionHandoff) -> LatestHandoff:
    """The session workflow's view of a handoff row."""
    return LatestHandoff(id=row.id, intent=row.intent, created_by_user_id=row.created_by_user_id,
                         claimed_by_id=row.claimed_by_user_id, claimed_by_name=row.claimed_by_name,
                         claimed_at=row.claimed_at)


class _NotClaimed(Exception):
    """The guarded claim wrote nothing: roll the transaction back (the session too) and answer from the row."""


def _event_data(row: SessionHandoff, **extra: Any) -> dict[str, Any]:
    return {"handoff_id": str(row.id), "session_id": str(row.session_id), **extra}


class HandoffPersistence:
    """Creates, loads and changes handoffs for the session workflow and `HandoffWorkflow`."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self._session_factory = session_factory

    def all(self) -> list[Any]:
        """Every activity of this class, for the worker."""
        return [self.create_handoff, self.load_handoff, self.claim_handoff, self.claim_handoff_and_resume,
                self.handoff_notice, self.store_handoff_assessment, self.resume_ai_session]

    @activity.defn(name=CREATE_HANDOFF.name)
    async def create_handoff(self, inp: CreateHandoffInput) -> HandoffControl:
        """Insert the handoff with a snapshot, park or escalate the session, and log `handoff_created`."""
        req, at = inp.request, inp.at
        async with self._session_factory() as session, session.begin(), refused_values_rejected():
            sessions, handoffs = AiSessionRepository(session), HandoffRepository(session)
            owner = await sessions.locked(inp.session_id)  # the session row first: every writer's lock order
            if owner is None:
                raise reject(REJECT_NOT_FOUND, f"AI session {inp.session_id} no longer exists")
            existing = await handoffs.get(req.handoff_id)
            if existing is not None:  # a retry after the first attempt committed
                return handoff_control(existing, owner.problem_summary, owner.status)
            if inp.package_posted:  # escalated by its package's post, in the same update as this call
                if owner.status != "escalated":
                    raise reject(REJECT_CONFLICT, f"This AI session is {owner.status}, no longer escalated")
                await _close_open_park(session, owner.id, req.by_user_id, at)
            elif owner.status != "active":
                raise reject(REJECT_CONFLICT, f"This AI session is {owner.status}; only an active session is "
                                              "parked or escalated")
            messages = await sessions.messages(owner.id, last=6)
            fixes = await SuggestedFixRepository(session).all_for_session(owner.id)
            snapshot = session_snapshot(owner, messages, fixes, at)
            escalate = req.intent == "escalate"
            every = await _renotify_after(session, owner.account_id)
            row = await handoffs.insert_once(
                id=req.handoff_id, account_id=owner.account_id, session_id=owner.id, intent=req.intent,
                engineer_notes=req.engineer_notes, snapshot=snapshot, priority=req.priority,
                target_user_id=req.target_user_id, created_by_user_id=req.by_user_id, assessment_status="pending",
                renotify_count=0, renotify_every_s=max(1, int(every.total_seconds())),
                next_renotify_at=at + every if escalate and req.priority != PRIORITIES[-1] else None,
                created_at=at, updated_at=at,
            )
            changes: dict[str, Any] = {"status": "escalated" if escalate else "paused",
                                       "handoff_count": AiSession.handoff_count + 1,
                                       "state_version": AiSession.state_version + 1, "last_activity_at": at}
            if inp.package_posted:  # status, package and version are the post's, as its answer said
                changes = {"handoff_count": AiSession.handoff_count + 1}
            elif escalate:  # the package is written alongside, so the session reads as escalated everywhere
                changes.update(escalated_at=at, escalation_package_markdown=escalation_markdown(
                    owner, req.engineer_notes, snapshot))
            await sessions.change(owner.id, **changes)
            if escalate:
                await EscalationEventRepository(session).publish(
                    account_id=owner.account_id, kind="handoff_created", handoff_id=row.id,
                    data=_event_data(row, priority=row.priority), dedupe_key=f"handoff:{row.id}:created")
            log.info("session %s %s by %s: handoff %s", owner.id, "escalated" if escalate else "parked",
                     req.by_user_id, row.id)
            return handoff_control(row, owner.problem_summary)

    @activity.defn(name=LOAD_HANDOFF.name)
    async def load_handoff(self, inp: HandoffById) -> LoadHandoffResult:
        """The handoff's control state, or none when it does not exist."""
        async with self._session_factory() as session:
            row = await HandoffRepository(session).get(inp.handoff_id)
            if row is None:
                return LoadHandoffResult()
            owner = await AiSessionRepository(session).get(row.session_id)
            return LoadHandoffResult(control=handoff_control(row, owner.problem_summary if owner else "",
                                                             owner.status if owner else "resolved"))

    @activity.defn(name=CLAIM_HANDOFF.name)
    async def claim_handoff(self, inp: ClaimHandoffInput) -> ClaimRecorded:
        """Record who picked the handoff up (once), log `handoff_claimed` and tell whoever handed it off."""
        async with self._session_factory() as session, session.begin(), refused_values_rejected():
            handoffs = HandoffRepository(session)
            owner, row = await _locked(session, inp.handoff_id)
            if row.claimed_at is not None:
                if row.claimed_by_user_id == inp.user_id:
                    return ClaimRecorded(control=handoff_control(row, owner.problem_summary))  # a retry
                raise claimed_conflict(row.claimed_by_user_id, row.claimed_by_name, row.claimed_at, inp.at)
            if owner.status == "resolved":
                raise reject(REJECT_CONFLICT, "This session was resolved meanwhile; there is nothing to pick up")
            await handoffs.change(row.id, claimed_by_user_id=inp.user_id, claimed_by_name=inp.user_name,
                                  claimed_at=inp.at, next_renotify_at=None, updated_at=inp.at)
            await session.refresh(row)
            emails = await self._announce_claim(session, row, owner, inp.user_id, inp.user_name)
            log.info("handoff %s claimed by %s", row.id, inp.user_id)
            return ClaimRecorded(control=handoff_control(row, owner.problem_summary), emails=emails)

    @activity.defn(name=CLAIM_SESSION_HANDOFF.name)
    async def claim_handoff_and_resume(self, inp: ClaimSessionHandoff) -> SessionHandoffClaimed:
        """For the session's workflow: record the claim and make the session active again in one transaction,
        log `handoff_claimed` and tell whoever handed it off. A handoff claimed already (by anyone, this call's
        own earlier attempt included) changes nothing: the answer names the claimer the row names."""
        async with self._session_factory() as session:
            try:
                async with session.begin(), refused_values_rejected():
                    return await self._claim(session, inp)
            except _NotClaimed:
                pass
            async with session.begin(), refused_values_rejected():
                return await self._as_claimed(session, inp)

    async def _claim(self, session: AsyncSession, inp: ClaimSessionHandoff) -> SessionHandoffClaimed:
        sessions = AiSessionRepository(session)
        # The session row first (the guarded update locks it): every writer's lock order.
        owner = await sessions.reopen(inp.session_id, inp.at) or await sessions.locked(inp.session_id)
        if owner is None:
            raise reject(REJECT_NOT_FOUND, f"AI session {inp.session_id} no longer exists")
        row = None if owner.status == "resolved" else await HandoffRepository(session).claim_unclaimed(
            inp.handoff_id, inp.session_id, user_id=inp.user_id, user_name=inp.user_name, at=inp.at)
        if row is None:
            raise _NotClaimed
        emails = await self._announce_claim(session, row, owner, inp.user_id, inp.user_name)
        log.info("handoff %s claimed by %s; session %s %s", row.id, inp.user_id, owner.id, owner.status)
        return SessionHandoffClaimed(handoff=latest_handoff_of(row), changed=True, session_status=owner.status,
                                     emails=emails)

    async def _announce_claim(self, session: AsyncSession, row: SessionHandoff, owner: AiSession,
                              claimer_id: uuid.UUID, claimer_name: str) -> list[NotificationEmail]:
        """Tell whoever handed it off (unless they claimed it) and, for an escalation, log `handoff_claimed`."""
        creator = await UserRepository(session).active_in_account(row.account_id, _creator(row, claimer_id))
        emails = await self._tell(session, row, owner, "handoff_claimed", creator,
                                  dedupe=f"handoff:{row.id}:claimed", claimer=claimer_name)
        if row.intent == "escalate":
            await EscalationEventRepository(session).publish(
                account_id=row.account_id, kind="handoff_claimed", handoff_id=row.id,
                data=_event_data(row, claimed_by_id=str(claimer_id)), dedupe_key=f"handoff:{row.id}:claimed")
        return emails

    async def _as_claimed(self, session: AsyncSession, inp: ClaimSessionHandoff) -> SessionHandoffClaimed:
        """Nothing was written: the handoff as the row has it (claimed), or why it cannot be claimed."""
        owner, row = await _locked(session, inp.handoff_id)
        if row.session_id != inp.session_id:
            raise reject(REJECT_NOT_FOUND, f"Handoff {inp.handoff_id} is not one of this session's")
        if row.claimed_at is None:
            if owner.status == "resolved":
                raise reject(REJECT_CONFLICT, "This session was resolved meanwhile; there is nothing to pick up")
            raise reject(REJECT_RULE, "You escalated this session; another engineer picks it up")
        # A claim that committed while its workflow task was lost leaves its emails unsent: the first answer that
        # adopts the row's claimer sends those never tried (the in-app notification is there already).
        claimer = row.claimed_by_user_id
        creator = await UserRepository(session).active_in_account(
            row.account_id, _creator(row, claimer) if claimer else [])
        emails = await self._tell(session, row, owner, "handoff_claimed", creator, dedupe=f"handoff:{row.id}:claimed",
                                  claimer=row.claimed_by_name or "", untried_only=True)
        return SessionHandoffClaimed(handoff=latest_handoff_of(row), changed=False, session_status=owner.status,
                                     emails=emails)

    @activity.defn(name=HANDOFF_NOTICE.name)
    async def handoff_notice(self, inp: HandoffNoticeInput) -> HandoffNoticeResult:
        """Tell the team of an escalation; on a re-announcement also raise its priority and schedule the next."""
        async with self._session_factory() as session, session.begin(), refused_values_rejected():
            handoffs = HandoffRepository(session)
            owner, row = await _locked(session, inp.handoff_id)
            if inp.kind == "unclaimed":
                if row.claimed_at is not None or owner.status != "escalated":  # picked up or closed meanwhile
                    await handoffs.change(row.id, next_renotify_at=None)
                    await session.refresh(row)
                    return HandoffNoticeResult(control=handoff_control(row, owner.problem_summary, owner.status))
                if row.renotify_count < inp.round:  # else a retry after the first attempt committed
                    priority = raised(row.priority)
                    following = (inp.at + timedelta(seconds=row.renotify_every_s)
                                 if priority != PRIORITIES[-1] else None)
                    await handoffs.change(row.id, priority=priority, renotify_count=inp.round,
                                          next_renotify_at=following, updated_at=inp.at)
                    await session.refresh(row)
            recipients = await _team(session, row)
            kind = "handoff_escalated" if inp.kind == "escalated" else "handoff_unclaimed"
            emails = await self._tell(session, row, owner, kind, recipients,
                                      dedupe=f"handoff:{row.id}:{inp.kind}:{inp.round}")
            if inp.kind == "escalated" and row.team_notified_at is None:
                await handoffs.change(row.id, team_notified_at=inp.at)
                await session.refresh(row)
            if inp.kind == "unclaimed":
                await EscalationEventRepository(session).publish(
                    account_id=row.account_id, kind="handoff_priority_raised", handoff_id=row.id,
                    data=_event_data(row, priority=row.priority), dedupe_key=f"handoff:{row.id}:raised:{inp.round}")
            return HandoffNoticeResult(control=handoff_control(row, owner.problem_summary, owner.status),
                                       emails=emails)

    @activity.defn(name=STORE_ASSESSMENT.name)
    async def store_handoff_assessment(self, inp: StoreAssessmentInput) -> HandoffControl:
        """Store the AI assessment (or why there is none) and log `handoff_assessment_ready`."""
        async with self._session_factory() as session, session.begin(), refused_values_rejected():
            handoffs = HandoffRepository(session)
            row = await handoffs.locked(inp.handoff_id)
            if row is None:
                raise reject(REJECT_NOT_FOUND, f"Handoff {inp.handoff_id} no longer exists")
            owner = await AiSessionRepository(session).get(row.session_id)
            summary = owner.problem_summary if owner else ""
            if row.assessment_status != "pending":  # a retry after the first attempt committed
                return handoff_control(row, summary)
            found = inp.assessment
            if found is None:
                await handoffs.change(row.id, assessment_status="failed", assessment_error=inp.error)
            else:
                data = found.model_dump(exclude={"summary_prose"})
                await handoffs.change(row.id, assessment_status="ready", ai_assessment=found.summary_prose,
                                      ai_assessment_data=data, assessment_error=None)
                if row.intent == "escalate":
                    await EscalationEventRepository(session).publish(
                        account_id=row.account_id, kind="handoff_assessment_ready", handoff_id=row.id,
                        data=_event_data(row), dedupe_key=f"handoff:{row.id}:assessment")
            await session.refresh(row)
            return handoff_control(row, summary)

    @activity.defn(name=RESUME_SESSION_ROW.name)
    async def resume_ai_session(self, inp: ResumeSessionRow) -> ResumeResult:
        """Make a parked or escalated session active again (a resolved one stays resolved)."""
        async with self._session_factory() as session, session.begin(), refused_values_rejected():
            sessions = AiSessionRepository(session)
            row = await sessions.locked(inp.session_id)
            if row is None:
                raise reject(REJECT_NOT_FOUND, f"AI session {inp.session_id} no longer exists")
            if row.status not in ("paused", "escalated"):
                return ResumeResult(session_status=row.status, resumed=False)
            await sessions.change(row.id, status="active", state_version=AiSession.state_version + 1,
                                  last_activity_at=inp.at)
            return ResumeResult(session_status="active", resumed=True)

    async def _tell(self, session: AsyncSession, row: SessionHandoff, owner: AiSession, kind: str,
                    recipients: Sequence[User], *, dedupe: str, claimer: str = "",
                    untried_only: bool = False) -> list[NotificationEmail]:
        title, body = notice_text(kind, row, owner, claimer)
        notifications = NotificationRepository(session)
        emails = []
        for user in recipients:
            note = await notifications.create_once(
                account_id=row.account_id, user_id=user.id, kind=kind, title=title, body=body,
                session_id=row.session_id, handoff_id=row.id, dedupe_key=dedupe)
            if note.email_status is None if untried_only else note.email_status != "sent":
                emails.append(NotificationEmail(notification_id=note.id, to=user.email, subject=note.title,
                                                body=body))
        return emails


async def _locked(session: AsyncSession, handoff_id: uuid.UUID) -> tuple[AiSession, SessionHandoff]:
    """The handoff and its session, both row-locked: the session first, the order every writer takes."""
    found = await HandoffRepository(session).get(handoff_id)
    if found is None:
        raise reject(REJECT_NOT_FOUND, f"Handoff {handoff_id} no longer exists")
    owner = await AiSessionRepository(session).locked(found.session_id)
    row = await HandoffRepository(session).locked(handoff_id)
    assert owner is not None and row is not None  # handoffs cascade with their session
    return owner, row


async def _close_open_park(session: AsyncSession, session_id: uuid.UUID, by_user_id: uuid.UUID,
                           at: datetime) -> None:
    """A parked session escalated by its package's post: the park is over, picked up by the poster."""
    handoffs = HandoffRepository(session)
    park = await handoffs.open_for_session(session_id)
    if park is None:
        return
    poster = await UserRepository(session).get(by_user_id)
    await handoffs.change(park.id, claimed_by_user_id=by_user_id, claimed_at=at, next_renotify_at=None,
                          claimed_by_name=(poster.name if poster else "")[:USER_NAME_CHARS], updated_at=at)
    log.info("session %s: open handoff %s closed by the escalation package's post", session_id, park.id)


def _creator(row: SessionHandoff, claimer: uuid.UUID) -> list[uuid.UUID]:
    return [row.created_by_user_id] if row.created_by_user_id and row.created_by_user_id != claimer else []


async def _renotify_after(session: AsyncSession, account_id: uuid.UUID) -> timedelta:
    preferences = await AccountRepository(session).get_preferences(account_id)
    found = stored_durations([preferences.get("handoff_renotify_after")])
    return found[0] if found else DEFAULT_RENOTIFY_AFTER


async def _team(session: AsyncSession, row: SessionHandoff) -> Sequence[User]:
    """Who hears of an escalation: its target when one was named (and still can), else every engineer, admin
    and owner of the account but the escalator."""
    users = UserRepository(session)
    if row.target_user_id is not None:
        targeted = await users.engineers_in_account(row.account_id, only_ids=[row.target_user_id])
        if targeted:
            return targeted
    excluded = [row.created_by_user_id] if row.created_by_user_id else []
    return await users.engineers_in_account(row.account_id, except_ids=excluded)
