"""Failed-login counters, shared by every API process (so throttling holds when the API is scaled out)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base


class LoginThrottle(Base):
    """Attempts counted against one key (`email:<address>` or `ip:<client>`) in a fixed window."""

    __tablename__ = "login_throttle"
    __table_args__ = (Index("ix_login_throttle_window_started_at", "window_started_at"),)

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, nullable=False)
    window_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
