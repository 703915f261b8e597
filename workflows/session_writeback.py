"""The PSA write-back steps of `TroubleshootingSessionWorkflow`: post once, change the status, verify, watch.

Workflow code (deterministic): every PSA call and write is an activity. A failure after the note is
posted leaves the write-back open with its note id, so posting again only retries the status change.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError

with workflow.unsafe.imports_passed_through():
    from workflows.contracts.ai_session import CloseInput, SessionControl
    from workflows.contracts.common import REJECT_NOT_FOUND, REJECT_UPSTREAM, ActivityRef, reject
    from workflows.contracts.psa import (
        BEGIN_WRITEBACK,
        CHANGE_STATUS,
        COMPLETE_WRITEBACK,
        NOTE_POSTED,
        NOTE_VISIBILITY,
        POST_NOTE,
        PSA_INTAKE_READ_BUDGET,
        PSA_NOT_FOUND,
        PSA_POST_BUDGET,
        PSA_UNAVAILABLE,
        READ_TICKET,
        RECORD_RECHECK,
        STATUS_CHECKED,
        UPDATE_NOTE,
        BeginWritebackInput,
        ChangeStatusInput,
        CompleteWritebackInput,
        DriftRecorded,
        NotePostedInput,
        PostNoteInput,
        PsaCloseResult,
        RecheckResult,
        StatusChange,
        StatusCheckedInput,
        StatusRecheck,
        TicketFacts,
        TicketRef,
        UpdateNoteInput,
        WritebackPlan,
    )

InT = TypeVar("InT")
OutT = TypeVar("OutT")
POST_AGAIN = "; post again (nothing is posted twice)"


def psa_failure(exc: ActivityError, provider: str, doing: str, then: str = POST_AGAIN) -> str:
    """What the engineer is told when a PSA activity finally failed (the provider's own message when it gave one)."""
    cause = exc.cause
    if isinstance(cause, TimeoutError):
        return f"{provider} did not answer in time while {doing}{then}"
    if isinstance(cause, ApplicationError):
        # A client's message may start with its provider's name: it is said once.
        said = cause.message.removeprefix(f"{provider}: ")
        if cause.type == PSA_UNAVAILABLE:
            return f"{provider} did not answer while {doing}: {said}{then}"
        return f"{provider} refused {doing}: {said}"
    return f"{provider} failed while {doing}: {cause or exc}"


def within(ref: ActivityRef[InT, OutT], deadline: datetime) -> ActivityRef[InT, OutT]:
    """`ref` with its schedule-to-close cut to what is left before `deadline` (at least a second)."""
    left = max(deadline - workflow.now(), timedelta(seconds=1))
    bound = left if ref.schedule_to_close is None else min(ref.schedule_to_close, left)
    return dataclasses.replace(ref, schedule_to_close=bound)


async def read_ticket_for_intake(ticket: TicketRef) -> TicketFacts:
    """The ticket a session opens from (404 with the provider's message when it does not exist).

    Bounded by PSA_INTAKE_READ_BUDGET, inside the create's own answer bound, so an unreachable PSA is a 502
    that says so rather than a 503 from a create that ran out of time.
    """
    read = READ_TICKET
    if workflow.patched("bound-the-intake-read"):
        read = within(READ_TICKET, workflow.now() + PSA_INTAKE_READ_BUDGET)
    try:
        return await read(ticket, summary=f"read ticket {ticket.ticket_id}")
    except ActivityError as exc:
        cause = exc.cause
        if isinstance(cause, ApplicationError) and cause.type == PSA_NOT_FOUND:
            raise reject(REJECT_NOT_FOUND, f"The PSA has no ticket {ticket.ticket_id}: {cause.message}") from exc
        raise reject(REJECT_UPSTREAM, psa_failure(exc, "The PSA", f"reading ticket {ticket.ticket_id}",
                                                  "; open the session again once the PSA answers")) from exc


async def write_back(state: SessionControl, inp: CloseInput) -> tuple[PsaCloseResult, StatusRecheck | None]:
    """Post the document to the ticket, set and verify the target status, then close the session."""
    plan = await BEGIN_WRITEBACK(BeginWritebackInput(session_id=state.id, kind=inp.kind, markdown=inp.markdown,
                                                     by_user_id=inp.by_user_id, at=workflow.now(),
                                                     time_minutes=inp.time_minutes))
    provider, ticket_id = plan.provider_name, plan.ticket.ticket_id
    # Every PSA call of this post shares one budget, so a slow PSA is a 502 within a stated bound.
    deadline = workflow.now() + PSA_POST_BUDGET if workflow.patched("bound-the-psa-post") else None
    note_id, time_entry_id, status_sent = plan.note_id, plan.time_entry_id, False
    if note_id is None:
        try:
            posted = await _bounded(POST_NOTE, deadline)(
                PostNoteInput(ticket=plan.ticket, writeback_id=plan.writeback_id, visibility=NOTE_VISIBILITY[inp.kind],
                              marker=plan.marker, search_first=plan.attempts > 1, minutes=inp.time_minutes,
                              ended_at=workflow.now() if inp.time_minutes else None,
                              status_id=plan.target_status_id),
                summary=f"post the {inp.kind.replace('_', ' ')} to ticket {ticket_id}")
        except ActivityError as exc:
            detail = psa_failure(exc, provider, f"posting the note to ticket {ticket_id}")
            raise reject(REJECT_UPSTREAM, detail) from exc
        await NOTE_POSTED(NotePostedInput(writeback_id=plan.writeback_id, note_id=posted.note_id,
                                          reused=posted.reused, at=workflow.now(), time_entry_id=posted.time_entry_id))
        note_id, time_entry_id, status_sent = posted.note_id, posted.time_entry_id, posted.status_sent
    elif plan.edits(inp.markdown) and workflow.patched("post-an-edited-repost"):
        await _replace_note(plan, note_id, provider, deadline)
    verified: TicketFacts | None = None
    if plan.target_status_id is not None:
        verified = await _set_status(plan.writeback_id, plan.ticket, plan.target_status_id, provider, note_id,
                                     state.status, deadline, already_sent=status_sent)
    recheck_at = workflow.now() + timedelta(seconds=plan.recheck_after_s) if verified else None
    closed = await COMPLETE_WRITEBACK(CompleteWritebackInput(
        writeback_id=plan.writeback_id, session_id=state.id, kind=inp.kind, by_user_id=inp.by_user_id,
        recheck_at=recheck_at, at=workflow.now()))
    result = PsaCloseResult(
        outcome="resolved" if inp.kind == "resolution_note" else "escalated", session_status=closed.session_status,
        state_version=closed.state_version, external_id=note_id, time_entry_id=time_entry_id,
        verified_status_id=verified.status_id if verified else None,
        verified_status_name=verified.status_name if verified else None,
        status_transition_skipped_reason=plan.skipped_reason,
    )
    recheck = None
    if verified is not None and recheck_at is not None and verified.status_id is not None:
        recheck = StatusRecheck(writeback_id=plan.writeback_id, ticket=plan.ticket,
                                expected_status_id=verified.status_id, expected_status_name=verified.status_name,
                                due_at=recheck_at)
    return result, recheck


def _bounded(ref: ActivityRef[InT, OutT], deadline: datetime | None) -> ActivityRef[InT, OutT]:
    return ref if deadline is None else within(ref, deadline)


async def _replace_note(plan: WritebackPlan, note_id: str, provider: str, deadline: datetime | None) -> None:
    """An edited re-post after the note was posted: the same note takes the edited text (never a second note)."""
    ticket = plan.ticket
    try:
        await _bounded(UPDATE_NOTE, deadline)(
            UpdateNoteInput(ticket=ticket, note_id=note_id, marker=plan.marker, writeback_id=plan.writeback_id,
                            time_entry_id=plan.time_entry_id),
            summary=f"replace note {note_id} on ticket {ticket.ticket_id} with the edited text")
    except ActivityError as exc:
        detail = psa_failure(exc, provider, f"replacing note {note_id} on ticket {ticket.ticket_id} with the "
                                            "edited text", "; post again to retry")
        raise reject(REJECT_UPSTREAM, f"{detail}. The note keeps its earlier text; the session is not closed.") \
            from exc
    await NOTE_POSTED(NotePostedInput(writeback_id=plan.writeback_id, note_id=note_id, reused=False,
                                      at=workflow.now(), text_replaced=True))


async def _set_status(writeback_id: uuid.UUID, ticket: TicketRef, target: int, provider: str, note_id: str,
                      session_status: str, deadline: datetime | None = None, *,
                      already_sent: bool = False) -> TicketFacts:
    """Change the status (unless it went with the note) and re-read the ticket; anything but the target is a 502
    that says 'did not verify'."""
    stays = (f"The note was posted (id {note_id}); the session stays {session_status}. Post again to retry the "
             "status change (the note is not posted twice), or set the status in the PSA.")
    try:
        if not already_sent:
            await _bounded(CHANGE_STATUS, deadline)(ChangeStatusInput(ticket=ticket, status_id=target),
                                                    summary=f"set ticket {ticket.ticket_id} to status {target}")
        found = await _bounded(READ_TICKET, deadline)(ticket, summary=f"verify ticket {ticket.ticket_id}'s status")
    except ActivityError as exc:
        detail = f"{psa_failure(exc, provider, f'changing the status of ticket {ticket.ticket_id}', '')}. {stays}"
        await _status_checked(writeback_id, "did_not_verify", None, None, detail)
        raise reject(REJECT_UPSTREAM, detail) from exc
    if found.status_id != target:
        detail = (f"{provider} answered the status change of ticket {ticket.ticket_id} but it did not verify: the "
                  f"ticket is at '{found.status_name}' ({found.status_id}), not status {target}. {stays}")
        await _status_checked(writeback_id, "did_not_verify", found.status_id, found.status_name, detail)
        raise reject(REJECT_UPSTREAM, detail)
    await _status_checked(writeback_id, "verified", found.status_id, found.status_name, None)
    return found


async def _status_checked(writeback_id: uuid.UUID, outcome: StatusChange, status_id: int | None,
                          status_name: str | None, error: str | None) -> None:
    await STATUS_CHECKED(StatusCheckedInput(writeback_id=writeback_id, outcome=outcome, status_id=status_id,
                                            status_name=status_name, error=error, at=workflow.now()))


async def recheck_status(recheck: StatusRecheck) -> DriftRecorded:
    """Re-read a verified status and record it; a failed read is recorded, never reported as drift."""
    try:
        # A drift re-check is nobody's request: it waits behind interactive work.
        found = await READ_TICKET.background()(recheck.ticket,
                                                summary=f"re-read ticket {recheck.ticket.ticket_id}'s status")
        result = RecheckResult(writeback_id=recheck.writeback_id, status_id=found.status_id,
                               status_name=found.status_name, at=workflow.now())
    except ActivityError as exc:
        result = RecheckResult(writeback_id=recheck.writeback_id, at=workflow.now(),
                               error=psa_failure(exc, "The PSA", "re-reading the status", ""))
    return await RECORD_RECHECK(result)
