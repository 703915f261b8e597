"""The account-scoped repository base: every tenant-owned table is read through it."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

ModelT = TypeVar("ModelT")


class AccountScopedRepository(Generic[ModelT]):
    """`get` for the worker (ids it was given), `get_in_account` for the API (another account's id is not found)."""

    model: ClassVar[type[Any]]

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _visible(self, query: Select[Any]) -> Select[Any]:
        """Hook: narrow what the API may see (e.g. not soft-deleted)."""
        return query

    async def get(self, entity_id: uuid.UUID) -> ModelT | None:
        """Any row by id (the worker acts on ids the API already scoped)."""
        found: ModelT | None = await self.session.get(self.model, entity_id)
        return found

    async def get_in_account(
        self, account_id: uuid.UUID, entity_id: uuid.UUID, *, for_update: bool = False
    ) -> ModelT | None:
        """The row when it belongs to `account_id` (row-locked when `for_update`)."""
        query = self._visible(select(self.model).where(self.model.id == entity_id,
                                                        self.model.account_id == account_id))
        result = await self.session.execute(query.with_for_update() if for_update else query)
        found: ModelT | None = result.scalar_one_or_none()
        return found
