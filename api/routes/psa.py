"""PSA connections (admin+): connect ConnectWise, Autotask or HaloPSA, test the keys, pick target statuses."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, status
from fastapi.responses import Response

from api.deps import AdminUser, PsaConnectionsDep
from api.errors import error_responses
from api.idempotency import Idempotent
from api.schemas.common import Limit, Offset
from api.schemas.psa import (
    ConnectionTestOut,
    PsaConnectionCreate,
    PsaConnectionListOut,
    PsaConnectionOut,
    PsaConnectionUpdate,
    PsaStatusListOut,
)
from db.repositories.psa import PsaConnectionRepository
from integrations.psa.factory import SECRET_FIELDS

router = APIRouter(prefix="/psa/connections", tags=["psa"], responses=error_responses(401, 403, 503))

NOT_FOUND = {404: "No such PSA connection in your account"}
BoardId = Annotated[int, Path(ge=1, le=2**31 - 1, description="A ConnectWise board id.")]
TicketId = Annotated[str, Path(pattern=r"^[1-9][0-9]{0,9}$", description="The PSA's ticket number.")]
UPSTREAM = {400: "This connection's site may not be called from this server (the detail says why)",
            502: "The PSA refused the keys, failed or did not answer (the detail has its message)"}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=PsaConnectionOut,
             responses=error_responses(400, 422, described={409: "This instance and identity are connected already"}))
async def create_connection(body: PsaConnectionCreate, user: AdminUser, connections: PsaConnectionsDep,
                            idem: Idempotent) -> Response:
    """Connect a ConnectWise, Autotask or HaloPSA instance; the keys are stored encrypted and never returned."""
    secret_names = SECRET_FIELDS[body.provider]

    async def command() -> PsaConnectionOut:
        row = await connections.create(
            account_id=user.account_id, user_id=user.id, provider=body.provider,
            fields=body.model_dump(exclude={"provider", *secret_names}),
            secrets={name: getattr(body, name) for name in secret_names},
        )
        return PsaConnectionOut.of(row)

    return await idem.run(command, status_code=status.HTTP_201_CREATED)


@router.get("", response_model=PsaConnectionListOut, responses=error_responses(422))
async def list_connections(user: AdminUser, connections: PsaConnectionsDep, limit: Limit = 50,
                           offset: Offset = 0) -> PsaConnectionListOut:
    """The account's connections (without keys), oldest first."""
    rows, total = await PsaConnectionRepository(connections.session).list_for_account(
        user.account_id, limit=limit, offset=offset)
    return PsaConnectionListOut(items=[PsaConnectionOut.of(r) for r in rows], total=total)


@router.patch("/{connection_id}", response_model=PsaConnectionOut,
              responses=error_responses(400, 422, described=NOT_FOUND))
async def update_connection(connection_id: uuid.UUID, body: PsaConnectionUpdate, user: AdminUser,
                            connections: PsaConnectionsDep, idem: Idempotent) -> Response:
    """Rename a connection, set its target statuses (null clears one) or replace its keys."""

    async def command() -> PsaConnectionOut:
        row = await connections.owned(user.account_id, connection_id)
        return PsaConnectionOut.of(await connections.update(row, body.model_dump(include=body.model_fields_set)))

    return await idem.run(command)


@router.delete("/{connection_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses=error_responses(422, described=NOT_FOUND))
async def delete_connection(connection_id: uuid.UUID, user: AdminUser, connections: PsaConnectionsDep,
                            idem: Idempotent) -> Response:
    """Remove a connection: its sessions can no longer post to their tickets; the write-back log stays."""

    async def command() -> None:  # a retried key replays the 204 instead of a 404
        await connections.delete(await connections.owned(user.account_id, connection_id))

    return await idem.run(command, status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{connection_id}/test", response_model=ConnectionTestOut,
             responses=error_responses(422, described=NOT_FOUND))
async def test_connection(connection_id: uuid.UUID, user: AdminUser, connections: PsaConnectionsDep
                          ) -> ConnectionTestOut:
    """Reach the PSA and authenticate; `stage` and `detail` say which step failed."""
    ok, stage, detail = await connections.test(await connections.owned(user.account_id, connection_id))
    return ConnectionTestOut(ok=ok, stage=stage, detail=detail)


@router.get("/{connection_id}/tickets/{ticket_id}/statuses", response_model=PsaStatusListOut,
            responses=error_responses(422, described={**NOT_FOUND, **UPSTREAM}))
async def ticket_statuses(connection_id: uuid.UUID, ticket_id: TicketId, user: AdminUser,
                          connections: PsaConnectionsDep) -> PsaStatusListOut:
    """The statuses this ticket may take (ConnectWise: its board's; Autotask: the picklist; HaloPSA: its statuses)."""
    found = await connections.ticket_statuses(await connections.owned(user.account_id, connection_id), ticket_id)
    return PsaStatusListOut.of(found)


@router.get("/{connection_id}/boards/{board_id}/statuses", response_model=PsaStatusListOut,
            responses=error_responses(422, described={**NOT_FOUND, **UPSTREAM}))
async def board_statuses(connection_id: uuid.UUID, board_id: BoardId, user: AdminUser,
                         connections: PsaConnectionsDep) -> PsaStatusListOut:
    """A ConnectWise board's statuses, to pick the connection's target statuses from."""
    found = await connections.board_statuses(await connections.owned(user.account_id, connection_id), board_id)
    return PsaStatusListOut.of(found)
