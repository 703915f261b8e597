"""Wording shared by workflow details, notices and messages (pure functions, safe in the sandbox)."""

from __future__ import annotations


def counted(n: int, noun: str) -> str:
    """'1 message', '3 messages' (nouns whose plural adds an s)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def waiting_on(reason: str) -> str:
    """'waiting on X' from a fix's pending reason, kept as is when it already says it waits."""
    return reason if reason.lower().startswith(("waiting", "awaiting")) else f"waiting on {reason}"
