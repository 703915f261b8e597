"""L1 categories and authored flows of an account."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import L1Category, L1Flow
from db.repositories.base import AccountScopedRepository

# Seeded per account on first use: what an L1 desk usually handles, and what it hands straight up.
DEFAULT_CATEGORIES: tuple[tuple[str, bool], ...] = (
    ("printing", True),
    ("network", True),
    ("email", True),
    ("accounts", True),
    ("hardware", True),
    ("software", True),
    ("security", False),
    ("servers", False),
)


class CategoryRepository:
    """The account's categories; seeds the defaults the first time they are needed."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def ensure_defaults(self, account_id: uuid.UUID) -> None:
        """Insert the default categories if the account has none yet (safe under concurrent calls)."""
        count = await self.session.scalar(
            select(func.count()).select_from(L1Category).where(L1Category.account_id == account_id)
        )
        if count:
            return
        rows = [
            {"id": uuid.uuid4(), "account_id": account_id, "name": name, "in_scope": in_scope,
             "escalation_recipient_ids": []}
            for name, in_scope in DEFAULT_CATEGORIES
        ]
        await self.session.execute(
            insert(L1Category).values(rows).on_conflict_do_nothing(constraint="uq_l1_categories_account_name")
        )

    async def list_for_account(self, account_id: uuid.UUID) -> Sequence[L1Category]:
        """Every category of the account, by name."""
        result = await self.session.execute(
            select(L1Category).where(L1Category.account_id == account_id).order_by(L1Category.name)
        )
        return result.scalars().all()

    async def get(self, account_id: uuid.UUID, name: str) -> L1Category | None:
        """The category named `name` (case-insensitive)."""
        result = await self.session.execute(
            select(L1Category).where(L1Category.account_id == account_id, func.lower(L1Category.name) == name.lower())
        )
        return result.scalar_one_or_none()

    async def upsert(
        self, account_id: uuid.UUID, name: str, *, in_scope: bool | None, recipient_ids: list[str] | None
    ) -> L1Category:
        """Create the category or change the given fields of the existing one."""
        row = await self.get(account_id, name)
        if row is None:
            row = L1Category(id=uuid.uuid4(), account_id=account_id, name=name.lower(), in_scope=True,
                             escalation_recipient_ids=[])
            self.session.add(row)
        if in_scope is not None:
            row.in_scope = in_scope
        if recipient_ids is not None:
            row.escalation_recipient_ids = recipient_ids
        await self.session.flush()
        await self.session.refresh(row)
        return row


class FlowRepository(AccountScopedRepository[L1Flow]):
    """Authored flows of an account."""

    model = L1Flow

    async def create(
        self,
        *,
        account_id: uuid.UUID,
        title: str,
        category: str,
        keywords: list[str],
        tree: dict[str, Any],
        source: str = "authored",
        created_by_user_id: uuid.UUID | None = None,
    ) -> L1Flow:
        """A new flow."""
        flow = L1Flow(
            id=uuid.uuid4(), account_id=account_id, title=title, category=category, keywords=keywords,
            tree=tree, source=source, created_by_user_id=created_by_user_id,
        )
        self.session.add(flow)
        await self.session.flush()
        await self.session.refresh(flow)
        return flow

    async def list_for_account(self, account_id: uuid.UUID, *, limit: int, offset: int) -> Sequence[L1Flow]:
        """The account's flows, newest first."""
        result = await self.session.execute(
            select(L1Flow)
            .where(L1Flow.account_id == account_id)
            .order_by(L1Flow.created_at.desc(), L1Flow.id)
            .limit(limit)
            .offset(offset)
        )
        return result.scalars().all()
