"""`Idempotency-Key` on every state-changing request (draft-ietf-httpapi-idempotency-key-header).

The first answer is kept in Postgres per (account, user, key) with a fingerprint of the request for 24 h:
a retry with the same body replays it (status and body, even after the workflow behind it ended),
the same key with another body is a 422, and the same key while the first is still running a 409.
Answers a retry could change (5xx, 429) are not kept: the key is released for the retry.
A key belongs to the user who sent it: the same key from another user of the account is that user's own
request (its own answer, entity ids and workflow update ids), so nobody is ever replayed another's answer.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.deps import CurrentUser, request_unit_of_work
from api.errors import EXAMPLES, status_for
from api.schemas.common import ErrorOut, ValidationErrorOut
from core.errors import Conflict, DomainError, UnprocessableRequest
from db.repositories.idempotency import IdempotencyRepository
from db.session import when_settled

log = logging.getLogger(__name__)
RETENTION = timedelta(hours=24)
# Longer than any command's bounds (accept + result): a claim older than this was abandoned.
LEASE = timedelta(minutes=5)
PURGE_CHANCE = 0.01  # about one keyed request in a hundred sweeps expired keys
REPLAYED_HEADER = "Idempotent-Replayed"

IdempotencyKeyHeader = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:-]+$",
    description="Send the same key when retrying: the command is applied once and its first answer (status "
                "and body) replayed for 24 h. The same key with another body is a 422, while the first request "
                "is still running a 409. Letters, digits and . _ : - only (a UUID is ideal).",
    examples=["5f0c6d1e-8a4b-4f1e-9c3a-2b7d0e6f1a90"],
)]


def fingerprint(method: str, path: str, body: bytes) -> str:
    """A hash of what makes two requests the same: method, path and the body (JSON compared by value)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode() if body else b""
    except ValueError:
        canonical = body
    return hashlib.sha256(b"\n".join([method.encode(), path.encode(), canonical])).hexdigest()


