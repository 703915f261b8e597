"""Escalating by posting the escalation package is escalating (issue 20 item 6): a handoff in the queue, its
`handoff_created` event, the team told, and a senior can claim it; with or without a PSA ticket."""

from __future__ import annotations

import asyncio
import uuid

from httpx import AsyncClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import EscalationEvent
from tests.handoffs.support import (
    API,
    HandoffDesk,
    claim,
    hand_off,
    handoffs_of,
    make_handoff_desk,
    notifications,
    open_session,
)
from tests.psa.cw_simulator import SimulatorHandle
from tests.psa.support import PACKAGE, make_desk, ticket_session

PACKAGE_TEXT = "## Problem\nVPN drops\n\n## Suggested next steps\n- re-issue the certificate"


async def _told(client: AsyncClient, headers: dict[str, str], kind: str) -> list[dict[str, object]]:
    async with asyncio.timeout(20):
        while not (found := [n for n in await notifications(client, headers) if n["kind"] == kind]):  # noqa: ASYNC110 - made by the workflow
            await asyncio.sleep(0.1)
    return found


async def _created_events(db: AsyncSession, handoff_id: str) -> list[EscalationEvent]:
    rows = await db.scalars(select(EscalationEvent).where(EscalationEvent.handoff_id == uuid.UUID(handoff_id),
                                                          EscalationEvent.kind == "handoff_created"))
    return list(rows.all())


async def _assert_escalated_like_a_handoff(client: AsyncClient, db: AsyncSession, desk: HandoffDesk,
                                           session_id: str) -> dict[str, object]:
    [handoff] = [h for h in await handoffs_of(client, desk.senior.headers, session_id) if h["intent"] == "escalate"]
    assert handoff["created_by"] == desk.engineer.id and handoff["claimed_at"] is None
    queue = (await client.get(f"{API}/queue", headers=desk.senior.headers)).json()
    assert [item["id"] for item in queue["items"]] == [handoff["id"]]
    assert len(await _created_events(db, str(handoff["id"]))) == 1
    told = await _told(client, desk.senior.headers, "handoff_escalated")
    assert told[0]["session_id"] == session_id
    assert not [n for n in await notifications(client, desk.engineer.headers) if n["kind"] == "handoff_escalated"]
    return handoff


async def test_a_posted_package_escalates_through_the_queue_and_a_senior_claims_it(
    client: AsyncClient, db: AsyncSession
) -> None:
    desk = await make_handoff_desk(client, db)
    session = await open_session(client, desk.engineer.headers)
    posted = await client.post(f"{API}/{session['id']}/escalation-package/post", headers=desk.engineer.headers,
                               json={"markdown": PACKAGE_TEXT})
    assert posted.status_code == 200, posted.text
    assert posted.json()["session_status"] == "escalated"

    handoff = await _assert_escalated_like_a_handoff(client, db, desk, session["id"])
    stored = (await client.get(f"{API}/{session['id']}", headers=desk.engineer.headers)).json()
    assert stored["escalation_package_markdown"] == PACKAGE_TEXT  # the posted package is kept as posted
    again = await hand_off(client, desk.engineer.headers, session["id"])
    assert again.status_code == 409  # it is escalated already, and now there is something to claim
    assert (await claim(client, desk.engineer.headers, session["id"], str(handoff["id"]))).status_code == 403
    won = await claim(client, desk.senior.headers, session["id"], str(handoff["id"]))
    assert won.status_code == 200, won.text
    reopened = (await client.get(f"{API}/{session['id']}", headers=desk.senior.headers)).json()
    assert reopened["status"] == "active"


async def test_a_parked_session_escalated_by_its_package_closes_the_park(
    client: AsyncClient, db: AsyncSession
) -> None:
    desk = await make_handoff_desk(client, db)
    session = await open_session(client, desk.engineer.headers)
    parked = await hand_off(client, desk.engineer.headers, session["id"], intent="park", notes="waiting on customer")
    assert parked.status_code == 201, parked.text
    posted = await client.post(f"{API}/{session['id']}/escalation-package/post", headers=desk.engineer.headers,
                               json={"markdown": PACKAGE_TEXT})
    assert posted.status_code == 200, posted.text

    await _assert_escalated_like_a_handoff(client, db, desk, session["id"])
    [park] = [h for h in await handoffs_of(client, desk.senior.headers, session["id"]) if h["intent"] == "park"]
    assert park["claimed_by"] == desk.engineer.id and park["claimed_at"] is not None  # picked up by the poster
    # Claiming the closed park again changes nothing: the session stays escalated, waiting for a senior.
    assert (await claim(client, desk.engineer.headers, session["id"], str(park["id"]))).status_code == 200
    assert (await client.get(f"{API}/{session['id']}", headers=desk.engineer.headers)).json()["status"] == "escalated"


async def test_a_package_posted_to_the_psa_ticket_escalates_through_the_queue(
    client: AsyncClient, db: AsyncSession, cw_sim: SimulatorHandle
) -> None:
    psa = await make_desk(client, db, cw_sim)
    session = await ticket_session(client, psa)
    posted = await client.post(f"{API}/{session['id']}/escalation-package/post", headers=psa.engineer, json=PACKAGE,
                               timeout=120)
    assert posted.status_code == 200, posted.text
    assert posted.json()["session_status"] == "escalated"
    [handoff] = await handoffs_of(client, psa.admin, session["id"])
    assert handoff["intent"] == "escalate" and handoff["created_by"] == psa.engineer_id
    queue = (await client.get(f"{API}/queue", headers=psa.admin)).json()
    assert [item["id"] for item in queue["items"]] == [handoff["id"]]
    assert len(await _created_events(db, str(handoff["id"]))) == 1
    await _told(client, psa.admin, "handoff_escalated")
