"""A session bundle's fixes as both providers read them: raw status, human label, labelled notes.

Each fix dict carries title, description, status, confidence_pct, applied_at, verified_at, failure_reason,
partial_notes, pending_reason and superseded ("yes"/"no"); see `SessionBundle.fixes`.
"""

from __future__ import annotations

Fix = dict[str, str | int | None]

STATUS_LABELS = {
    "applied_success": "worked", "applied_failed": "did not work", "applied_partial": "partly worked",
    "applied_pending": "applied, awaiting verification", "dismissed": "dismissed", "proposed": "proposed",
}
# (key, label in a model's prompt); each is shown only when set.
NOTE_FIELDS = (("failure_reason", "Failure reason"), ("partial_notes", "Partial notes"),
               ("pending_reason", "Pending (waiting on)"))
# The note that explains each status (shown unlabelled in the offline provider's one-line summary).
OWN_NOTE = {"applied_failed": "failure_reason", "applied_partial": "partial_notes",
            "applied_pending": "pending_reason"}
SHORT_NOTE_LABELS = {"failure_reason": "failure reason: ", "partial_notes": "partial notes: "}
KNOWN_KEYS = frozenset({"title", "description", "status", "outcome", "confidence_pct", "applied_at", "verified_at",
                        "superseded", *(key for key, _ in NOTE_FIELDS)})


def text(fix: Fix, key: str) -> str | None:
    """The field as stripped text, None when unset or blank."""
    value = fix.get(key)
    if value is None:
        return None
    return str(value).strip() or None


def title(fix: Fix) -> str:
    """The fix's title, or a placeholder."""
    return text(fix, "title") or "Untitled fix"


def status(fix: Fix) -> str:
    """The raw status string (an older `outcome` key is read too); 'proposed' when unset."""
    return text(fix, "status") or text(fix, "outcome") or "proposed"


def is_superseded(fix: Fix) -> bool:
    """Whether a later fix replaced this one."""
    return (text(fix, "superseded") or "").lower() in ("yes", "true")


def with_status(fixes: list[Fix], wanted: str, *, current_only: bool = False) -> list[Fix]:
    """The fixes with status `wanted` (without the superseded ones when `current_only`)."""
    return [f for f in fixes if status(f) == wanted and not (current_only and is_superseded(f))]


def waiting_on(fix: Fix) -> str:
    """'waiting on X' from the pending reason (kept as is when it already says so)."""
    reason = text(fix, "pending_reason")
    if reason is None:
        return "what it waits on was not recorded"
    return reason if reason.lower().startswith(("waiting", "awaiting")) else f"waiting on {reason}"


def summary_line(fix: Fix) -> str:
    """'Title: did not work (applied_failed) — why', every set note included."""
    raw = status(fix)
    name = f"{title(fix)} [superseded]" if is_superseded(fix) else title(fix)
    own = OWN_NOTE.get(raw)
    notes = []
    for key, _ in sorted(NOTE_FIELDS, key=lambda field: field[0] != own):
        note = text(fix, key)
        if note is None:
            continue
        if key == "pending_reason":
            notes.append(waiting_on(fix))
        else:
            notes.append(note if key == own else SHORT_NOTE_LABELS[key] + note)
    line = f"{name}: {STATUS_LABELS.get(raw, raw)} ({raw})"
    return f"{line} — {'; '.join(notes)}" if notes else line


def prompt_block(number: int, fix: Fix) -> str:
    """One fix for a model's prompt: title, `Outcome status: <raw>`, timestamps and every labelled note."""
    lines = [f"{number}. {title(fix)}", f"   Outcome status: {status(fix)}"]
    fields = [("Description", text(fix, "description")), ("Confidence", _pct(fix.get("confidence_pct"))),
              ("Applied at", text(fix, "applied_at")), ("Verified at", text(fix, "verified_at")),
              *((label, text(fix, key)) for key, label in NOTE_FIELDS)]
    fields.append(("Superseded by a later fix", "yes" if is_superseded(fix) else "no"))
    fields += [(key, text(fix, key)) for key in sorted(fix) if key not in KNOWN_KEYS]
    lines += [f"   {label}: {value}" for label, value in fields if value is not None]
    return "\n".join(lines)


def _pct(value: str | int | None) -> str | None:
    return None if value is None or str(value).strip() == "" else f"{value}%"
