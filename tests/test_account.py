"""Account, users, roles, subscription and settings (the 402/403/404 half of the auth matrix)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from api.app import create_app
from api.deps import ActiveSubscription, CurrentUser
from core.config import Settings
from tests.helpers import PASSWORD, add_member, make_user, set_subscription, unique_email

ROLES = ["viewer", "l1_tech", "engineer", "admin", "owner"]


async def test_account_shows_subscription(client: AsyncClient, db: AsyncSession) -> None:
    owner = await make_user(client, db, subscription=None)
    resp = await client.get("/api/v1/account", headers=owner["headers"])
    assert resp.status_code == 200
    assert resp.json()["id"] == owner["account_id"]
    assert resp.json()["subscription"]["plan"] == "pro"
    assert resp.json()["subscription"]["status"] == "trialing"


@pytest.mark.parametrize("role", ROLES)
async def test_only_admin_and_owner_may_add_users(client: AsyncClient, db: AsyncSession, role: str) -> None:
    actor = await make_user(client, db, role=role)
    resp = await client.post("/api/v1/account/users", headers=actor["headers"], json={
        "email": unique_email(), "name": "New", "password": PASSWORD, "account_role": "engineer"})
    if role in ("admin", "owner"):
        assert resp.status_code == 201, resp.text
        assert resp.json()["account_id"] == actor["account_id"]
    else:
        assert resp.status_code == 403
        assert "admin" in resp.json()["detail"]


async def test_admin_cannot_grant_owner_or_touch_an_owner(client: AsyncClient, db: AsyncSession) -> None:
    owner = await make_user(client, db)
    admin = await add_member(client, owner["headers"], role="admin")
    grant = await client.post("/api/v1/account/users", headers=admin["headers"], json={
        "email": unique_email(), "name": "X", "password": PASSWORD, "account_role": "owner"})
    assert grant.status_code == 403
    demote = await client.patch(f"/api/v1/account/users/{owner['user']['id']}", headers=admin["headers"],
                                json={"account_role": "viewer"})
    assert demote.status_code == 403


async def test_patch_and_delete_user_of_another_account_is_404(client: AsyncClient, db: AsyncSession) -> None:
    a = await make_user(client, db)
    b = await make_user(client, db)
    victim = b["user"]["id"]
    assert (await client.patch(f"/api/v1/account/users/{victim}", headers=a["headers"],
                               json={"account_role": "viewer"})).status_code == 404
    assert (await client.delete(f"/api/v1/account/users/{victim}", headers=a["headers"])).status_code == 404
    me = await client.get("/api/v1/auth/me", headers=b["headers"])
    assert me.json()["account_role"] == "owner"


async def test_role_change_and_soft_delete_round_trip(client: AsyncClient, db: AsyncSession) -> None:
    owner = await make_user(client, db)
    tech = await add_member(client, owner["headers"], role="l1_tech")
    uid = tech["user"]["id"]
    promoted = await client.patch(f"/api/v1/account/users/{uid}", headers=owner["headers"],
                                  json={"account_role": "engineer"})
    assert promoted.status_code == 200 and promoted.json()["account_role"] == "engineer"
    assert (await client.delete(f"/api/v1/account/users/{uid}", headers=owner["headers"])).status_code == 204
    listed = await client.get("/api/v1/account/users", headers=owner["headers"])
    assert uid not in [u["id"] for u in listed.json()]
    again = await client.delete(f"/api/v1/account/users/{uid}", headers=owner["headers"])
    assert again.status_code == 404


async def test_users_list_paginates(client: AsyncClient, db: AsyncSession) -> None:
    owner = await make_user(client, db)
    for _ in range(3):
        await add_member(client, owner["headers"], role="viewer")
    page1 = await client.get("/api/v1/account/users?limit=2&offset=0", headers=owner["headers"])
    page2 = await client.get("/api/v1/account/users?limit=2&offset=2", headers=owner["headers"])
    ids = [u["id"] for u in page1.json() + page2.json()]
    assert len(page1.json()) == 2 and len(page2.json()) == 2 and len(set(ids)) == 4
    bad = await client.get("/api/v1/account/users?limit=0", headers=owner["headers"])
    assert bad.status_code == 422


async def test_owner_cannot_demote_or_delete_themselves(client: AsyncClient, db: AsyncSession) -> None:
    owner = await make_user(client, db)
    uid = owner["user"]["id"]
    demote = await client.patch(f"/api/v1/account/users/{uid}", headers=owner["headers"],
                                json={"account_role": "viewer"})
    assert demote.status_code == 400 and "yourself" in demote.json()["detail"]
    assert (await client.delete(f"/api/v1/account/users/{uid}", headers=owner["headers"])).status_code == 400


async def test_a_user_token_cannot_change_the_plan(client: AsyncClient, db: AsyncSession) -> None:
    owner = await make_user(client, db, subscription="past_due")
    body = {"account_id": owner["account_id"], "plan": "enterprise", "status": "active"}
    resp = await client.put("/api/v1/account/subscription", headers=owner["headers"], json=body)
    assert resp.status_code == 401
    assert "X-Billing-Secret" in resp.json()["detail"] and "user token" in resp.json()["detail"]
    wrong = await client.put("/api/v1/account/subscription", json=body,
                             headers={**owner["headers"], "X-Billing-Secret": "guessed-" + "x" * 40})
    assert wrong.status_code == 401 and wrong.json()["detail"] == "Invalid billing secret"
    account = (await client.get("/api/v1/account", headers=owner["headers"])).json()
    assert (account["subscription"]["plan"], account["subscription"]["status"]) == ("pro", "past_due")


async def test_the_billing_system_sets_any_accounts_subscription(client: AsyncClient, db: AsyncSession,
                                                                 settings: Settings) -> None:
    owner = await make_user(client, db, subscription=None)
    billing = {"X-Billing-Secret": settings.billing_secret}
    body = {"account_id": owner["account_id"], "plan": "team", "status": "past_due"}
    resp = await client.put("/api/v1/account/subscription", headers=billing, json=body)
    assert resp.status_code == 200, resp.text
    assert (resp.json()["plan"], resp.json()["status"]) == ("team", "past_due")
    account = (await client.get("/api/v1/account", headers=owner["headers"])).json()
    assert (account["subscription"]["plan"], account["subscription"]["status"]) == ("team", "past_due")
    unknown = await client.put("/api/v1/account/subscription", headers=billing,
                               json={**body, "account_id": str(uuid.uuid4())})
    assert unknown.status_code == 404
    for bad in ({**body, "status": "free-forever"}, {"plan": "pro", "status": "active"},
                {**body, "account_id": "not-a-uuid"}):
        assert (await client.put("/api/v1/account/subscription", headers=billing, json=bad)).status_code == 422


async def test_the_billing_hook_is_503_when_billing_is_not_configured(
        client: AsyncClient, db: AsyncSession, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    owner = await make_user(client, db)
    secret = settings.billing_secret
    monkeypatch.setattr(settings, "billing_secret", "")
    body = {"account_id": owner["account_id"], "plan": "pro", "status": "active"}
    for headers in (owner["headers"], {"X-Billing-Secret": secret}, {"X-Billing-Secret": ""}):
        resp = await client.put("/api/v1/account/subscription", headers=headers, json=body)
        assert resp.status_code == 503, resp.text
        assert "Billing is not configured" in resp.json()["detail"]


async def test_settings_merge_and_null_removes(client: AsyncClient, db: AsyncSession) -> None:
    owner = await make_user(client, db)
    h = owner["headers"]
    first = await client.put("/api/v1/account/settings", headers=h,
                             json={"cw_resolved_status_id": 42, "custom_flag": "x"})
    assert first.status_code == 200
    second = await client.put("/api/v1/account/settings", headers=h, json={"cw_escalated_status_id": 57})
    assert second.json()["preferences"] == {"cw_resolved_status_id": 42, "cw_escalated_status_id": 57,
                                            "custom_flag": "x"}
    cleared = await client.put("/api/v1/account/settings", headers=h, json={"custom_flag": None})
    assert "custom_flag" not in cleared.json()["preferences"]
    got = await client.get("/api/v1/account/settings", headers=h)
    assert got.json()["preferences"] == {"cw_resolved_status_id": 42, "cw_escalated_status_id": 57}
    bad = await client.put("/api/v1/account/settings", headers=h, json={"cw_resolved_status_id": "abc"})
    assert bad.status_code == 422
    engineer = await add_member(client, h, role="engineer")
    assert (await client.get("/api/v1/account/settings", headers=engineer["headers"])).status_code == 403


def _install_gated_stub(app: FastAPI) -> None:
    # A stub route guarded like the AI-session and L1 writes, so the gate is tested on its own.
    if any(getattr(r, "path", "") == "/_test/gated" for r in app.routes):
        return

    async def gated(user: CurrentUser) -> dict[str, Any]:
        return {"ok": True, "user": str(user.id)}

    app.add_api_route("/_test/gated", gated, methods=["POST"], dependencies=[ActiveSubscription],
                      include_in_schema=False)


@pytest.mark.parametrize(("status", "expected"), [("active", 200), ("trialing", 200), ("past_due", 402),
                                                  ("canceled", 402), ("unpaid", 402)])
async def test_subscription_gate(client: AsyncClient, db: AsyncSession, app: FastAPI, status: str,
                                 expected: int) -> None:
    _install_gated_stub(app)
    user = await make_user(client, db, subscription=None)
    await set_subscription(db, user["account_id"], status)
    resp = await client.post("/_test/gated", headers=user["headers"])
    assert resp.status_code == expected, resp.text
    if expected == 402:
        assert status in resp.json()["detail"]


async def test_verification_and_handoff_durations_are_iso_8601(client: AsyncClient, db: AsyncSession,
                                                               settings: Settings) -> None:
    owner = await make_user(client, db, role="owner")
    url = "/api/v1/account/settings"
    body = {"pending_verification_reminders": ["PT2H", "PT8H", "P1D"], "verification_overdue_after": "P3D",
            "handoff_renotify_after": "PT30M"}
    resp = await client.put(url, headers=owner["headers"], json=body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["preferences"]["pending_verification_reminders"] == ["PT2H", "PT8H", "P1D"]
    assert resp.json()["preferences"]["verification_overdue_after"] == "P3D"
    # Seconds are for demos and black-box tests: allowed in dev mode only.
    assert settings.dev_mode
    quick = await client.put(url, headers=owner["headers"], json={"pending_verification_reminders": ["PT2S"]})
    assert quick.status_code == 200, quick.text
    strict = create_app(settings.model_copy(update={"dev_mode": False}))
    async with strict.router.lifespan_context(strict):
        transport = httpx.ASGITransport(app=strict)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as prod:
            refused = await prod.put(url, headers=owner["headers"],
                                     json={"pending_verification_reminders": ["PT1H", "PT30S"]})
    assert refused.status_code == 400 and "pending_verification_reminders[1]" in refused.json()["detail"]
    assert "one minute" in refused.json()["detail"]
