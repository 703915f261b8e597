"""One owner of commits: a unit of work commits on a clean exit and rolls back otherwise, and the request's unit of
work (`SessionDep`) commits before the response is sent, so a failed commit is an error answer, never a 200."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Response
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from api.deps import SessionDep
from api.idempotency import Idempotent
from core.config import Settings
from core.errors import Conflict
from db.models import Account
from db.repositories.accounts import AccountRepository
from db.session import unit_of_work, when_settled
from tests.helpers import make_user

# A unique violation Postgres reports only at COMMIT: the statements themselves all succeed.
DEFERRED_PROBE = "CREATE TEMP TABLE uow_probe (k int UNIQUE DEFERRABLE INITIALLY DEFERRED) ON COMMIT DROP"


async def _violate_at_commit(session: AsyncSession) -> None:
    await session.execute(text(DEFERRED_PROBE))
    await session.execute(text("INSERT INTO uow_probe VALUES (1), (1)"))


async def _accounts_named(factory: async_sessionmaker[AsyncSession], name: str) -> int:
    async with factory() as session:
        return int(await session.scalar(select(func.count()).select_from(Account).where(Account.name == name)) or 0)


class _Told:
    def __init__(self) -> None:
        self.outcomes: list[bool] = []

    async def __call__(self, committed: bool) -> None:
        self.outcomes.append(committed)


async def test_a_clean_exit_commits_and_a_raise_rolls_back(session_factory: async_sessionmaker[AsyncSession]) -> None:
    kept, dropped = f"kept-{uuid.uuid4().hex}", f"dropped-{uuid.uuid4().hex}"
    told_kept, told_dropped = _Told(), _Told()
    async with unit_of_work(session_factory) as session:
        await AccountRepository(session).create(kept)
        when_settled(session, told_kept)
    with pytest.raises(Conflict):
        async with unit_of_work(session_factory) as session:
            await AccountRepository(session).create(dropped)
            when_settled(session, told_dropped)
            raise Conflict("a domain error after the write")
    assert (await _accounts_named(session_factory, kept), await _accounts_named(session_factory, dropped)) == (1, 0)
    assert (told_kept.outcomes, told_dropped.outcomes) == ([True], [False])


async def test_a_commit_that_fails_is_raised_and_reported_as_rolled_back(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    told = _Told()
    with pytest.raises(IntegrityError):
        async with unit_of_work(session_factory) as session:
            when_settled(session, told)
            await _violate_at_commit(session)
    assert told.outcomes == [False]


# --- the request's unit of work ------------------------------------------------------------------------


@pytest.fixture
async def probe_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The real app (its dependencies and error handlers) with routes that write through `SessionDep`."""
    app = create_app(settings)
    failures_left = {"keyed": 1}

    async def fails_at_commit(session: SessionDep) -> dict[str, bool]:
        await _violate_at_commit(session)
        return {"ok": True}

    async def writes(name: str, session: SessionDep) -> dict[str, bool]:
        await AccountRepository(session).create(name)
        return {"ok": True}

    async def writes_then_refuses(name: str, session: SessionDep) -> dict[str, bool]:
        await AccountRepository(session).create(name)
        raise Conflict("refused after the write")

    async def keyed(name: str, session: SessionDep, idem: Idempotent) -> Response:
        async def command() -> dict[str, str]:
            await AccountRepository(session).create(name)
            if failures_left["keyed"] > 0:  # the first attempt's commit fails, the retry's succeeds
                failures_left["keyed"] -= 1
                await _violate_at_commit(session)
            return {"name": name}

        return await idem.run(command)

    for path, endpoint in (("fails-at-commit", fails_at_commit), ("writes", writes),
                           ("writes-then-refuses", writes_then_refuses), ("keyed", keyed)):
        app.add_api_route(f"/uow-probe/{path}", endpoint, methods=["POST"])
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def probe(probe_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client that gets the app's 500 answer instead of the exception behind it."""
    transport = httpx.ASGITransport(app=probe_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
        yield client


async def test_a_commit_that_fails_is_an_error_answer_not_a_200(probe: httpx.AsyncClient) -> None:
    answer = await probe.post("/uow-probe/fails-at-commit")
    assert answer.status_code == 500, answer.text


async def test_a_route_that_returns_is_committed_by_the_time_it_answers(
    probe: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession],
) -> None:
    name = f"written-{uuid.uuid4().hex}"
    answer = await probe.post("/uow-probe/writes", params={"name": name})
    assert answer.status_code == 200, answer.text
    assert await _accounts_named(session_factory, name) == 1


async def test_a_domain_error_rolls_the_request_back(
    probe: httpx.AsyncClient, session_factory: async_sessionmaker[AsyncSession],
) -> None:
    name = f"refused-{uuid.uuid4().hex}"
    answer = await probe.post("/uow-probe/writes-then-refuses", params={"name": name})
    assert answer.status_code == 409, answer.text
    assert await _accounts_named(session_factory, name) == 0


async def test_a_keyed_answer_is_kept_only_once_its_change_committed(
    probe: httpx.AsyncClient, db: AsyncSession, session_factory: async_sessionmaker[AsyncSession],
) -> None:
    user = await make_user(probe, db)
    name = f"keyed-{uuid.uuid4().hex}"
    headers = {**user["headers"], "Idempotency-Key": f"k-{uuid.uuid4()}"}
    failed = await probe.post("/uow-probe/keyed", params={"name": name}, headers=headers)
    assert failed.status_code == 500, failed.text  # not a 200 kept for replay
    assert await _accounts_named(session_factory, name) == 0
    # The failed commit released the key: the retry runs (no 409 "still being processed", no replayed 200).
    retried = await probe.post("/uow-probe/keyed", params={"name": name}, headers=headers)
    assert retried.status_code == 200 and "Idempotent-Replayed" not in retried.headers, retried.text
    replayed = await probe.post("/uow-probe/keyed", params={"name": name}, headers=headers)
    assert replayed.headers.get("Idempotent-Replayed") == "true" and replayed.json() == {"name": name}
    assert await _accounts_named(session_factory, name) == 1
