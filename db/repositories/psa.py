"""PSA connections and the write-back log: the only SQL for either."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.exc import IntegrityError

from db.models import PsaConnection, PsaWriteback
from db.repositories.base import AccountScopedRepository

LIVE_SITE_INDEX = "uq_psa_connections_live_site"


class DuplicateConnection(Exception):
    """The account already has a live connection to this PSA site and company."""


class PsaConnectionRepository(AccountScopedRepository[PsaConnection]):
    """An account's PSA connections; deleted ones stay for the sessions and log that used them."""

    model = PsaConnection

    def _visible(self, query: Select[Any]) -> Select[Any]:
        return query.where(PsaConnection.deleted_at.is_(None))

    async def create(self, *, account_id: uuid.UUID, provider: str, site_url: str, company_id: str,
                     credentials_encrypted: bytes, created_by_user_id: uuid.UUID, **columns: Any) -> PsaConnection:
        """Insert a connection (DuplicateConnection when the instance and identity are already connected)."""
        row = PsaConnection(id=uuid.uuid4(), account_id=account_id, provider=provider, site_url=site_url,
                            company_id=company_id, credentials_encrypted=credentials_encrypted,
                            created_by_user_id=created_by_user_id, **columns)
        try:
            async with self.session.begin_nested():
                self.session.add(row)
                await self.session.flush()
        except IntegrityError as exc:
            if LIVE_SITE_INDEX in str(exc.orig):
                raise DuplicateConnection(site_url) from exc
            raise
        await self.session.refresh(row)
        return row

    async def list_for_account(self, account_id: uuid.UUID, *, limit: int,
                               offset: int) -> tuple[Sequence[PsaConnection], int]:
        """Live connections, oldest first, and how many there are."""
        base = self._visible(select(PsaConnection).where(PsaConnection.account_id == account_id))
        total = await self.session.scalar(select(func.count()).select_from(base.subquery()))
        rows = await self.session.scalars(base.order_by(PsaConnection.created_at, PsaConnection.id)
                                          .limit(limit).offset(offset))
        return rows.all(), int(total or 0)

    async def live(self, connection_id: uuid.UUID) -> PsaConnection | None:
        """A connection that was not deleted (the worker acts on ids the API already scoped)."""
        found: PsaConnection | None = await self.session.scalar(self._visible(
            select(PsaConnection).where(PsaConnection.id == connection_id)))
        return found

    async def change(self, row: PsaConnection, **values: Any) -> PsaConnection:
        """Set columns of a live connection and return it as stored."""
        for name, value in values.items():
            setattr(row, name, value)
        row.updated_at = datetime.now(UTC)
        await self.session.flush()
        return row

    async def soft_delete(self, row: PsaConnection, at: datetime) -> None:
        """Mark deleted (sessions linked to it can no longer post)."""
        row.deleted_at = at
        await self.session.flush()


class PsaWritebackRepository(AccountScopedRepository[PsaWriteback]):
    """One row per document posted to a ticket, from the first attempt through verification and drift."""

    model = PsaWriteback

    async def open_for_update(self, session_id: uuid.UUID, kind: str) -> PsaWriteback | None:
        """The unfinished write-back of this kind, row-locked (a retry resumes it)."""
        found: PsaWriteback | None = await self.session.scalar(
            select(PsaWriteback).where(PsaWriteback.session_id == session_id, PsaWriteback.kind == kind,
                                       PsaWriteback.state != "completed").with_for_update())
        return found

    async def add(self, row: PsaWriteback) -> PsaWriteback:
        """Insert a new write-back."""
        self.session.add(row)
        await self.session.flush()
        return row

    async def change(self, writeback_id: uuid.UUID, **values: Any) -> PsaWriteback:
        """Set columns of one write-back and return it (LookupError when it does not exist)."""
        row = await self.session.scalar(
            update(PsaWriteback).where(PsaWriteback.id == writeback_id).values(**values, updated_at=func.now())
            .returning(PsaWriteback).execution_options(populate_existing=True, synchronize_session=False))
        if row is None:
            raise LookupError(f"write-back {writeback_id} does not exist")
        return row

    async def requested_text(self, writeback_id: uuid.UUID) -> str | None:
        """The text the write-back's latest attempt asked to post (None: no such write-back)."""
        found = await self.session.execute(select(PsaWriteback.requested_markdown, PsaWriteback.markdown)
                                           .where(PsaWriteback.id == writeback_id))
        row = found.one_or_none()
        return None if row is None else (row.requested_markdown or row.markdown)

    async def for_session(self, session_id: uuid.UUID) -> Sequence[PsaWriteback]:
        """A session's write-backs, oldest first."""
        rows = await self.session.scalars(select(PsaWriteback).where(PsaWriteback.session_id == session_id)
                                          .order_by(PsaWriteback.created_at, PsaWriteback.id))
        return rows.all()

    async def due_recheck(self, session_id: uuid.UUID) -> PsaWriteback | None:
        """The earliest verified status of the session still to be re-read, if any."""
        found: PsaWriteback | None = await self.session.scalar(
            select(PsaWriteback).where(PsaWriteback.session_id == session_id, PsaWriteback.recheck_at.is_not(None),
                                       PsaWriteback.rechecked_at.is_(None))
            .order_by(PsaWriteback.recheck_at).limit(1))
        return found
