"""Builds every activity object from the process's clients, for the worker to register."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client

from activities.llm import LlmActivities
from activities.notify import NotifyActivities
from activities.persistence import (
    FixPersistence,
    HandoffPersistence,
    PersistFloorPersistence,
    SessionPersistence,
    WalkPersistence,
    WritebackPersistence,
)
from activities.psa import PsaActivities
from activities.workflow_commands import WorkflowCommandActivities
from core.config import Settings
from core.credentials import CredentialCipher
from integrations.llm.base import LlmProvider
from integrations.llm.factory import build_llm_provider
from integrations.psa.egress import EgressPolicy


@dataclass
class ActivityDeps:
    """The clients activities receive (one set per worker process)."""

    settings: Settings
    session_factory: async_sessionmaker[AsyncSession]
    llm: LlmProvider | None = field(default=None)  # None: built from settings (anthropic or offline)


def build_activities(deps: ActivityDeps, client: Client | None = None, *,
                     task_queue: str | None = None) -> list[Callable[..., Any]]:
    """Every activity callable, bound to `deps` (with a Temporal `client`, also the cross-workflow commands)."""
    activities: list[Callable[..., Any]] = []
    activities += WalkPersistence(deps.session_factory).all()
    activities += SessionPersistence(deps.session_factory).all()
    activities += FixPersistence(deps.session_factory).all()
    activities += WritebackPersistence(deps.session_factory).all()
    activities += HandoffPersistence(deps.session_factory).all()
    activities += PersistFloorPersistence(deps.session_factory).all()  # the benches' floor
    if client is not None:
        activities += WorkflowCommandActivities(client, deps.settings, deps.session_factory,
                                                task_queue=task_queue or deps.settings.temporal_task_queue).all()
    cipher = CredentialCipher(deps.settings.credentials_key) if deps.settings.credentials_key else None
    egress = EgressPolicy(allow_private=deps.settings.dev_mode)  # dev mode: the simulator on 127.0.0.1
    activities += PsaActivities(deps.session_factory, cipher, egress=egress).all()
    notify = NotifyActivities(deps.settings, deps.session_factory)
    activities += [notify.send_email, notify.email_notification, notify.email_notifications]
    llm = deps.llm if deps.llm is not None else build_llm_provider(deps.settings)
    activities += LlmActivities(llm, deps.session_factory).all()
    return activities
