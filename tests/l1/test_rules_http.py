"""Bad input and safety on the L1 surface: roles, subscription, tenancy, schema errors, categories, flows."""

from __future__ import annotations

import uuid

from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from tests.helpers import add_member, make_user, set_subscription
from tests.l1.support import PRINTER_TREE, adhoc_session, create_flow, intake, l1_tech, team

API = "/api/v1/l1"
NOTE = {"notes": [{"text": "checked cables", "ts": "2026-05-28T10:00:00Z"}]}


async def test_writes_need_an_active_subscription_reads_do_not(client: AsyncClient, db: AsyncSession) -> None:
    info = await l1_tech(client, db)
    sid = await adhoc_session(client, info["headers"])
    await set_subscription(db, info["account_id"], "past_due")
    for path, payload in (("/intake", {"problem_statement": "x"}), (f"/sessions/{sid}/notes", NOTE),
                          (f"/sessions/{sid}/resolve", {"helpful": True}),
                          ("/escalate-without-walk", {"problem_statement": "x", "reason_category": "y"})):
        resp = await client.post(API + path, json=payload, headers=info["headers"])
        assert resp.status_code == 402, (path, resp.text)
        assert "past_due" in resp.json()["detail"]
    assert (await client.get(f"{API}/sessions/{sid}", headers=info["headers"])).status_code == 200
    await set_subscription(db, info["account_id"], "trialing")
    assert (await client.post(f"{API}/sessions/{sid}/notes", json=NOTE, headers=info["headers"])).status_code == 200


async def test_viewer_is_refused_everywhere_and_roles_gate_admin_routes(client: AsyncClient, db: AsyncSession) -> None:
    t = await team(client, db)
    viewer = await add_member(client, t["owner"]["headers"], role="viewer")
    sid = await adhoc_session(client, t["tech"]["headers"])
    for method, path in (("GET", f"{API}/sessions/{sid}"), ("GET", f"{API}/sessions/active"),
                         ("GET", f"{API}/flows"), ("POST", f"{API}/sessions/{sid}/notes")):
        resp = await client.request(method, path, headers=viewer["headers"], json=NOTE)
        assert resp.status_code == 403, (path, resp.text)
    tech = t["tech"]["headers"]
    assert (await client.get(f"{API}/escalations", headers=tech)).status_code == 403
    assert (await client.get(f"{API}/categories", headers=tech)).status_code == 403
    flow_body = {"title": "t", "category": "printing", "tree": PRINTER_TREE}
    assert (await client.post(f"{API}/flows", headers=tech, json=flow_body)).status_code == 403
    assert (await client.post(f"{API}/flows", headers=t["engineer"]["headers"], json=flow_body)).status_code == 403
    assert (await client.get(f"{API}/flows", headers=tech)).status_code == 200


async def test_other_accounts_sessions_are_not_found(client: AsyncClient, db: AsyncSession) -> None:
    a, b = await l1_tech(client, db), await l1_tech(client, db)
    sid = await adhoc_session(client, a["headers"])
    for path, payload in (("step", {"node_id": "n", "answer": "a"}), ("notes", NOTE),
                          ("resolve", {"helpful": True}), ("escalate", {"reason_category": "x"})):
        resp = await client.post(f"{API}/sessions/{sid}/{path}", json=payload, headers=b["headers"])
        assert resp.status_code == 404, (path, resp.text)
    missing = await client.get(f"{API}/sessions/{uuid.uuid4()}", headers=a["headers"])
    assert missing.status_code == 404
    other_flow = await intake(client, a["headers"], problem_statement="x", adhoc=True)
    assert other_flow["session_kind"] == "adhoc"
    resp = await client.post(f"{API}/intake", headers=b["headers"],
                             json={"problem_statement": "x", "flow_id": str(uuid.uuid4())})
    assert resp.status_code == 404


