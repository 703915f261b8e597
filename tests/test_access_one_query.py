"""Auth and tenancy in one query: what a command sends to Postgres before its workflow, and who is refused."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from httpx import AsyncClient
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

from db import session as db_session
from services.workflow_client import WorkflowClient
from tests.ai_sessions.support import API as AI_API
from tests.ai_sessions.support import outcome_url, session_with_fix
from tests.handoffs.support import claim, escalated, make_handoff_desk, open_session
from tests.helpers import make_user, set_subscription
from tests.l1.support import create_flow, intake, team

L1_API = "/api/v1/l1"
WORKFLOW = "-- the workflow command"
POWER = {"node_id": "power", "question": "Is the printer's power light on?", "answer": "Yes"}
USERS = re.compile(r"\busers\b")


@dataclass
class Trace:
    """SQL statements (WORKFLOW marks the command), asyncpg's unprepared queries (BEGIN, ';' pings) and checkouts."""

    statements: list[str] = field(default_factory=list)
    round_trips: list[str] = field(default_factory=list)
    checkouts: int = 0


@contextmanager
def traced(app: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Trace]:
    """Record what the app's own engine does (the worker's activities use another engine)."""
    trace = Trace()
    engine, pool = app.state.engine.sync_engine, app.state.engine.sync_engine.pool
    original = WorkflowClient.update
    watched: list[Any] = []

    async def update(self: WorkflowClient, *args: Any, **kwargs: Any) -> Any:
        trace.statements.append(WORKFLOW)
        return await original(self, *args, **kwargs)

    def before_cursor_execute(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        trace.statements.append(statement)

    def logged(record: Any) -> None:
        trace.round_trips.append(record.query)

    def checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        # Inserted first, so the logger is on before the idle-ping listener runs.
        trace.checkouts += 1
        driver = dbapi_connection.driver_connection
        driver.add_query_logger(logged)
        watched.append(driver)

    with monkeypatch.context() as patched:
        patched.setattr(WorkflowClient, "update", update)
        event.listen(engine, "before_cursor_execute", before_cursor_execute)
        event.listen(pool, "checkout", checkout, insert=True)
        try:
            yield trace
        finally:
            event.remove(pool, "checkout", checkout)
            event.remove(engine, "before_cursor_execute", before_cursor_execute)
            for driver in watched:
                driver.remove_query_logger(logged)


async def _settled() -> None:
    await asyncio.sleep(0)  # asyncpg hands query-log records over with call_soon


def _joined_read(statement: str, *tables: str) -> bool:
    text = " ".join(statement.split())
    return text.startswith("SELECT") and "FROM users" in text and all(t in text for t in ("subscriptions", *tables))


async def test_a_walk_step_reads_caller_and_walk_in_one_statement_without_pings(
    app: Any, client: AsyncClient, db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = await team(client, db)
    flow = await create_flow(client, t["owner"]["headers"])
    tech = t["tech"]["headers"]
    sid = (await intake(client, tech, problem_statement="It will not print", flow_id=flow["id"]))["session_id"]
    monkeypatch.setattr(db_session, "IDLE_PING_AFTER_S", 3600.0)  # every pooled connection was used "just now"

    with traced(app, monkeypatch) as trace:
        step = await client.post(f"{L1_API}/sessions/{sid}/step", headers=tech, json=POWER)
        await _settled()

    assert step.status_code == 200, step.text
    # One read before the workflow, none after it: the step answers the walk it read plus what it wrote.
    assert trace.statements == [trace.statements[0], WORKFLOW], trace.statements
    stored = (await client.get(f"{L1_API}/sessions/{sid}", headers=tech)).json()
    assert step.json()["session"] == {k: v for k, v in stored.items() if k != "walk_notes"}, (step.json(), stored)
    assert step.json()["session"]["depth"] == 1 and step.json()["session"]["walked_path"][0]["answer"] == "Yes"
    assert _joined_read(trace.statements[0], "l1_walk_sessions"), trace.statements[0]
    assert len([s for s in trace.statements if USERS.search(s)]) == 1, trace.statements
    # Autocommit reads on recently used connections: no BEGIN/COMMIT/ROLLBACK, no ping.
    assert trace.checkouts >= 1 and trace.round_trips == [], (trace.checkouts, trace.round_trips)

    # The same watch sees pings once connections count as idle: the empty list above is no blind spot.
    monkeypatch.setattr(db_session, "IDLE_PING_AFTER_S", 0.0)
    with traced(app, monkeypatch) as trace:
        paper = {"node_id": "paper", "question": "Is there paper in the tray?", "answer": "No"}
        again = await client.post(f"{L1_API}/sessions/{sid}/step", headers=tech, json=paper)
        await _settled()
    assert again.status_code == 200, again.text
    pings = [q for q in trace.round_trips if q.strip() == ";"]
    assert trace.checkouts >= 1 and len(pings) == trace.checkouts, (trace.checkouts, trace.round_trips)


async def test_fix_routes_read_the_caller_once_joined_with_the_fix(
    app: Any, client: AsyncClient, db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = (await make_user(client, db, role="engineer"))["headers"]
    sid, fid = await session_with_fix(client, h)

    with traced(app, monkeypatch) as read:
        got = await client.get(f"{AI_API}/{sid}/suggested-fixes/{fid}", headers=h)
    assert got.status_code == 200, got.text
    assert _joined_read(read.statements[0], "session_suggested_fixes"), read.statements[0]
    assert len([s for s in read.statements if USERS.search(s)]) == 1, read.statements

    for body in ({"outcome": "applied_pending", "notes": "waiting on AD replication"},
                 {"outcome": "applied_success"}):
        with traced(app, monkeypatch) as command:
            patched = await client.patch(outcome_url(sid, fid), headers=h, json=body)
        assert patched.status_code == 200, patched.text
        # One read before the workflow, none after it: the update answers what the route returns.
        assert command.statements == [command.statements[0], WORKFLOW], command.statements
        assert _joined_read(command.statements[0], "session_suggested_fixes"), command.statements[0]
        stored = await client.get(f"{AI_API}/{sid}/suggested-fixes/{fid}", headers=h)
        assert patched.json() == stored.json(), (patched.json(), stored.json())
    assert patched.json()["status"] == "applied_success" and patched.json()["next_reminder_at"] is None


# --- tenancy and refusals through the joined read -------------------------------------------------------


async def test_a_deactivated_users_token_is_401_on_owned_entity_routes(client: AsyncClient, db: AsyncSession) -> None:
    t = await team(client, db)
    flow = await create_flow(client, t["owner"]["headers"])
    tech = t["tech"]["headers"]
    sid = (await intake(client, tech, problem_statement="It will not print", flow_id=flow["id"]))["session_id"]
    off = await client.patch(f"/api/v1/account/users/{t['tech']['user']['id']}", headers=t["owner"]["headers"],
                             json={"is_active": False})
    assert off.status_code == 200 and off.json()["is_active"] is False, off.text

    for path, payload in (("step", POWER), ("notes", {"notes": [{"text": "x", "ts": "2026-05-28T10:00:00Z"}]}),
                          ("resolve", {"helpful": True})):
        resp = await client.post(f"{L1_API}/sessions/{sid}/{path}", headers=tech, json=payload)
        assert resp.status_code == 401, (path, resp.text)
    got = (await client.get(f"{L1_API}/sessions/{sid}", headers=t["owner"]["headers"])).json()
    assert got["status"] == "active" and got["walked_path"] == []


async def test_a_handoff_under_another_session_of_the_same_account_is_404(
    client: AsyncClient, db: AsyncSession
) -> None:
    desk = await make_handoff_desk(client, db)
    session_id, handoff = await escalated(client, desk.engineer.headers)
    other = await open_session(client, desk.engineer.headers, "Printer jams on tray two")

    wrong = await claim(client, desk.senior.headers, other["id"], handoff["id"])
    assert wrong.status_code == 404, wrong.text
    right = await claim(client, desk.senior.headers, session_id, handoff["id"])
    assert right.status_code == 200, right.text


async def test_subscription_status_and_entity_status_do_not_shadow_each_other(
    client: AsyncClient, db: AsyncSession
) -> None:
    trialing = (await make_user(client, db, role="engineer", subscription="trialing"))["headers"]
    sid, fid = await session_with_fix(client, trialing)  # the fix is 'proposed', the session 'active'
    applied = await client.post(f"{AI_API}/{sid}/suggested-fixes/{fid}/apply", headers=trialing)
    assert applied.status_code == 200 and applied.json()["status"] == "proposed", applied.text
    done = await client.patch(outcome_url(sid, fid), headers=trialing, json={"outcome": "applied_success"})
    assert done.status_code == 200 and done.json()["status"] == "applied_success", done.text

    past_due = await make_user(client, db, role="engineer")
    sid, fid = await session_with_fix(client, past_due["headers"])
    await set_subscription(db, past_due["account_id"], "past_due")
    refused = await client.patch(outcome_url(sid, fid), headers=past_due["headers"],
                                 json={"outcome": "applied_success"})
    assert refused.status_code == 402 and "'past_due'" in refused.json()["detail"], refused.text
    still = await client.get(f"{AI_API}/{sid}/suggested-fixes/{fid}", headers=past_due["headers"])
    assert still.json()["status"] == "proposed"

    walker = await team(client, db)
    await set_subscription(db, walker["account_id"], "trialing")
    flow = await create_flow(client, walker["owner"]["headers"])
    tech = walker["tech"]["headers"]
    walk = (await intake(client, tech, problem_statement="It will not print", flow_id=flow["id"]))["session_id"]
    step = await client.post(f"{L1_API}/sessions/{walk}/step", headers=tech, json=POWER)
    assert step.status_code == 200 and step.json()["next_node"]["id"] == "paper", step.text
