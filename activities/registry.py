"""Builds every activity object from the process's clients, for the worker to register."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings


@dataclass
class ActivityDeps:
    """The clients activities receive (one set per worker process)."""

    settings: Settings
    session_factory: async_sessionmaker[AsyncSession]


def build_activities(deps: ActivityDeps) -> list[Callable[..., Any]]:
    """Every activity callable, bound to `deps`."""
    activities: list[Callable[..., Any]] = []
    return activities