async def test_schema_errors_are_422(client: AsyncClient, db: AsyncSession) -> None:
    info = await l1_tech(client, db)
    sid = await adhoc_session(client, info["headers"])
    h = info["headers"]
    cases = [
        ("/intake", {}),
        ("/intake", {"problem_statement": ""}),
        (f"/sessions/{sid}/step", {"node_id": "n"}),
        (f"/sessions/{sid}/notes", {"notes": [{"text": "naive time", "ts": "2026-05-28T10:00:00"}]}),
        (f"/sessions/{sid}/notes", {"notes": []}),
        (f"/sessions/{sid}/resolve", {"resolution_notes": "no helpful flag"}),
        (f"/sessions/{sid}/escalate", {"reason": "no category"}),
    ]
    for path, payload in cases:
        resp = await client.post(API + path, json=payload, headers=h)
        assert resp.status_code == 422, (path, payload, resp.text)
    assert (await client.get(f"{API}/sessions/not-a-uuid", headers=h)).status_code == 422


async def test_flow_trees_must_be_walkable(client: AsyncClient, db: AsyncSession) -> None:
    owner = await make_user(client, db, role="owner")
    broken = {
        "dangling": {"root": "a", "nodes": {"a": {"question": "?", "options": [{"label": "x", "next": "zz"}]}}},
        "no_root": {"root": "b", "nodes": {"a": {"question": "?", "options": [{"label": "x", "resolution": "r"}]}}},
        "cycle": {"root": "a", "nodes": {
            "a": {"question": "?", "options": [{"label": "x", "next": "b"}]},
            "b": {"question": "?", "options": [{"label": "y", "next": "a"}]}}},
        "both": {"root": "a", "nodes": {"a": {"question": "?", "options": [
            {"label": "x", "next": "a", "resolution": "r"}]}}},
    }
    for name, tree in broken.items():
        resp = await client.post(f"{API}/flows", headers=owner["headers"],
                                 json={"title": name, "category": "printing", "tree": tree})
        assert resp.status_code == 422, (name, resp.text)
    flow = await create_flow(client, owner["headers"])
    listed = (await client.get(f"{API}/flows", headers=owner["headers"])).json()
    assert [f["id"] for f in listed] == [flow["id"]]


async def test_categories_defaults_scope_and_recipients(client: AsyncClient, db: AsyncSession) -> None:
    t = await team(client, db)
    admin = t["owner"]["headers"]
    cats = (await client.get(f"{API}/categories", headers=admin)).json()
    by_name = {c["name"]: c for c in cats}
    assert {"printing", "network", "email", "accounts", "hardware", "software"} <= set(by_name)
    assert by_name["printing"]["in_scope"] is True and by_name["security"]["in_scope"] is False

    engineer_id = t["engineer"]["user"]["id"]
    resp = await client.patch(f"{API}/categories", headers=admin, json=[
        {"name": "printing", "in_scope": False, "escalation_recipient_ids": [engineer_id]},
        {"name": "Telephony", "in_scope": True},
    ])
    assert resp.status_code == 200, resp.text
    by_name = {c["name"]: c for c in resp.json()}
    assert by_name["printing"] == {"name": "printing", "in_scope": False, "escalation_recipient_ids": [engineer_id]}
    assert by_name["telephony"]["in_scope"] is True
    bad = await client.patch(f"{API}/categories", headers=admin,
                             json=[{"name": "printing", "escalation_recipient_ids": [str(uuid.uuid4())]}])
    assert bad.status_code == 400 and "escalation_recipient_ids" in bad.json()["detail"]

    # Printing is now out of L1 scope: intake says why and starts no session.
    out = await intake(client, t["tech"]["headers"], problem_statement="The printer shows a paper jam")
    assert out["outcome"] == "out_of_scope" and out["session_id"] is None and out["session_kind"] is None
    assert out["category"] == "printing" and "ad hoc" in out["message"] and out["ticket_id"]
    active = (await client.get(f"{API}/sessions/active", headers=t["tech"]["headers"])).json()
    assert active == []


