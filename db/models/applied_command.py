"""The log of workflow commands a write has applied, so a re-run recognises its own earlier commit."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, String, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base


class AppliedCommand(Base):
    """One accepted command on one entity, with the entity's state right after it (the command's answer).

    A workflow task that is dropped after its local activities committed is replayed: the same commands
    run again, in the same order, with the same ids. Looking the id up here (not comparing versions)
    lets each re-run return what it returned the first time, however many later changes committed.
    """

    __tablename__ = "applied_commands"

    # Fixes are the one entity whose writes need the log today; the rows go with their fix.
    entity_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("session_suggested_fixes.id", ondelete="CASCADE"), primary_key=True)
    command_id: Mapped[str] = mapped_column(String(300), primary_key=True)
    result: Mapped[Any] = mapped_column(JSONB, nullable=False)
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
