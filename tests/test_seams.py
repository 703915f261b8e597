"""The seams between layers, checked by the suite instead of by memory.

- the ORM models and the migrations describe the same schema (autogenerate finds nothing to do);
- every allowed-values CHECK lists the same values in the database, the model, the contract Literal that
  workflows pass and the API's Literal (one set of values per enum, wherever it is spelled);
- every activity a workflow calls by name is registered on the worker;
- the workflow modules the worker shares between workflow instances hold no mutable state;
- a fix's own fields (`FixFields`) are one list: create takes them, the row stores them, every answer shows them;
- every search attribute the code sets is declared once and registered, with its type, wherever a Temporal
  server is set up: `rflow dev`'s flags and the suite's dev server here, docker-compose's `temporal-setup` in
  tests/compose/test_compose.py.
"""

from __future__ import annotations

import collections
import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, get_args, get_origin

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pydantic import BaseModel
from sqlalchemy import CheckConstraint, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey

import activities
import services
import workflows
import workflows.contracts
from activities.registry import ActivityDeps, build_activities
from api.schemas import account as account_api
from api.schemas import ai_sessions as ai_api
from api.schemas import handoffs as handoff_api
from api.schemas import l1 as l1_api
from api.schemas import notifications as notification_api
from api.schemas import psa as psa_api
from core.temporal import search_attribute_cli_args
from db.base import Base
from db.models import SuggestedFix
from db.models.user import AccountRole
from db.repositories.access import FIX_READ_BEFORE
from db.session import make_engine
from workflows.contracts import ai_session, fix, handoff, llm, notify, psa, search_attributes, walk
from workflows.contracts.common import ActivityRef
from workflows.contracts.search_attributes import CUSTOM_SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent


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
# `status IN ('a', 'b')`, or `provider = 'connectwise'` for a single value.
_ALLOWED_VALUES = re.compile(r"^\s*(\w+)\s+(?:IN\s*\(|=\s*')")


def _field(model: type[BaseModel], name: str) -> Any:
    return model.model_fields[name].annotation


# Every allowed-values CHECK, by (table, column), and the other types that spell the same enum: the contract's
# Literal (what workflows and activities pass) and the API's. A new CHECK fails the test until it is listed here.
SAME_VALUES: dict[tuple[str, str], tuple[Any, ...]] = {
    ("subscriptions", "status"): (_field(account_api.SubscriptionOut, "status"),
                                  _field(account_api.SubscriptionUpdate, "status")),
    ("users", "account_role"): (AccountRole, _field(account_api.UserOut, "account_role"),
                                _field(account_api.CreateUserRequest, "account_role")),
    ("idempotency_keys", "state"): (),
    ("ai_sessions", "status"): (ai_session.SessionStatus, _field(ai_api.AiSessionSummaryOut, "status"),
                                _field(ai_api.PostDocumentOut, "session_status")),
    ("ai_sessions", "session_type"): (ai_session.SessionType, _field(ai_api.AiSessionSummaryOut, "session_type"),
                                      _field(ai_api.AiSessionCreate, "session_type")),
    ("ai_sessions", "intake_type"): (ai_session.IntakeType, _field(ai_api.AiSessionSummaryOut, "intake_type"),
                                     _field(ai_api.AiSessionCreate, "intake_type")),
    ("ai_sessions", "confidence_tier"): (llm.ConfidenceTier, _field(ai_api.AiSessionSummaryOut, "confidence_tier"),
                                         _field(ai_api.MessageResponse, "confidence_tier")),
    ("ai_session_messages", "role"): (llm.ChatRole, _field(ai_api.MessageOut, "role")),
    ("session_suggested_fixes", "source"): (ai_session.FixSource, _field(ai_api.FixOut, "source")),
    ("session_suggested_fixes", "status"): (fix.FixStatus, _field(ai_api.FixOut, "status")),
    ("session_handoffs", "intent"): (handoff.HandoffIntent, _field(handoff_api.HandoffOut, "intent"),
                                     _field(handoff_api.HandoffCreate, "intent")),
    ("session_handoffs", "priority"): (handoff.Priority, _field(handoff_api.HandoffOut, "priority"),
                                       _field(handoff_api.HandoffCreate, "priority")),
    ("session_handoffs", "assessment_status"): (handoff.AssessmentStatus,
                                                _field(handoff_api.HandoffOut, "assessment_status")),
    ("escalation_events", "kind"): (handoff.EscalationEventKind,),
    ("internal_tickets", "status"): (),
    ("l1_walk_sessions", "status"): (walk.WalkStatus, _field(l1_api.SessionSummaryOut, "status")),
    ("l1_walk_sessions", "session_kind"): (walk.SessionKind, _field(l1_api.SessionSummaryOut, "session_kind"),
                                           _field(l1_api.IntakeResponse, "session_kind")),
    ("flow_proposals", "status"): (_field(l1_api.ProposalOut, "status"),),
    ("notifications", "kind"): (notify.NotificationKind, _field(notification_api.NotificationOut, "kind")),
    ("notifications", "email_status"): (notify.EmailStatus, _field(notification_api.NotificationOut, "email_status")),
    ("psa_connections", "provider"): (psa.PsaProviderName,),
    # A write-back posts one of the session's documents.
    ("psa_writebacks", "kind"): (psa.WritebackKind, ai_session.DocumentKind),
    ("psa_writebacks", "state"): (psa.WritebackState, _field(psa_api.WritebackOut, "state")),
    ("psa_writebacks", "status_change"): (psa.StatusChange, _field(psa_api.WritebackOut, "status_change")),
}


