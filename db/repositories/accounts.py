"""Accounts, subscriptions and settings."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Account, AccountSettings, Subscription


class AccountRepository:
    """Reads and writes an account with its subscription and settings."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, name: str) -> Account:
        """A new account on the default plan (`pro`, `trialing`) with empty settings."""
        account = Account(id=uuid.uuid4(), name=name)
        self.session.add(account)
        await self.session.flush()
        self.session.add(Subscription(account_id=account.id, plan="pro", status="trialing"))
        self.session.add(AccountSettings(account_id=account.id, preferences={}))
        await self.session.flush()
        return account

    async def get(self, account_id: uuid.UUID) -> Account | None:
        """The account, or None."""
        return await self.session.get(Account, account_id)

    async def get_subscription(self, account_id: uuid.UUID) -> Subscription | None:
        """The account's subscription row, or None for legacy accounts without one."""
        result = await self.session.execute(select(Subscription).where(Subscription.account_id == account_id))
        return result.scalar_one_or_none()

    async def set_subscription(self, account_id: uuid.UUID, *, plan: str, status: str) -> Subscription:
        """Create or replace the account's plan and status."""
        sub = await self.get_subscription(account_id)
        if sub is None:
            sub = Subscription(account_id=account_id, plan=plan, status=status)
            self.session.add(sub)
        else:
            sub.plan, sub.status = plan, status
        await self.session.flush()
        await self.session.refresh(sub)
        return sub

    async def get_preferences(self, account_id: uuid.UUID) -> dict[str, Any]:
        """The account's preferences (empty when never set)."""
        row = await self.session.get(AccountSettings, account_id)
        return dict(row.preferences) if row else {}

    async def merge_preferences(self, account_id: uuid.UUID, changes: dict[str, Any]) -> AccountSettings:
        """Merge `changes` into the stored preferences; a key set to None is removed."""
        row = await self.session.get(AccountSettings, account_id)
        if row is None:
            row = AccountSettings(account_id=account_id, preferences={})
            self.session.add(row)
        merged = {**row.preferences, **changes}
        row.preferences = {k: v for k, v in merged.items() if v is not None}
        await self.session.flush()
        await self.session.refresh(row)
        return row
