"""The ConnectWise client over real HTTP against the simulator (plus a few no-network unit checks)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest

from integrations.psa.base import (
    NoteType,
    PsaAuthFailed,
    PsaNotFound,
    PsaRateLimited,
    PsaRejected,
    PsaTicket,
    PsaUnavailable,
)
from integrations.psa.connectwise import ConnectWiseClient, ConnectWiseConfig, api_base_url, parse_retry_after
from tests.psa import cw_simulator
from tests.stack import free_port

cw_sim = cw_simulator.cw_sim  # the fixture, made visible to this module
Sim = cw_simulator.SimulatorHandle
TICKET = "48291"
NOTES = "POST service/tickets/{id}/notes"


@pytest.fixture
async def client(cw_sim: Sim) -> AsyncIterator[ConnectWiseClient]:
    """A client for the simulator, closed after the test."""
    async with ConnectWiseClient(cw_sim.config()) as c:
        yield c


# -- no network ---------------------------------------------------------------------------------


def test_site_url_bare_host_means_https() -> None:
    assert api_base_url("na.myconnectwise.net", "v4_6_release/") == "https://na.myconnectwise.net/v4_6_release/apis/3.0/"
    assert api_base_url(" https://cw.example.com/ ", "/v2025_1/") == "https://cw.example.com/v2025_1/apis/3.0/"
    assert api_base_url("http://127.0.0.1:8123", "v4_6_release") == "http://127.0.0.1:8123/v4_6_release/apis/3.0/"


def test_config_repr_hides_private_key() -> None:
    config = ConnectWiseConfig("na.myconnectwise.net", "acme", "pub123", "very-private-value", "cid")
    assert "very-private-value" not in repr(config)
    assert "very-private-value" not in repr(ConnectWiseClient(config, httpx.AsyncClient()))


def test_retry_after_parsing() -> None:
    assert parse_retry_after("7") == 7
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert parse_retry_after("-1") is None


async def test_non_json_success_is_unavailable_and_given_http_stays_open() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>maintenance</html>")

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    client = ConnectWiseClient(
        ConnectWiseConfig("cw.example.com", "acme", "pub", "priv", "cid", codebase="v4_6_release/"), http
    )
    with pytest.raises(PsaUnavailable, match="not JSON"):
        await client.get_ticket(TICKET)
    await client.aclose()
    assert not http.is_closed
    await http.aclose()


async def test_non_numeric_ticket_id_is_rejected_before_any_call(client: ConnectWiseClient, cw_sim: Sim) -> None:
    with pytest.raises(PsaRejected):
        await client.get_ticket("1/notes")
    assert cw_sim.state.requests == []


@pytest.mark.parametrize("bad_id", ["0", "2147483648", "12345678901"])
async def test_out_of_range_ticket_and_note_ids_are_rejected_before_any_call(
        client: ConnectWiseClient, cw_sim: Sim, bad_id: str) -> None:
    # The same rule the session route applies to a ticket id: CW ids are positive 32-bit integers.
    with pytest.raises(PsaRejected, match="ticket ids are whole numbers from 1 to 2147483647"):
        await client.get_ticket(bad_id)
    with pytest.raises(PsaRejected, match="note ids are whole numbers from 1 to 2147483647"):
        await client.update_note(TICKET, bad_id, "text")
    assert cw_sim.state.requests == []


# -- headers, codebase, check ---------------------------------------------------------------------


async def test_every_api_call_sends_basic_auth_client_id_and_version(client: ConnectWiseClient, cw_sim: Sim) -> None:
    await client.get_ticket(TICKET)
    c = cw_sim.credentials
    expected = base64.b64encode(f"{c.company_id}+{c.public_key}:{c.private_key}".encode()).decode()
    [info] = cw_sim.state.requests_to("GET login/companyinfo")
    assert "authorization" not in info.headers
    [call] = cw_sim.state.requests_to("GET service/tickets/{id}")
    assert call.headers["authorization"] == f"Basic {expected}"
    assert call.headers["clientid"] == c.client_id
    assert call.headers["accept"] == "application/vnd.connectwise.com+json; version=2022.1"


async def test_codebase_is_discovered_once(client: ConnectWiseClient, cw_sim: Sim) -> None:
    await client.get_ticket(TICKET)
    await client.get_ticket("48292")
    assert len(cw_sim.state.requests_to("GET login/companyinfo")) == 1
    calls = cw_sim.state.requests_to("GET service/tickets/{id}")
    assert all(r.path.startswith("/v4_6_release/apis/3.0/") for r in calls)


async def test_configured_codebase_skips_companyinfo(cw_sim: Sim) -> None:
    async with ConnectWiseClient(cw_sim.config(codebase="v4_6_release")) as client:
        assert (await client.get_ticket(TICKET)).id == TICKET
    assert cw_sim.state.requests_to("GET login/companyinfo") == []


async def test_check_passes(client: ConnectWiseClient, cw_sim: Sim) -> None:
    await client.check()
    assert len(cw_sim.state.requests_to("GET system/info")) == 1


async def test_check_wrong_private_key_is_auth_failed_without_the_key(cw_sim: Sim) -> None:
    wrong = "wrong-" + cw_sim.credentials.private_key
    async with ConnectWiseClient(cw_sim.config(private_key=wrong)) as client:
        with pytest.raises(PsaAuthFailed, match="authentication failed") as caught:
            await client.check()
        with pytest.raises(PsaAuthFailed):
            await client.get_ticket(TICKET)
    for text in (caught.value.message, str(caught.value), repr(caught.value)):
        assert wrong not in text and cw_sim.credentials.private_key not in text
    assert caught.value.status_code == 401


async def test_unknown_company_is_auth_failed(cw_sim: Sim) -> None:
    async with ConnectWiseClient(cw_sim.config(company_id="nosuchco")) as client:
        with pytest.raises(PsaAuthFailed, match="company ID 'nosuchco' is not known"):
            await client.check()


async def test_missing_client_id_is_refused_by_the_simulator(cw_sim: Sim) -> None:
    c = cw_sim.credentials
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"{cw_sim.url}/v4_6_release/apis/3.0/system/info", auth=(f"{c.company_id}+{c.public_key}", c.private_key)
        )
    assert response.status_code == 400
    assert "clientId" in response.json()["message"]


async def test_unreachable_site_is_unavailable() -> None:
    config = ConnectWiseConfig(f"http://127.0.0.1:{free_port()}", "acme", "pub", "priv", "cid", timeout_s=5)
    async with ConnectWiseClient(config) as client:
        with pytest.raises(PsaUnavailable, match="could not be reached"):
            await client.check()
        with pytest.raises(PsaUnavailable, match="could not be reached"):
            await client.get_ticket(TICKET)


async def test_slow_answer_is_unavailable(cw_sim: Sim) -> None:
    cw_sim.state.switches.delay_s = 1.0
    async with ConnectWiseClient(cw_sim.config(codebase="v4_6_release/", timeout_s=0.2)) as client:
        with pytest.raises(PsaUnavailable, match=r"did not answer within 0\.2s"):
            await client.get_ticket(TICKET)


# -- tickets and notes ----------------------------------------------------------------------------


async def test_get_ticket(client: ConnectWiseClient) -> None:
    ticket = await client.get_ticket(TICKET)
    assert ticket == PsaTicket(
        id=TICKET, summary="Outlook prompts for password after M365 migration",
        status_id=16, status_name="New", board_id=1,
    )


async def test_unknown_ticket_is_not_found_with_cw_message(client: ConnectWiseClient) -> None:
    with pytest.raises(PsaNotFound, match="Ticket with id 99999 was not found") as caught:
        await client.get_ticket("99999")
    assert caught.value.status_code == 404


@pytest.mark.parametrize(
    ("note_type", "flag"),
    [
        (NoteType.DESCRIPTION, "detailDescriptionFlag"),
        (NoteType.INTERNAL_ANALYSIS, "internalAnalysisFlag"),
        (NoteType.RESOLUTION, "resolutionFlag"),
    ],
)
async def test_post_note_sets_exactly_one_flag(
    client: ConnectWiseClient, cw_sim: Sim, note_type: NoteType, flag: str
) -> None:
    note = await client.post_note(TICKET, f"Checked the {note_type} path", note_type)
    assert (note.note_type, note.text) == (note_type, f"Checked the {note_type} path")
    assert note.created_at is not None
    [stored] = cw_sim.state.notes(48291)
    assert str(stored["id"]) == note.id
    flags = {f: stored[f] for f in ("detailDescriptionFlag", "internalAnalysisFlag", "resolutionFlag")}
    assert flags == {f: f == flag for f in flags}


async def test_find_note_pages_newest_first(client: ConnectWiseClient, cw_sim: Sim) -> None:
    await client.post_note(TICKET, "Resolved it [rflow:abc123]", NoteType.RESOLUTION)
    for i in range(5):
        await client.post_note(TICKET, f"later note {i}", NoteType.INTERNAL_ANALYSIS)
    found = await client.find_note(TICKET, "[rflow:abc123]", page_size=5)
    assert found is not None and found.note_type is NoteType.RESOLUTION
    pages = [r.query for r in cw_sim.state.requests_to("GET service/tickets/{id}/notes")]
    assert [(p["page"], p["pageSize"], p["orderBy"]) for p in pages] == [("1", "5", "id desc"), ("2", "5", "id desc")]
    assert await client.find_note(TICKET, "[rflow:nope]", page_size=5) is None


async def test_note_stored_then_500_is_unavailable_and_found_once(client: ConnectWiseClient, cw_sim: Sim) -> None:
    cw_sim.state.switches.fail_after_note_store_next = 1
    with pytest.raises(PsaUnavailable, match="unexpected error") as caught:
        await client.post_note(TICKET, "Fixed [rflow:w1]", NoteType.RESOLUTION)
    assert caught.value.retryable and caught.value.status_code == 500
    found = await client.find_note(TICKET, "[rflow:w1]")
    assert found is not None
    assert [n["text"] for n in cw_sim.state.notes(48291)] == ["Fixed [rflow:w1]"]
    assert len(cw_sim.state.requests_to(NOTES)) == 1


async def test_rate_limited_carries_retry_after(client: ConnectWiseClient, cw_sim: Sim) -> None:
    await client.get_ticket(TICKET)  # codebase resolved first: companyinfo is not rate limited
    cw_sim.state.switches.rate_limit_next = 1
    cw_sim.state.switches.retry_after_s = 3
    with pytest.raises(PsaRateLimited) as caught:
        await client.post_note(TICKET, "x", NoteType.DESCRIPTION)
    assert caught.value.retry_after == 3 and caught.value.retryable
    assert cw_sim.state.notes(48291) == []
    await client.post_note(TICKET, "x", NoteType.DESCRIPTION)  # the switch was for one call only
    assert len(cw_sim.state.notes(48291)) == 1


# -- statuses -------------------------------------------------------------------------------------


async def test_update_status_applies(client: ConnectWiseClient, cw_sim: Sim) -> None:
    await client.update_status(TICKET, 17)
    ticket = await client.get_ticket(TICKET)
    assert (ticket.status_id, ticket.status_name) == (17, "In Progress")
    [patch] = cw_sim.state.requests_to("PATCH service/tickets/{id}")
    assert patch.body == [{"op": "replace", "path": "status", "value": {"id": 17}}]


async def test_ignored_status_change_answers_200_but_keeps_status(client: ConnectWiseClient, cw_sim: Sim) -> None:
    cw_sim.state.switches.ignore_status_change = True
    await client.update_status(TICKET, 42)
    assert (await client.get_ticket(TICKET)).status_id == 16


async def test_nested_status_path_is_a_false_200(client: ConnectWiseClient) -> None:
    patch = [{"op": "replace", "path": "status/id", "value": 57}]
    response = await client.request("PATCH", f"service/tickets/{TICKET}", json=patch)
    assert response.status_code == 200
    assert (await client.get_ticket(TICKET)).status_id == 16


async def test_status_flipped_by_workflow_rule_is_seen(client: ConnectWiseClient, cw_sim: Sim) -> None:
    await client.update_status(TICKET, 42)
    cw_sim.state.set_status(48291, 57)
    assert (await client.get_ticket(TICKET)).status_name == "Escalated"


async def test_unknown_status_is_rejected_with_cw_message(client: ConnectWiseClient) -> None:
    with pytest.raises(PsaRejected) as caught:
        await client.update_status(TICKET, 999)
    assert caught.value.message == "ConnectWise: Ticket status is invalid (status: InvalidObject)"
    assert caught.value.status_code == 400 and not caught.value.retryable


async def test_list_statuses_of_the_ticket_board(client: ConnectWiseClient) -> None:
    statuses = await client.list_statuses(await client.get_ticket(TICKET))
    assert [(s.id, s.name, s.closed) for s in statuses] == [
        (16, "New", False), (17, "In Progress", False), (42, "Resolved", True), (57, "Escalated", False),
        (60, "Closed", True),
    ]


async def test_list_statuses_without_board_is_rejected(client: ConnectWiseClient) -> None:
    with pytest.raises(PsaRejected, match="has no board"):
        await client.list_statuses(PsaTicket(id="1", summary="", status_id=None, status_name=None))


async def test_board_statuses_follow_link_paging(client: ConnectWiseClient, cw_sim: Sim) -> None:
    for sid in range(100, 125):
        cw_sim.state.add_status(1, sid, f"Step {sid}", inactive=sid % 2 == 0)
    statuses = await client.board_statuses(1, page_size=10)
    assert len(statuses) == 30 and len({s.id for s in statuses}) == 30
    assert next(s for s in statuses if s.id == 100).inactive
    # 30 statuses in pages of 10: page 3 is full but has no rel="next", so no page 4 is asked for.
    pages = [r.query["page"] for r in cw_sim.state.requests_to("GET service/boards/{id}/statuses")]
    assert pages == ["1", "2", "3"]


async def test_simulator_default_page_size_is_cw_default(client: ConnectWiseClient, cw_sim: Sim) -> None:
    for sid in range(100, 125):
        cw_sim.state.add_status(1, sid, f"Step {sid}")
    response = await client.request("GET", "service/boards/1/statuses")
    assert len(response.json()) == 25
    assert 'rel="next"' in response.headers["link"] and "page=2" in response.headers["link"]