class IdempotentCommand:
    """Runs one command under the request's key (or plainly when it has none)."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession], account_id: uuid.UUID,
                 user_id: uuid.UUID, key: str | None, method: str, path: str, request_hash: str,
                 request_session: Callable[[], AsyncSession | None]) -> None:
        self._session_factory = session_factory
        self._request_session = request_session
        self._account_id = account_id
        self._user_id = user_id
        self._client_key = key
        # What commands pass on as their workflow update id: scoped to the user, so Temporal's own
        # de-duplication by update id never hands one user's result to another.
        self.key = f"{key}@{user_id.hex}" if key is not None else None
        self._method, self._path, self._hash = method, path, request_hash

    def entity_id(self, kind: str) -> uuid.UUID:
        """The id of an entity this command creates: derived from key and request, so a retry reuses it."""
        if self.key is None:
            return uuid.uuid4()
        return uuid.uuid5(uuid.NAMESPACE_URL, f"rflow:{self._account_id}:{self.key}:{self._hash}:{kind}")

    async def run(self, command: Callable[[], Awaitable[Any]], *, status_code: int = 200) -> Response:
        """The command's answer (models, lists of them, or None for no body) as JSON, stored for replay; or the
        stored answer of the first request."""
        if self._client_key is None:
            return _answer(await command(), status_code)
        replay = await self._claim()
        if replay is not None:
            return replay
        try:
            result = await command()
        except DomainError as exc:
            status = status_for(exc)
            if status >= 500 or status == 429:
                await self._release()
            else:
                await self._complete(status, {"detail": exc.detail})
            raise
        except BaseException:
            await self._release()
            raise
        body = _jsonable(result)
        request_session = self._request_session()
        if request_session is None:  # the command committed what it changed itself (a workflow, its own unit)
            await self._complete(status_code, body)
        else:
            # Kept once the request's unit of work has committed what the command changed (released if that
            # commit fails): a replayed answer always describes a change that happened.
            when_settled(request_session, self._settle(status_code, body))
        return _response(body, status_code)

    def _settle(self, status: int, body: Any) -> Callable[[bool], Awaitable[None]]:
        async def settle(committed: bool) -> None:
            await (self._complete(status, body) if committed else self._release())

        return settle

    async def _claim(self) -> Response | None:
        assert self._client_key is not None
        now = datetime.now(UTC)
        async with self._session_factory() as session, session.begin():
            repo = IdempotencyRepository(session)
            claim = await repo.claim(self._account_id, self._user_id, self._client_key, fingerprint=self._hash,
                                     method=self._method, path=self._path, now=now, lease=LEASE, ttl=RETENTION)
            if claim.outcome == "claimed" and random.random() < PURGE_CHANCE:
                purged = await repo.purge_expired(now)
                log.info("purged %d expired idempotency keys", purged)
        if claim.outcome == "mismatch":
            raise UnprocessableRequest("This Idempotency-Key was already used with a different request (another "
                                       "path or body); use a new key for a new request")
        if claim.outcome == "in_flight":
            raise Conflict("A request with this Idempotency-Key is still being processed; retry in a moment")
        if claim.outcome == "replay":
            return _response(claim.response_body, claim.response_status or 200, {REPLAYED_HEADER: "true"})
        return None

    async def _complete(self, status: int, body: Any) -> None:
        assert self._client_key is not None
        try:
            async with self._session_factory() as session, session.begin():
                await IdempotencyRepository(session).complete(self._account_id, self._user_id, self._client_key,
                                                              status=status, body=body)
        except Exception:
            # The command ran: its answer still goes out. A retry meets the claim (409) until the lease
            # ends, then runs again, and the workflow's update id (the key) keeps that from applying twice.
            log.exception("could not store the answer for idempotency key %s", self._client_key)

    async def _release(self) -> None:
        assert self._client_key is not None
        try:
            async with self._session_factory() as session, session.begin():
                await IdempotencyRepository(session).release(self._account_id, self._user_id, self._client_key)
        except Exception:  # the lease expires on its own; the original error matters more
            log.exception("could not release idempotency key %s", self._client_key)


def _jsonable(result: Any) -> Any:
    """The answer as JSON-ready data. Models go through pydantic's own serializer: `jsonable_encoder` walks the
    dumped dict again in Python (0.12 ms for a walk step's answer after 10 steps, 0.43 ms after 50)."""
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json", by_alias=True)
    if isinstance(result, list) and all(isinstance(item, BaseModel) for item in result):
        return [item.model_dump(mode="json", by_alias=True) for item in result]
    return jsonable_encoder(result)


def _answer(result: Any, status_code: int) -> Response:
    """An answer that is not kept for replay: a model is serialized straight to JSON bytes."""
    if isinstance(result, BaseModel):
        return Response(result.model_dump_json(by_alias=True), status_code=status_code,
                        media_type="application/json")
    return _response(_jsonable(result), status_code)


def _response(body: Any, status_code: int, headers: dict[str, str] | None = None) -> Response:
    if body is None:  # e.g. 204 No Content
        return Response(status_code=status_code, headers=headers)
    return JSONResponse(body, status_code=status_code, headers=headers)


async def get_idempotent_command(
    request: Request, user: CurrentUser, key: IdempotencyKeyHeader = None
) -> IdempotentCommand:
    """The request's idempotency context (the body is hashed only when a key was sent)."""
    request_hash = fingerprint(request.method, request.url.path, await request.body()) if key else ""
    return IdempotentCommand(request.app.state.session_factory, user.account_id, user.id, key, request.method,
                             request.url.path, request_hash, functools.partial(request_unit_of_work, request))


Idempotent = Annotated[IdempotentCommand, Depends(get_idempotent_command)]


def document_idempotency(app: FastAPI) -> None:
    """Every operation that takes an Idempotency-Key documents its 409 (in flight) and 422 (reused key)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.setdefault("ErrorOut", ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}"))
        components.setdefault("ValidationErrorOut",
                              ValidationErrorOut.model_json_schema(ref_template="#/components/schemas/{model}"))
        for operations in schema.get("paths", {}).values():
            for op in operations.values():
                if not any(p.get("name") == "Idempotency-Key" for p in op.get("parameters", [])):
                    continue
                responses = op.setdefault("responses", {})
                responses.setdefault("409", _documented("ErrorOut", "The state does not allow this, or a request "
                                                                   "with this Idempotency-Key is still running"))
                responses["409"]["content"]["application/json"].setdefault("example", {"detail": EXAMPLES[409]})
                responses["422"] = _documented("ValidationErrorOut", "The body is invalid, or this Idempotency-Key "
                                                                     "was used with another request")
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _documented(model: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}}}
