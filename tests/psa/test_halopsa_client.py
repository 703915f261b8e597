"""The HaloPSA client over real HTTP against the simulator (and, for echoed secrets, a hostile stand-in)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from integrations.psa.base import (
    NoteType,
    PsaAuthFailed,
    PsaNotFound,
    PsaPost,
    PsaRejected,
    PsaTicket,
    PsaUnavailable,
)
from integrations.psa.halopsa import HaloClient, HaloConfig, default_auth_url
from integrations.psa.halopsa_simulator import main as halo_simulator_main
from integrations.psa.halopsa_simulator_state import HaloRecordedRequest, HaloSimulatorState
from tests.psa import halo_simulator
from tests.psa.simulator_fixture import assert_rate_limit_takes_one_call, serving
from tests.stack import free_port

halo_sim = halo_simulator.halo_sim  # the fixture, made visible to this module
Sim = halo_simulator.HaloSimulatorHandle
TICKET = "48291"
ACTIONS = "POST Actions"
ENDED = datetime(2025, 3, 4, 15, 30, tzinfo=UTC)


@pytest.fixture
async def client(halo_sim: Sim) -> AsyncIterator[HaloClient]:
    """A client for the simulator, closed after the test."""
    async with HaloClient(halo_sim.config()) as c:
        yield c


def api_calls(sim: Sim) -> list[HaloRecordedRequest]:
    """The API requests the simulator received (not token requests)."""
    return [r for r in sim.state.requests if r.route != "POST token"]


# -- no network ---------------------------------------------------------------------------------


def test_auth_url_defaults_to_the_api_hosts_auth() -> None:
    assert default_auth_url("https://acme.halopsa.com/api") == "https://acme.halopsa.com/auth"
    assert default_auth_url("acme.halopsa.com/api/") == "https://acme.halopsa.com/auth"
    assert default_auth_url("http://127.0.0.1:8125/api") == "http://127.0.0.1:8125/auth"


def test_config_and_client_repr_hide_the_secret() -> None:
    secret = secrets.token_urlsafe(16)
    config = HaloConfig("https://acme.halopsa.com/api", "cid", secret, tenant="acme")
    assert secret not in repr(config) and "client_secret='***'" in repr(config)
    assert secret not in repr(HaloClient(config, httpx.AsyncClient()))


def test_simulator_cli_needs_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HALO_SIM_CLIENT_ID", raising=False)
    monkeypatch.delenv("HALO_SIM_CLIENT_SECRET", raising=False)
    with pytest.raises(SystemExit):  # argparse: the credential flags are required without the environment
        halo_simulator_main(["--port", str(free_port())])


# -- tokens -------------------------------------------------------------------------------------


async def test_token_is_fetched_once_and_reused_across_calls_and_clients(halo_sim: Sim) -> None:
    async with HaloClient(halo_sim.config()) as first, HaloClient(halo_sim.config()) as second:
        await first.get_ticket(TICKET)
        await first.post_note(TICKET, "first", NoteType.INTERNAL_ANALYSIS)
        await second.get_ticket(TICKET)
    assert halo_sim.state.token_requests == 1
    [asked] = halo_sim.state.requests_to("POST token")
    c = halo_sim.credentials
    assert asked.body == {"grant_type": "client_credentials", "client_id": c.client_id, "client_secret": "***",
                          "scope": "all"}
    assert asked.headers["content-type"] == "application/x-www-form-urlencoded" and asked.query == {}
    bearers = {r.headers["authorization"] for r in api_calls(halo_sim)}
    assert len(bearers) == 1 and next(iter(bearers)).startswith("Bearer ")


async def test_tenant_is_sent_when_configured() -> None:
    state = HaloSimulatorState(halo_simulator.random_credentials(tenant=f"acme{secrets.token_hex(2)}"))
    with halo_simulator.running_halo_simulator(state) as sim:
        async with HaloClient(sim.config()) as client:
            assert (await client.get_ticket(TICKET)).status_id == 1
        [asked] = sim.state.requests_to("POST token")
        assert asked.query == {"tenant": state.credentials.tenant}
        async with HaloClient(sim.config(tenant=None)) as client:
            with pytest.raises(PsaAuthFailed, match="tenant is missing or not known"):
                await client.get_ticket(TICKET)


async def test_short_lived_token_is_renewed_before_it_expires(halo_sim: Sim, client: HaloClient) -> None:
    halo_sim.state.switches.token_lifetime_s = 2
    await client.get_ticket(TICKET)
    # Renewed a tenth of its life early (at 1.8 s): the old token still works at 1.85 s, so only renewing asks again.
    await asyncio.sleep(1.85)
    await client.get_ticket(TICKET)
    assert halo_sim.state.token_requests == 2
    assert [r.status for r in api_calls(halo_sim)] == [200, 200, 200]  # ticket, statuses, ticket: no 401


async def test_revoked_token_is_renewed_once_on_a_401_and_the_call_succeeds(halo_sim: Sim,
                                                                          client: HaloClient) -> None:
    await client.get_ticket(TICKET)
    async with httpx.AsyncClient() as http:
        (await http.post(f"{halo_sim.url}/_simulator/switches", json={"expire_tokens_now": True})).raise_for_status()
    note = await client.post_note(TICKET, "after revocation", NoteType.RESOLUTION)
    assert halo_sim.state.token_requests == 2
    assert [r.status for r in halo_sim.state.requests_to(ACTIONS)] == [401, 201]
    assert [a["id"] for a in halo_sim.state.actions(48291)] == [int(note.id)]  # refused once, stored once
    await client.get_ticket(TICKET)
    assert halo_sim.state.token_requests == 2  # the renewed token is the one kept


async def test_refused_renewal_after_a_401_is_auth_failed(halo_sim: Sim, client: HaloClient) -> None:
    await client.get_ticket(TICKET)
    old_secret = halo_sim.credentials.client_secret
    halo_sim.state.credentials.client_secret = secrets.token_urlsafe(24)  # the application's secret was rotated
    halo_sim.state.expire_tokens()
    with pytest.raises(PsaAuthFailed, match="client secret is not valid") as caught:
        await client.get_ticket(TICKET)
    assert old_secret not in str(caught.value) and caught.value.status_code == 400


async def test_bad_credentials_are_auth_failed_without_the_secret(halo_sim: Sim) -> None:
    wrong = secrets.token_urlsafe(24)
    async with HaloClient(halo_sim.config(client_secret=wrong)) as client:
        with pytest.raises(PsaAuthFailed, match="check the client ID, client secret and tenant") as caught:
            await client.check()
    for text in (caught.value.message, str(caught.value), repr(caught.value)):
        assert wrong not in text and halo_sim.credentials.client_secret not in text
    assert api_calls(halo_sim) == []


async def test_a_cached_token_is_not_lent_to_a_client_with_another_secret(halo_sim: Sim, client: HaloClient) -> None:
    await client.get_ticket(TICKET)
    async with HaloClient(halo_sim.config(client_secret=secrets.token_urlsafe(24))) as impostor:
        with pytest.raises(PsaAuthFailed):
            await impostor.get_ticket(TICKET)
    assert halo_sim.state.token_requests == 2


# -- tickets, statuses ----------------------------------------------------------------------------


async def test_get_ticket_names_its_status_from_the_status_list(client: HaloClient, halo_sim: Sim) -> None:
    ticket = await client.get_ticket(TICKET)
    assert ticket == PsaTicket(id=TICKET, summary="Outlook prompts for password after M365 migration",
                               status_id=1, status_name="New", type_id=1)
    [listed] = halo_sim.state.requests_to("GET Status")
    assert listed.query == {"type": "ticket"}


async def test_list_statuses_marks_resolved_and_closed(client: HaloClient) -> None:
    statuses = await client.list_statuses(await client.get_ticket(TICKET))
    assert [(s.id, s.name, s.closed) for s in statuses] == [
        (1, "New", False), (2, "In Progress", False), (4, "Waiting on Customer", False), (5, "Escalated", False),
        (8, "Resolved", True), (9, "Closed", True),
    ]


async def test_unknown_ticket_is_not_found_with_halos_message(client: HaloClient) -> None:
    with pytest.raises(PsaNotFound, match="Ticket 99999 does not exist") as caught:
        await client.get_ticket("99999")
    assert caught.value.status_code == 404


@pytest.mark.parametrize("bad_id", ["0", "-3", "1/Actions", "2147483648", "12345678901", "abc"])
async def test_bad_ids_are_rejected_before_any_request(client: HaloClient, halo_sim: Sim, bad_id: str) -> None:
    with pytest.raises(PsaRejected, match="ticket ids are whole numbers from 1 to 2147483647"):
        await client.get_ticket(bad_id)
    with pytest.raises(PsaRejected, match="note ids are whole numbers"):
        await client.update_note(TICKET, bad_id, "text")
    with pytest.raises(PsaRejected, match="ticket ids are whole numbers"):
        await client.find_note(bad_id, "[rflow:x]")
    assert halo_sim.state.requests == [] and halo_sim.state.token_requests == 0


async def test_update_status_then_get_ticket_shows_it(client: HaloClient, halo_sim: Sim) -> None:
    await client.update_status(TICKET, 2)
    ticket = await client.get_ticket(TICKET)
    assert (ticket.status_id, ticket.status_name) == (2, "In Progress")
    [sent] = halo_sim.state.requests_to(ACTIONS)
    assert sent.body == [{"ticket_id": 48291, "outcome": "Status change", "new_status": 2, "hiddenfromuser": True,
                          "note": "Status set by ResolutionFlow"}]


async def test_ignored_status_change_is_visible_on_re_read(client: HaloClient, halo_sim: Sim) -> None:
    halo_sim.state.switches.ignore_status_change = True
    await client.update_status(TICKET, 8)
    assert (await client.get_ticket(TICKET)).status_id == 1
    [action] = halo_sim.state.actions(48291)
    assert action["new_status"] == 8  # Halo kept the action, not the change


async def test_status_changed_behind_our_back_is_seen(client: HaloClient, halo_sim: Sim) -> None:
    await client.update_status(TICKET, 8)
    async with httpx.AsyncClient() as http:
        resp = await http.post(f"{halo_sim.url}/_simulator/tickets/48291/status", json={"status_id": 5})
        resp.raise_for_status()
    assert (await client.get_ticket(TICKET)).status_name == "Escalated"


async def test_unknown_status_is_rejected_with_halos_message(client: HaloClient) -> None:
    with pytest.raises(PsaRejected) as caught:
        await client.update_status(TICKET, 77)
    assert caught.value.message == "HaloPSA: new_status 77 is not a ticket status"
    assert caught.value.status_code == 400 and not caught.value.retryable


# -- notes and work -------------------------------------------------------------------------------


@pytest.mark.parametrize(("note_type", "hidden"), [(NoteType.INTERNAL_ANALYSIS, True),
                                                   (NoteType.RESOLUTION, False), (NoteType.DESCRIPTION, False)])
async def test_post_note_is_one_action_hidden_only_when_internal(
        client: HaloClient, halo_sim: Sim, note_type: NoteType, hidden: bool) -> None:
    note = await client.post_note(TICKET, f"Checked the {note_type} path", note_type)
    [sent] = halo_sim.state.requests_to(ACTIONS)
    assert sent.body == [{"ticket_id": 48291, "note": f"Checked the {note_type} path", "outcome": "ResolutionFlow",
                          "hiddenfromuser": hidden}]
    [stored] = halo_sim.state.actions(48291)
    assert (note.id, note.note_type, note.time_entry_id) == (str(stored["id"]), note_type, None)
    assert note.created_at is not None and note.created_at.tzinfo is not None


async def test_find_note_reads_every_page_and_takes_the_newest(client: HaloClient, halo_sim: Sim) -> None:
    await client.post_note(TICKET, "first try [rflow:abc123]", NoteType.RESOLUTION)
    await client.post_note(TICKET, "second try [rflow:abc123]", NoteType.INTERNAL_ANALYSIS)
    for i in range(4):
        await client.post_note(TICKET, f"later note {i}", NoteType.RESOLUTION)
    found = await client.find_note(TICKET, "[rflow:abc123]", page_size=2)
    assert found is not None
    assert (found.id, found.text, found.note_type) == ("2", "second try [rflow:abc123]", NoteType.INTERNAL_ANALYSIS)
    pages = [r.query for r in halo_sim.state.requests_to("GET Actions")]
    assert pages == [{"ticket_id": "48291", "pageinate": "true", "page_size": "2", "page_no": str(n)}
                     for n in (1, 2, 3)]
    assert await client.find_note(TICKET, "[rflow:nope]", page_size=4) is None


async def test_update_note_replaces_the_text_and_keeps_visibility(client: HaloClient, halo_sim: Sim) -> None:
    note = await client.post_note(TICKET, "draft [rflow:u1]", NoteType.INTERNAL_ANALYSIS)
    await client.update_note(TICKET, note.id, "final [rflow:u1]")
    [stored] = halo_sim.state.actions(48291)
    assert (stored["note"], stored["hiddenfromuser"]) == ("final [rflow:u1]", True)
    assert halo_sim.state.requests_to(ACTIONS)[-1].body == [{"id": int(note.id), "ticket_id": 48291,
                                                             "note": "final [rflow:u1]"}]
    with pytest.raises(PsaNotFound, match="Action 99 does not exist"):
        await client.update_note(TICKET, "99", "x")


@pytest.mark.parametrize("answer_array", [False, True])
async def test_post_work_is_one_action_with_note_hours_and_status(
        client: HaloClient, halo_sim: Sim, answer_array: bool) -> None:
    halo_sim.state.switches.actions_answer_array = answer_array  # Halo answers either shape
    post = await client.post_work(TICKET, "Reset the MFA token [rflow:t1]", NoteType.RESOLUTION, minutes=45,
                                  status_id=9, ended_at=ENDED)
    [sent] = halo_sim.state.requests_to(ACTIONS)
    assert sent.body == [{"ticket_id": 48291, "note": "Reset the MFA token [rflow:t1]", "outcome": "ResolutionFlow",
                          "hiddenfromuser": False, "timetaken": 0.75, "new_status": 9}]
    [action] = halo_sim.state.actions(48291)
    assert (action["timetaken"], action["new_status"]) == (0.75, 9)
    assert post == PsaPost(note=post.note, time_entry_id=str(action["id"]), status_sent=True)
    assert (post.note.id, post.note.time_entry_id) == (str(action["id"]), str(action["id"]))
    assert halo_sim.state.tickets[48291]["status_id"] == 9
    found = await client.find_note(TICKET, "[rflow:t1]")
    assert found is not None and found.time_entry_id == str(action["id"])  # a retry sees the time was logged


async def test_post_work_without_minutes_or_status_is_a_plain_note(client: HaloClient, halo_sim: Sim) -> None:
    post = await client.post_work(TICKET, "Escalated to vendor", NoteType.INTERNAL_ANALYSIS, minutes=None,
                                  status_id=None, ended_at=ENDED)
    assert (post.time_entry_id, post.status_sent) == (None, False)
    [sent] = halo_sim.state.requests_to(ACTIONS)
    assert "timetaken" not in sent.body[0] and "new_status" not in sent.body[0]
    assert halo_sim.state.tickets[48291]["status_id"] == 1


@pytest.mark.parametrize("minutes", [0, 1441, -5])
async def test_minutes_out_of_range_are_rejected_without_a_request(
        client: HaloClient, halo_sim: Sim, minutes: int) -> None:
    with pytest.raises(PsaRejected, match="1 to 1440 minutes"):
        await client.post_work(TICKET, "x", NoteType.RESOLUTION, minutes=minutes, status_id=None, ended_at=ENDED)
    assert halo_sim.state.requests == [] and halo_sim.state.token_requests == 0


# -- failures -------------------------------------------------------------------------------------


async def test_rate_limited_carries_retry_after(client: HaloClient, halo_sim: Sim) -> None:
    await assert_rate_limit_takes_one_call(halo_sim.state.switches,
                                           lambda: client.post_note(TICKET, "x", NoteType.RESOLUTION),
                                           lambda: halo_sim.state.actions(48291))


async def test_500_after_the_action_was_stored_may_have_landed(client: HaloClient, halo_sim: Sim) -> None:
    halo_sim.state.switches.fail_after_note_store_next = 1
    with pytest.raises(PsaUnavailable, match="error occurred") as caught:
        await client.post_work(TICKET, "Fixed [rflow:w1]", NoteType.RESOLUTION, minutes=30, status_id=8,
                               ended_at=ENDED)
    assert caught.value.may_have_landed and caught.value.status_code == 500
    found = await client.find_note(TICKET, "[rflow:w1]")
    [action] = halo_sim.state.actions(48291)
    assert found is not None and found.id == str(action["id"]) and found.time_entry_id == found.id
    assert len(halo_sim.state.requests_to(ACTIONS)) == 1


async def test_a_slow_write_may_have_landed_and_a_slow_read_did_not(halo_sim: Sim) -> None:
    async with HaloClient(halo_sim.config(timeout_s=0.3)) as client:
        await client.get_ticket(TICKET)  # token and statuses read while the simulator is quick
        halo_sim.state.switches.delay_s = 1.0
        with pytest.raises(PsaUnavailable, match=r"did not answer within 0\.3s") as write:
            await client.post_note(TICKET, "slow", NoteType.RESOLUTION)
        with pytest.raises(PsaUnavailable, match=r"did not answer within 0\.3s") as read:
            await client.get_ticket(TICKET)
    assert write.value.may_have_landed and not read.value.may_have_landed


async def test_a_slow_token_answer_during_a_write_has_not_landed(halo_sim: Sim) -> None:
    halo_sim.state.switches.delay_s = 1.0
    async with HaloClient(halo_sim.config(timeout_s=0.3)) as client:
        with pytest.raises(PsaUnavailable, match=r"authorisation server .* did not answer") as caught:
            await client.post_note(TICKET, "never sent", NoteType.RESOLUTION)
    assert not caught.value.may_have_landed  # only the token was asked for: the note was never sent
    assert halo_sim.state.requests_to(ACTIONS) == []


async def test_unreachable_instance_is_unavailable() -> None:
    config = HaloConfig(f"http://127.0.0.1:{free_port()}/api", "cid", secrets.token_urlsafe(12), timeout_s=5)
    async with HaloClient(config) as client:
        with pytest.raises(PsaUnavailable, match="could not be reached") as caught:
            await client.check()
    assert not caught.value.may_have_landed


def echoing_halo(secret: str, calls: list[str], issued: list[str]) -> Starlette:
    """A hostile stand-in that puts the secret and the bearer token it was sent into its error messages."""

    async def token(request: Request) -> Response:
        calls.append("token")
        form = (await request.body()).decode()
        if "wrong" in request.query_params.get("tenant", ""):
            return JSONResponse({"error": "invalid_client", "error_description": f"bad secret in {form}"}, 401)
        issued.append(secrets.token_urlsafe(24))
        return JSONResponse({"access_token": issued[-1], "token_type": "Bearer", "expires_in": 3600})

    async def ticket(request: Request) -> Response:
        calls.append("api")
        return JSONResponse(f"refused {request.headers['authorization']} (secret {secret})", 401)

    return Starlette(routes=[Route("/auth/token", token, methods=["POST"]), Route("/api/Tickets/{tid}", ticket)])


async def test_the_secret_and_token_never_reach_error_messages() -> None:
    secret, calls, tokens = secrets.token_urlsafe(24), list[str](), list[str]()
    with serving(echoing_halo(secret, calls, tokens), "echoing-halo") as url:
        async with HaloClient(HaloConfig(f"{url}/api", "cid", secret)) as client:
            with pytest.raises(PsaAuthFailed, match="even after it was renewed") as refused:
                await client.get_ticket(TICKET)
        async with HaloClient(HaloConfig(f"{url}/api", "cid", secret, tenant="wrong")) as client:
            with pytest.raises(PsaAuthFailed, match="check the client ID") as bad_secret:
                await client.check()
    assert calls == ["token", "api", "token", "api", "token"]  # one renewal after the first 401, no more
    assert len(tokens) == 2
    for caught in (refused.value, bad_secret.value):
        assert "***" in caught.message
        for text in (caught.message, str(caught), repr(caught)):
            assert secret not in text and not any(t in text for t in tokens)