def _literal_values(annotation: Any) -> set[str]:
    """The values a Literal type allows (also of `Literal[...] | None`)."""
    if get_origin(annotation) is Literal:
        return set(get_args(annotation))
    literals = [arg for arg in get_args(annotation) if get_origin(arg) is Literal]
    assert len(literals) == 1, f"{annotation} is not a Literal"
    return set(get_args(literals[0]))


def _model_checks() -> dict[str, tuple[str, str | None, set[str]]]:
    """Every model CHECK by its constraint name in the database: table, allowed-values column (or None), values."""
    checks: dict[str, tuple[str, str | None, set[str]]] = {}
    for table in Base.metadata.tables.values():
        for constraint in table.constraints:
            if isinstance(constraint, CheckConstraint):
                sql = str(constraint.sqltext)
                column = match.group(1) if (match := _ALLOWED_VALUES.match(sql)) else None
                checks[str(constraint.name)] = (table.name, column, set(_QUOTED.findall(sql)))
    return checks


async def test_every_enum_has_the_same_values_in_database_model_contract_and_api(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    model = _model_checks()
    allowed = {name: check for name, check in model.items() if check[1] is not None}
    assert len(allowed) > 20, "allowed-values checks not found: the naming changed?"
    async with session_factory() as session:
        rows = (await session.execute(text(
            "SELECT c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c"
            " JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace"
            " WHERE c.contype = 'c' AND n.nspname = current_schema()"))).all()
    stored = {name: set(_QUOTED.findall(definition)) - {""} for name, definition in rows}
    # autogenerate does not compare CHECKs: a migration's stray one would otherwise go unseen.
    assert set(stored) - set(model) == set(), "the database has CHECKs no model declares"
    assert {(table, column) for table, column, _ in allowed.values()} == set(SAME_VALUES), \
        "list each allowed-values CHECK in SAME_VALUES (with the contract and API types of its values)"
    for name, (table, column, values) in allowed.items():
        assert name in stored, f"{name} is in the models but not in the database"
        assert stored[name] == values, f"{name}: database allows {sorted(stored[name])}, model {sorted(values)}"
        for other in SAME_VALUES[(table, str(column))]:
            assert _literal_values(other) == values, f"{table}.{column}: {other} allows other values than the model"


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


def test_workflow_modules_keep_no_mutable_state() -> None:
    # The worker shares our workflow modules between workflow instances instead of re-importing them in each
    # one's sandbox (worker.py `SANDBOX`): a list, dict or set at module or class level would be state one
    # workflow could change under another, or under its own replay. Pydantic models copy their defaults.
    mutable = (list, dict, set, bytearray, collections.deque)
    found = []
    for info in pkgutil.walk_packages(workflows.__path__, "workflows."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, mutable) and not name.startswith("__"):
                found.append(f"{info.name}.{name}")
            if (inspect.isclass(value) and value.__module__ == info.name and not issubclass(value, BaseModel)):
                found += [f"{info.name}.{value.__qualname__}.{attr}" for attr, held in vars(value).items()
                          if isinstance(held, mutable) and not attr.startswith("__")]
    assert found == [], "make these read-only (a tuple, a frozenset, a MappingProxyType) or per-instance state"


def test_a_fixs_own_fields_are_one_list_taken_on_create_stored_and_answered() -> None:
    """Adding a field to a fix is `FixFields`, the model, `FixCreate` and `FixOut` (and a migration): the route,
    the activity, the repository and the access read pass them on without naming them, so these must agree."""
    own = set(ai_session.FixFields.model_fields)
    columns = set(SuggestedFix.__table__.columns.keys())
    assert own == set(ai_api.FixCreate.model_fields), "create takes exactly the fix's own fields"
    assert own <= columns, "each of the fix's own fields is a column of the row"
    assert own <= set(ai_api.FixOut.model_fields), "each of the fix's own fields is answered"
    # A command's answer is what the access read found plus the command's FixView: each answered field is one.
    assert set(ai_api.FixOut.model_fields) <= set(FIX_READ_BEFORE) | set(fix.FixView.model_fields)
    assert set(FIX_READ_BEFORE) <= columns
    assert set(fix.FixView.model_fields) <= columns


def _source_files() -> list[Path]:
    """The application's Python source (not the tests, which set servers up)."""
    dirs = ("activities", "api", "cli", "core", "db", "integrations", "services", "workflows")
    return sorted(path for d in dirs for path in (ROOT / d).rglob("*.py")) + sorted(ROOT.glob("*.py"))


def _keys_held_by(package: ModuleType) -> set[SearchAttributeKey[Any]]:
    keys: set[SearchAttributeKey[Any]] = set()
    for module_info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
        module = importlib.import_module(module_info.name)
        keys |= {value for value in vars(module).values() if isinstance(value, SearchAttributeKey)}
    return keys


def test_every_search_attribute_the_code_sets_is_declared_and_in_rflow_devs_flags() -> None:
    # One place declares keys: a key built elsewhere, or set by bare name, would escape CUSTOM_SEARCH_ATTRIBUTES.
    declared = Path(search_attributes.__file__).resolve()
    spelled_elsewhere = [str(path.relative_to(ROOT)) for path in _source_files() if path != declared and re.search(
        r"SearchAttributeKey|search_attributes\(\s*\{|search_attributes=\{", path.read_text())]
    assert spelled_elsewhere == [], "declare search attributes in workflows/contracts/search_attributes.py"
    in_use = set().union(*(_keys_held_by(package) for package in (workflows, services, activities)))
    assert in_use, "no module holds a search attribute key: the imports changed?"
    assert in_use <= set(CUSTOM_SEARCH_ATTRIBUTES), "a key the code sets is not in CUSTOM_SEARCH_ATTRIBUTES"
    declared_keys = {v for v in vars(search_attributes).values() if isinstance(v, SearchAttributeKey)}
    assert declared_keys == set(CUSTOM_SEARCH_ATTRIBUTES), "a declared key is missing from CUSTOM_SEARCH_ATTRIBUTES"
    # `rflow dev` starts its server with these flags (`--search-attribute Name=Type`).
    args = search_attribute_cli_args()
    assert set(args[0::2]) == {"--search-attribute"}
    assert dict(flag.split("=") for flag in args[1::2]) == {
        key.name: "".join(part.capitalize() for part in key.indexed_value_type.name.split("_"))
        for key in CUSTOM_SEARCH_ATTRIBUTES}


async def test_every_search_attribute_is_registered_with_its_type_on_the_suites_server(
    temporal_client: Client,
) -> None:
    # (The time-skipping server cannot list them: it does not implement ListSearchAttributes.)
    listed = await temporal_client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=temporal_client.namespace))
    expected = {key.name: int(key.indexed_value_type) for key in CUSTOM_SEARCH_ATTRIBUTES}
    assert {name: listed.custom_attributes.get(name) for name in expected} == expected
