"""Escalation emails through a real SMTP client to a local sink: category recipients, fallback, filtering."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import User
from tests.helpers import add_member, make_user
from tests.stack import StackFactory

API = "/api/v1/l1"


async def test_escalation_emails_category_recipients_then_default_fallback(
    make_stack: StackFactory, smtp_sink: Any, db: AsyncSession
) -> None:
    sink, port = smtp_sink
    async with make_stack(smtp_host="127.0.0.1", smtp_port=port) as stack:
        client = stack.client
        owner = await make_user(client, db, role="owner")
        admin = owner["headers"]
        tech = await add_member(client, admin, role="l1_tech")
        senior = await add_member(client, admin, role="engineer")
        gone = await add_member(client, admin, role="engineer")
        idle = await add_member(client, admin, role="engineer")
        fallback = await add_member(client, admin, role="admin")
        resp = await client.patch(f"{API}/categories", headers=admin, json=[{
            "name": "network",
            "escalation_recipient_ids": [senior["user"]["id"], gone["user"]["id"], idle["user"]["id"]],
        }])
        assert resp.status_code == 200, resp.text
        assert (await client.put("/api/v1/account/settings", headers=admin, json={
            "default_escalation_recipient_ids": [fallback["user"]["id"]]})).status_code == 200
        # After being configured, one recipient is deleted and one deactivated: neither may receive.
        assert (await client.delete(f"/api/v1/account/users/{gone['user']['id']}", headers=admin)).status_code == 204
        await db.execute(update(User).where(User.email == idle["user"]["email"]).values(is_active=False))
        await db.commit()

        resp = await client.post(f"{API}/escalate-without-walk", headers=tech["headers"], json={
            "problem_statement": "Switch port 12 is dead", "reason_category": "needs_onsite",
            "reason": "Hardware swap needed", "category": "network"})
        assert resp.status_code == 200, resp.text
        assert resp.json()["notified"] == [senior["user"]["email"]] and resp.json()["warning"] is None
        await sink.wait_for(1)
        [mail] = sink.to(senior["user"]["email"])
        assert "Switch port 12 is dead" in mail and "needs_onsite" in mail and "L1 escalation [network]" in mail

        # A category without recipients falls back to the account's defaults.
        resp = await client.post(f"{API}/escalate-without-walk", headers=tech["headers"], json={
            "problem_statement": "Outlook crashes", "reason_category": "needs_l2", "category": "email"})
        assert resp.json()["notified"] == [fallback["user"]["email"]]
        await sink.wait_for(2)
        assert len(sink.to(fallback["user"]["email"])) == 1
        assert not sink.to(gone["user"]["email"]) and not sink.to(idle["user"]["email"])


async def test_escalation_with_nobody_left_still_escalates_with_warning(
    make_stack: StackFactory, smtp_sink: Any, db: AsyncSession
) -> None:
    sink, port = smtp_sink
    async with make_stack(smtp_host="127.0.0.1", smtp_port=port) as stack:
        client = stack.client
        owner = await make_user(client, db, role="owner")
        tech = await add_member(client, owner["headers"], role="l1_tech")
        gone = await add_member(client, owner["headers"], role="engineer")
        await client.put("/api/v1/account/settings", headers=owner["headers"],
                         json={"default_escalation_recipient_ids": [gone["user"]["id"]]})
        await client.delete(f"/api/v1/account/users/{gone['user']['id']}", headers=owner["headers"])
        intake = await client.post(f"{API}/intake", headers=tech["headers"],
                                   json={"problem_statement": "odd issue", "adhoc": True})
        sid = intake.json()["session_id"]
        resp = await client.post(f"{API}/sessions/{sid}/escalate", headers=tech["headers"],
                                 json={"reason_category": "needs_l2"})
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == "escalated" and resp.json()["notified"] == []
        assert "nobody was notified" in resp.json()["warning"]
        got = await client.get(f"{API}/sessions/{sid}", headers=tech["headers"])
        assert got.json()["status"] == "escalated"
        assert sink.messages == []
