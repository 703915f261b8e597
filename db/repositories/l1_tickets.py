"""Internal tickets: what an intake opens when no PSA ticket is linked."""

from __future__ import annotations

import uuid

from sqlalchemy import update

from db.models import InternalTicket
from db.repositories.base import AccountScopedRepository


class InternalTicketRepository(AccountScopedRepository[InternalTicket]):
    """Creates internal tickets and follows their walk's outcome."""

    model = InternalTicket

    async def create(
        self,
        *,
        account_id: uuid.UUID,
        created_by_user_id: uuid.UUID | None,
        problem_statement: str,
        customer_name: str | None = None,
        customer_contact: str | None = None,
    ) -> InternalTicket:
        """An open ticket."""
        ticket = InternalTicket(
            id=uuid.uuid4(), account_id=account_id, created_by_user_id=created_by_user_id,
            problem_statement=problem_statement, customer_name=customer_name,
            customer_contact=customer_contact, status="open",
        )
        self.session.add(ticket)
        await self.session.flush()
        return ticket

    async def set_status(self, ticket_id: uuid.UUID, status: str) -> None:
        """Mirror the walk's outcome onto the ticket."""
        await self.session.execute(update(InternalTicket).where(InternalTicket.id == ticket_id).values(status=status))
