"""What a handoff says: the session snapshot, the escalation package written alongside, and notification texts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from db.models import AiSession, AiSessionMessage, SessionHandoff, SuggestedFix

SNAPSHOT_MESSAGE_CHARS = 600
TITLE_SUMMARY_CHARS = 160


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def session_snapshot(owner: AiSession, messages: Sequence[AiSessionMessage], fixes: Sequence[SuggestedFix],
                     at: datetime) -> dict[str, Any]:
    """The session as the engineer left it (bounded: the latest messages, clipped; every fix's title and status)."""
    active = next((f for f in fixes if f.superseded_at is None), None)
    return {
        "taken_at": at.isoformat(),
        "status": owner.status,
        "problem_summary": owner.problem_summary,
        "confidence_tier": owner.confidence_tier,
        "confidence": owner.confidence,
        "message_count": owner.message_count,
        "psa_ticket_id": owner.psa_ticket_id,
        "recent_messages": [{"role": m.role, "content": _clip(m.content, SNAPSHOT_MESSAGE_CHARS)} for m in messages],
        "fixes": [{"id": str(f.id), "title": f.title, "status": f.status, "confidence_pct": f.confidence_pct,
                   "superseded": f.superseded_at is not None} for f in fixes],
        "active_fix_id": str(active.id) if active else None,
    }


def escalation_markdown(owner: AiSession, notes: str, snapshot: dict[str, Any]) -> str:
    """The escalation package stored on the session when it is escalated through a handoff."""
    tried = [f"- {f['title']} — {f['status'].replace('_', ' ')}" for f in snapshot["fixes"]] or ["- nothing yet"]
    recent = [f"> **{m['role']}:** {m['content']}" for m in snapshot["recent_messages"]]
    return "\n".join([
        "## Escalation", f"**Problem:** {owner.problem_summary or '-'}",
        f"**Confidence:** {owner.confidence_tier} ({owner.confidence:.0%})", "",
        "## Engineer notes", notes.strip() or "-", "",
        "## What was tried", *tried, "",
        "## Latest conversation", *(recent or ["-"]),
    ])


def notice_text(kind: str, row: SessionHandoff, owner: AiSession, claimer: str = "") -> tuple[str, str]:
    """Title and body of a handoff notification; every title names the session's problem."""
    summary = _clip(owner.problem_summary or "an AI session", TITLE_SUMMARY_CHARS)
    if kind == "handoff_escalated":
        title = f"Escalated ({row.priority}): {summary}"
        lead = "An AI session was escalated and waits in the queue for someone to pick it up."
    elif kind == "handoff_unclaimed":
        title = f"Still unclaimed, now {row.priority}: {summary}"
        lead = f"This escalation is still unclaimed; its priority was raised to {row.priority}."
    else:
        title = f"{claimer} picked up: {summary}"
        lead = f"{claimer} claimed the session you handed off."
    body = (f"{lead}\n\nProblem: {owner.problem_summary}\nEngineer notes: {row.engineer_notes or '-'}\n"
            f"Priority: {row.priority}\nSession: {owner.id}\nHandoff: {row.id}\n")
    return title, body