async def test_escalations_list_for_engineers(client: AsyncClient, db: AsyncSession) -> None:
    t = await team(client, db)
    flow = await create_flow(client, t["owner"]["headers"])
    tech = t["tech"]["headers"]
    sid = (await intake(client, tech, problem_statement="p", flow_id=flow["id"]))["session_id"]
    await client.post(f"{API}/sessions/{sid}/step", headers=tech, json={"node_id": "power", "answer": "Yes"})
    resp = await client.post(f"{API}/sessions/{sid}/escalate", headers=tech,
                             json={"reason_category": "needs_l2", "reason": "paper tray broken"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["warning"] and resp.json()["notified"] == []  # nobody configured, still escalated
    other = await adhoc_session(client, tech)  # stays active: not listed
    listed = (await client.get(f"{API}/escalations", headers=t["engineer"]["headers"])).json()
    assert [s["id"] for s in listed] == [sid]
    assert listed[0]["walked_path"][0]["answer"] == "Yes" and other != sid


async def test_unstorable_input_is_refused_before_it_reaches_the_walk(client: AsyncClient, db: AsyncSession) -> None:
    # Each of these used to reach the walk workflow, whose persistence activity then failed on every retry
    # (NUL in JSONB, varchar(60) overflow): the API answered 503 after 15s and the session was wedged.
    info = await l1_tech(client, db)
    h = info["headers"]
    sid = await adhoc_session(client, h)
    cases = [
        ("/intake", {"problem_statement": "printer\u0000"}, "problem_statement contains a NUL"),
        (f"/sessions/{sid}/notes", {"notes": [{"text": "a\u0000b", "ts": "2026-05-28T10:00:00Z"}]},
         "notes[0].text contains a NUL"),
        (f"/sessions/{sid}/step", {"node_id": "n", "answer": "\u0000"}, "answer contains a NUL"),
        (f"/sessions/{sid}/resolve", {"helpful": True, "resolution_notes": "\u0000"}, "resolution_notes"),
        (f"/sessions/{sid}/escalate", {"reason_category": "x" * 61}, "at most 60 characters"),
        (f"/sessions/{sid}/escalate", {"reason_category": ""}, "at least 1 character"),
        (f"/sessions/{sid}/escalate", {"reason_category": "needs_l2", "reason": "\u0000"}, "reason contains a NUL"),
        ("/escalate-without-walk", {"problem_statement": "x", "reason_category": "\u0000"}, "reason_category"),
    ]
    for i, (path, payload, expected) in enumerate(cases):
        resp = await client.post(API + path, json=payload, headers={**h, "Idempotency-Key": f"k-{i}"})
        assert resp.status_code == 422, (path, resp.text)
        assert expected in resp.text, (path, resp.text)
    # The session was never touched and still works.
    assert (await client.post(f"{API}/sessions/{sid}/notes", json=NOTE, headers=h)).status_code == 200
    resp = await client.post(f"{API}/sessions/{sid}/escalate", json={"reason_category": "y" * 60}, headers=h)
    assert resp.status_code == 200, resp.text
    assert resp.json()["session"]["escalation_reason_category"] == "y" * 60
    active = (await client.get(f"{API}/sessions/active", headers=h)).json()
    assert active == []  # the refused intake started no session


async def test_flow_node_ids_and_keywords_are_bounded(client: AsyncClient, db: AsyncSession) -> None:
    owner = await make_user(client, db, role="owner")
    long_id = "n" * 201
    tree = {"root": "a", "nodes": {"a": {"question": "?", "options": [{"label": "x", "next": long_id}]},
                                   long_id: {"question": "?", "options": [{"label": "x", "resolution": "r"}]}}}
    resp = await client.post(f"{API}/flows", headers=owner["headers"],
                             json={"title": "t", "category": "printing", "tree": tree})
    assert resp.status_code == 422 and "200 characters" in resp.text
    resp = await client.post(f"{API}/flows", headers=owner["headers"],
                             json={"title": "t", "category": "printing", "keywords": ["k" * 61], "tree": PRINTER_TREE})
    assert resp.status_code == 422 and "keywords" in resp.text
