"""The seams between layers, checked by the suite instead of by memory.

- the ORM models and the migrations describe the same schema (autogenerate finds nothing to do);
- every allowed-values CHECK in the database lists exactly the values the models (and contracts) allow;
- every activity a workflow calls by name is registered on the worker.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import CheckConstraint, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client

import workflows.contracts
from activities.registry import ActivityDeps, build_activities
from db.base import Base
from db.session import make_engine
from workflows.contracts.common import ActivityRef


async def test_models_match_the_migrations(database_url: str) -> None:
    engine = make_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync, opts={"compare_type": True}),
                                              Base.metadata))
    finally:
        await engine.dispose()
    assert diff == [], f"models and migrations disagree (write a migration): {diff}"


_QUOTED = re.compile(r"'([^']*)'")


def _allowed_values_checks() -> dict[str, set[str]]:
    """Every model CHECK of the form `column IN (...)`, by its constraint name in the database."""
    checks: dict[str, set[str]] = {}
    for table in Base.metadata.tables.values():
        for constraint in table.constraints:
            if isinstance(constraint, CheckConstraint) and " IN " in str(constraint.sqltext):
                checks[str(constraint.name)] = set(_QUOTED.findall(str(constraint.sqltext)))
    return checks


async def test_every_allowed_values_check_matches_its_model(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    expected = _allowed_values_checks()
    assert expected, "no allowed-values checks found: the naming changed?"
    async with session_factory() as session:
        rows = (await session.execute(text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'c'"))).all()
    stored = {name: set(_QUOTED.findall(definition)) - {""} for name, definition in rows}
    for name, values in expected.items():
        assert name in stored, f"{name} is in the models but not in the database"
        assert stored[name] == values, f"{name}: database allows {sorted(stored[name])}, models {sorted(values)}"


def _activity_refs() -> dict[str, Any]:
    refs: dict[str, Any] = {}
    for module_info in pkgutil.iter_modules(workflows.contracts.__path__):
        module = importlib.import_module(f"workflows.contracts.{module_info.name}")
        for value in vars(module).values():
            if isinstance(value, ActivityRef):
                refs[value.name] = value
    return refs


def test_every_activity_a_workflow_calls_is_registered(activity_deps: ActivityDeps,
                                                       temporal_client: Client) -> None:
    called = _activity_refs()
    assert len(called) > 20
    registered = set()
    for fn in build_activities(activity_deps, temporal_client):
        definition = activity._Definition.from_callable(fn)
        assert definition is not None and definition.name is not None
        registered.add(definition.name)
    assert set(called) - registered == set(), "workflows call activities no worker registers"
