"""A parked fix is not forgotten: its reminders survive the worker going away, on the real dev server.

Dev mode allows reminders seconds apart, so this runs in real time: park with PT2S/PT4S reminders,
stop the worker before the first is due, start another, and the reminders still arrive in
`/notifications` and as mail.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from tests.ai_sessions.support import outcome_url, session_with_fix
from tests.helpers import make_user
from tests.stack import SmtpSink, StackFactory
from worker import build_worker
from workflows.contracts.fix import QUERY_FIX_STATE, FixControl, fix_workflow_id


async def _notifications(client: Any, headers: dict[str, str], count: int, seconds: float = 20) -> dict[str, Any]:
    async with asyncio.timeout(seconds):
        while True:
            body: dict[str, Any] = (await client.get("/api/v1/notifications", headers=headers)).json()
            # Both, not the total alone: the list and its count are two reads, and a reminder may land between them.
            if body["total"] >= count and len(body["items"]) >= count:
                return body
            await asyncio.sleep(0.2)


async def test_a_parked_fix_still_reminds_after_the_worker_restarts(
    make_stack: StackFactory, temporal_client: Client, db: AsyncSession, smtp_sink: tuple[SmtpSink, int]
) -> None:
    sink, port = smtp_sink
    async with make_stack(with_worker=False, smtp_host="127.0.0.1", smtp_port=port) as stack:
        client, queue = stack.client, stack.settings.temporal_task_queue
        owner = await make_user(client, db, role="owner")
        headers = owner["headers"]
        settings = await client.put("/api/v1/account/settings", headers=headers, json={
            "pending_verification_reminders": ["PT3S", "PT5S"], "verification_overdue_after": "PT1H"})
        assert settings.status_code == 200, settings.text

        async with build_worker(temporal_client, stack.deps, task_queue=queue):
            session_id, fix_id = await session_with_fix(client, headers)
            parked = await client.patch(outcome_url(session_id, fix_id), headers=headers,
                                        json={"outcome": "applied_pending", "notes": "waiting on AD replication"})
            assert parked.status_code == 200, parked.text
            assert parked.json()["next_reminder_at"] is not None
        # No worker while the first reminder falls due.
        await asyncio.sleep(3.5)
        assert (await client.get("/api/v1/notifications", headers=headers)).json()["total"] == 0

        async with build_worker(temporal_client, stack.deps, task_queue=queue):
            body = await _notifications(client, headers, 2)
            assert [n["kind"] for n in body["items"]] == ["fix_verification_reminder"] * 2
            assert all(n["fix_id"] == fix_id and n["session_id"] == session_id for n in body["items"])
            assert "waiting on AD replication" in body["items"][0]["title"]
            await sink.wait_for(2)
            assert len(sink.to(owner["email"])) == 2
            state = await temporal_client.get_workflow_handle(fix_workflow_id(fix_id)).query(
                QUERY_FIX_STATE, result_type=FixControl)
            assert state.fired == 2 and state.status == "applied_pending"
            url = f"/api/v1/ai-sessions/{session_id}/suggested-fixes/{fix_id}"
            fix = (await client.get(url, headers=headers)).json()
            assert fix["next_reminder_at"] == state.next_reminder_at.isoformat().replace("+00:00", "Z")  # the overdue
