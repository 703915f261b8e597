"""The Autotask client over real HTTP against the Autotask simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from integrations.psa.autotask import AutotaskClient, AutotaskConfig
from integrations.psa.autotask_simulator_state import TECHNICIAN_RESOURCE_ID
from integrations.psa.base import (
    NoteType,
    PsaAuthFailed,
    PsaError,
    PsaNotFound,
    PsaPost,
    PsaProvider,
    PsaRateLimited,
    PsaRejected,
    PsaTicket,
    PsaUnavailable,
)
from tests.psa import at_simulator
from tests.psa.simulator_fixture import assert_rate_limit_takes_one_call
from tests.stack import free_port

at_sim = at_simulator.at_sim  # the fixture, made visible to this module
Sim = at_simulator.AutotaskSimulatorHandle
TICKET = "48291"
NEW, COMPLETE, IN_PROGRESS, ESCALATED = 1, 5, 8, 11
ZONE_INFO, VERSIONS = "GET zoneInformation", "GET versioninformation"
NOTES_POST, NOTES_GET = "POST Tickets/{id}/Notes", "GET Tickets/{id}/Notes"
ENDED = datetime(2026, 12, 5, 14, 30, tzinfo=UTC)


@pytest.fixture
async def client(at_sim: Sim) -> AsyncIterator[AutotaskClient]:
    """A client that discovers the simulator's zone, closed after the test."""
    async with AutotaskClient(at_sim.config()) as c:
        yield c


# -- before any request ---------------------------------------------------------------------------


def test_config_and_client_repr_hide_the_secret() -> None:
    config = AutotaskConfig("api@acme.example", "very-secret-value", "TRACKINGCODE")
    for text in (repr(config), repr(AutotaskClient(config, httpx.AsyncClient()))):
        assert "very-secret-value" not in text and "TRACKINGCODE" not in text and "api@acme.example" in text


@pytest.mark.parametrize("bad_id", ["1/Notes", "0", "-3", "2147483648", "48291?x=1", ""])
async def test_bad_ids_are_rejected_without_a_request(client: AutotaskClient, at_sim: Sim, bad_id: str) -> None:
    for call in (client.get_ticket(bad_id), client.post_note(bad_id, "x", NoteType.RESOLUTION),
                 client.find_note(bad_id, "m"), client.update_note(TICKET, bad_id, "x"),
                 client.update_status(bad_id, NEW)):
        with pytest.raises(PsaRejected, match="ids are whole numbers from 1 to 2147483647"):
            await call
    assert at_sim.state.requests == []


@pytest.mark.parametrize("minutes", [0, -5, 1441])
async def test_minutes_outside_a_day_are_rejected_without_a_request(
        client: AutotaskClient, at_sim: Sim, minutes: int) -> None:
    with pytest.raises(PsaRejected, match="from 1 to 1440"):
        await client.post_work(TICKET, "x", NoteType.RESOLUTION, minutes=minutes, status_id=None, ended_at=ENDED)
    assert at_sim.state.requests == []


async def test_unsendable_secret_is_refused_without_naming_it(at_sim: Sim) -> None:
    secret = "line\nbreak-secret"
    async with AutotaskClient(at_sim.config(secret=secret)) as client:
        with pytest.raises(PsaRejected, match="Secret") as caught:
            await client.get_ticket(TICKET)
    assert "break-secret" not in str(caught.value)
    assert at_sim.state.requests == []


# -- zone discovery -------------------------------------------------------------------------------


async def test_discovery_then_calls_on_the_zone(client: AutotaskClient, at_sim: Sim) -> None:
    await client.get_ticket(TICKET)
    [versions] = at_sim.state.requests_to(VERSIONS)
    [zone_info] = at_sim.state.requests_to(ZONE_INFO)
    assert zone_info.query == {"user": at_sim.credentials.username}
    assert "secret" not in versions.headers and "secret" not in zone_info.headers  # discovery needs no credentials
    [ticket] = at_sim.state.requests_to("GET Tickets/{id}")
    assert ticket.path == "/zone5/ATServicesRest/V1.0/Tickets/48291"
    assert at_sim.state.requests[0] is versions


async def test_a_second_client_for_the_user_reuses_the_zone(client: AutotaskClient, at_sim: Sim) -> None:
    await client.get_ticket(TICKET)
    async with AutotaskClient(at_sim.config()) as second:
        await second.get_ticket(TICKET)
        await second.list_statuses(await second.get_ticket(TICKET))
    assert (len(at_sim.state.requests_to(VERSIONS)), len(at_sim.state.requests_to(ZONE_INFO))) == (1, 1)
    assert len(at_sim.state.requests_to("GET Tickets/{id}")) == 3


@pytest.mark.parametrize("failure", ["wrong secret", "rate limited"])
async def test_the_zone_of_a_failed_call_is_not_cached(at_sim: Sim, failure: str) -> None:
    wrong_secret = failure == "wrong secret"
    at_sim.state.switches.rate_limit_next = 0 if wrong_secret else 1
    secret = ("wrong-" if wrong_secret else "") + at_sim.credentials.secret
    async with AutotaskClient(at_sim.config(secret=secret)) as failing:
        with pytest.raises(PsaAuthFailed if wrong_secret else PsaRateLimited):
            await failing.get_ticket(TICKET)
    for _ in range(2):
        async with AutotaskClient(at_sim.config()) as right:
            await right.get_ticket(TICKET)
    # The failed client's discovery was not shared; the first good client discovered again, the next one did not.
    assert len(at_sim.state.requests_to(ZONE_INFO)) == 2


async def test_version_1_0_is_used_though_a_later_one_is_advertised(client: AutotaskClient, at_sim: Sim) -> None:
    at_sim.state.api_versions = ["1.0", "2.0"]
    await client.get_ticket(TICKET)
    assert all("/V1.0/" in r.path for r in at_sim.state.requests_to("GET Tickets/{id}"))


async def test_discovery_without_version_1_0_is_unavailable(client: AutotaskClient, at_sim: Sim) -> None:
    at_sim.state.api_versions = ["2.0"]
    with pytest.raises(PsaUnavailable, match=r"does not offer REST API version 1\.0"):
        await client.check()
    assert at_sim.state.requests_to(ZONE_INFO) == []


async def test_configured_zone_skips_discovery(at_sim: Sim) -> None:
    async with AutotaskClient(at_sim.config(zone_url=at_sim.zone_url + "/")) as client:
        assert (await client.get_ticket(TICKET)).id == TICKET
    assert at_sim.state.requests_to(VERSIONS) == at_sim.state.requests_to(ZONE_INFO) == []


async def test_unknown_user_is_auth_failed_at_discovery(at_sim: Sim) -> None:
    async with AutotaskClient(at_sim.config(username="nobody@elsewhere.example")) as client:
        with pytest.raises(PsaAuthFailed, match=r"knows no API user 'nobody@elsewhere\.example'"):
            await client.check()


# -- headers, check, transport failures -----------------------------------------------------------


async def test_every_zone_call_sends_the_three_headers(client: AutotaskClient, at_sim: Sim) -> None:
    await client.get_ticket(TICKET)
    c = at_sim.credentials
    zone_calls = [r for r in at_sim.state.requests if r.path.startswith("/zone5/")]
    assert len(zone_calls) == 2  # the ticket, then the Status picklist for its name
    for call in zone_calls:
        assert (call.headers["apiintegrationcode"], call.headers["username"], call.headers["secret"]) == (
            c.integration_code, c.username, c.secret)
        assert "impersonationresourceid" not in call.headers


@pytest.mark.parametrize("missing", ["ApiIntegrationCode", "UserName", "Secret"])
async def test_the_simulator_refuses_a_call_without_any_of_the_headers(at_sim: Sim, missing: str) -> None:
    c = at_sim.credentials
    headers = {"ApiIntegrationCode": c.integration_code, "UserName": c.username, "Secret": c.secret}
    del headers[missing]
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{at_sim.zone_url}/V1.0/Tickets/{TICKET}", headers=headers)
    assert response.status_code == 401


async def test_check_passes_and_wrong_secret_is_auth_failed_without_it(client: AutotaskClient, at_sim: Sim) -> None:
    await client.check()
    assert len(at_sim.state.requests_to("GET Tickets/entityInformation/fields")) == 1
    wrong = "wrong-" + at_sim.credentials.secret
    async with AutotaskClient(at_sim.config(secret=wrong)) as bad:
        with pytest.raises(PsaAuthFailed, match="authentication failed") as caught:
            await bad.check()
    assert caught.value.status_code == 401 and not caught.value.retryable
    for text in (caught.value.message, str(caught.value), repr(caught.value)):
        assert wrong not in text and at_sim.credentials.secret not in text


async def test_unreachable_zone_is_unavailable() -> None:
    config = AutotaskConfig("u@x.example", "s3cret-value", "CODE", zone_url=f"http://127.0.0.1:{free_port()}/z",
                            timeout_s=5)
    async with AutotaskClient(config) as client:
        with pytest.raises(PsaUnavailable, match="could not be reached") as caught:
            await client.post_note(TICKET, "x", NoteType.RESOLUTION)
    assert not caught.value.may_have_landed


async def test_slow_write_is_unavailable_and_may_have_landed(at_sim: Sim) -> None:
    async with AutotaskClient(at_sim.config(zone_url=at_sim.zone_url, timeout_s=0.3)) as client:
        at_sim.state.switches.delay_s = 1.0
        with pytest.raises(PsaUnavailable, match=r"did not answer within 0\.3s") as caught:
            await client.post_note(TICKET, "x", NoteType.RESOLUTION)
    assert caught.value.may_have_landed


# -- tickets and statuses -------------------------------------------------------------------------


async def test_get_ticket_names_its_status_from_the_picklist(client: AutotaskClient, at_sim: Sim) -> None:
    assert await client.get_ticket(TICKET) == PsaTicket(
        id=TICKET, summary="Outlook prompts for password after M365 migration", status_id=NEW, status_name="New")
    assert (await client.get_ticket("48292")).status_name == "In Progress"
    assert len(at_sim.state.requests_to("GET Tickets/entityInformation/fields")) == 1  # cached per client


async def test_missing_ticket_is_not_found(client: AutotaskClient) -> None:
    with pytest.raises(PsaNotFound, match="ticket 99999 was not found"):
        await client.get_ticket("99999")  # Autotask answers 200 with a null item
    with pytest.raises(PsaNotFound, match="Ticket 99999 was not found") as caught:
        await client.post_note("99999", "x", NoteType.RESOLUTION)  # a 404
    assert caught.value.status_code == 404


async def test_list_statuses_skips_inactive_and_marks_complete_closed(client: AutotaskClient) -> None:
    statuses = await client.list_statuses(await client.get_ticket(TICKET))
    assert [(s.id, s.name, s.closed) for s in statuses] == [
        (1, "New", False), (5, "Complete", True), (7, "Waiting Customer", False), (8, "In Progress", False),
        (11, "Escalated", False),
    ]


async def test_update_status_then_get_ticket_shows_it(client: AutotaskClient, at_sim: Sim) -> None:
    await client.update_status(TICKET, COMPLETE)
    ticket = await client.get_ticket(TICKET)
    assert (ticket.status_id, ticket.status_name) == (COMPLETE, "Complete")
    [patch] = at_sim.state.requests_to("PATCH Tickets")
    assert (patch.path, patch.body) == ("/zone5/ATServicesRest/V1.0/Tickets", {"id": 48291, "status": COMPLETE})


async def test_ignored_status_change_is_seen_on_re_read(client: AutotaskClient, at_sim: Sim) -> None:
    at_sim.state.switches.ignore_status_change = True
    await client.update_status(TICKET, COMPLETE)
    assert (await client.get_ticket(TICKET)).status_id == NEW


async def test_status_changed_behind_our_back_is_seen(client: AutotaskClient, at_sim: Sim) -> None:
    await client.update_status(TICKET, COMPLETE)
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{at_sim.url}/_simulator/tickets/48291/status", json={"status_id": ESCALATED})
    assert response.status_code == 200
    assert (await client.get_ticket(TICKET)).status_name == "Escalated"


async def test_invalid_status_is_a_rejection_not_an_outage(client: AutotaskClient) -> None:
    with pytest.raises(PsaRejected, match="not a valid Status") as caught:
        await client.update_status(TICKET, 13)  # an inactive value
    assert caught.value.status_code == 500 and not caught.value.retryable
    assert not isinstance(caught.value, PsaUnavailable)


# -- notes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("note_type", "publish", "title"), [
    (NoteType.RESOLUTION, 1, "Resolution"), (NoteType.DESCRIPTION, 1, "Problem description"),
    (NoteType.INTERNAL_ANALYSIS, 2, "Internal analysis"),
])
async def test_post_note_publishes_per_note_type(
        client: AutotaskClient, at_sim: Sim, note_type: NoteType, publish: int, title: str) -> None:
    note = await client.post_note(TICKET, f"Checked the {note_type} path", note_type)
    [stored] = at_sim.state.notes(48291)
    assert (note.id, note.text, note.note_type) == (str(stored["id"]), f"Checked the {note_type} path", note_type)
    assert (stored["publish"], stored["title"], stored["noteType"]) == (publish, title, 1)
    found = await client.find_note(TICKET, f"the {note_type} path")
    assert found is not None and (found.id, found.note_type) == (note.id, note_type) and found.created_at


async def test_find_note_follows_pages_and_returns_the_newest_match(client: AutotaskClient, at_sim: Sim) -> None:
    at_sim.state.notes_page_size = 2
    first = await client.post_note(TICKET, "Resolved it [rflow:abc123]", NoteType.RESOLUTION)
    for i in range(3):
        await client.post_note(TICKET, f"later note {i}", NoteType.INTERNAL_ANALYSIS)
    newest = await client.post_note(TICKET, "Edited [rflow:abc123]", NoteType.RESOLUTION)
    found = await client.find_note(TICKET, "[rflow:abc123]")
    assert found is not None and found.id == newest.id != first.id and found.text == "Edited [rflow:abc123]"
    pages = [r.query.get("page") for r in at_sim.state.requests_to(NOTES_GET)]
    assert pages == [None, "2", "3"]
    assert await client.find_note(TICKET, "[rflow:nope]") is None


async def test_find_note_does_not_follow_a_next_page_on_another_host(client: AutotaskClient, at_sim: Sim) -> None:
    at_sim.state.notes_page_size = 1
    for i in range(2):
        await client.post_note(TICKET, f"note {i}", NoteType.RESOLUTION)
    with at_simulator.running_autotask_simulator() as other:
        at_sim.state.next_page_base = other.url
        with pytest.raises(PsaUnavailable, match="on another host"):
            await client.find_note(TICKET, "[rflow:absent]")
        assert other.state.requests == []  # the credentials never went there


async def test_update_note_replaces_the_text_and_keeps_who_may_read_it(client: AutotaskClient, at_sim: Sim) -> None:
    note = await client.post_note(TICKET, "first draft", NoteType.INTERNAL_ANALYSIS)
    await client.update_note(TICKET, note.id, "second draft")
    [stored] = at_sim.state.notes(48291)
    assert (stored["description"], stored["publish"]) == ("second draft", 2)
    [patch] = at_sim.state.requests_to("PATCH Tickets/{id}/Notes")
    assert patch.body == {"id": int(note.id), "description": "second draft"}
    with pytest.raises(PsaNotFound):
        await client.update_note(TICKET, "999999", "x")


# -- post_work ------------------------------------------------------------------------------------


async def test_post_work_posts_one_note_and_one_time_entry(client: AutotaskClient, at_sim: Sim) -> None:
    provider: PsaProvider = client
    posted = await provider.post_work(TICKET, "Reset the MFA token", NoteType.RESOLUTION, minutes=90,
                                      status_id=COMPLETE, ended_at=ENDED)
    [note] = at_sim.state.notes(48291)
    [entry] = at_sim.state.time_entries
    assert posted == PsaPost(note=posted.note, time_entry_id=str(entry["id"]), status_sent=False)
    assert posted.note.id == str(note["id"]) and note["description"] == "Reset the MFA token"
    assert entry["hoursWorked"] == 1.5 and entry["summaryNotes"] == "Reset the MFA token"
    assert (entry["ticketID"], entry["isNonBillable"]) == (48291, False)
    assert (entry["startDateTime"], entry["endDateTime"]) == ("2026-12-05T13:00:00Z", "2026-12-05T14:30:00Z")
    assert entry["dateWorked"].startswith("2026-12-05")
    [sent] = at_sim.state.requests_to("POST TimeEntries")
    assert "resourceID" not in sent.body
    assert (await client.get_ticket(TICKET)).status_id == NEW  # the status is the caller's next call


async def test_post_work_without_minutes_logs_no_time(client: AutotaskClient, at_sim: Sim) -> None:
    posted = await client.post_work(TICKET, "Escalating", NoteType.INTERNAL_ANALYSIS, minutes=None, status_id=None,
                                    ended_at=ENDED)
    assert posted.time_entry_id is None and len(at_sim.state.notes(48291)) == 1
    assert at_sim.state.time_entries == [] and at_sim.state.requests_to("POST TimeEntries") == []


async def test_impersonation_sends_the_header_and_logs_time_for_that_resource(at_sim: Sim) -> None:
    config = at_sim.config(impersonation_resource_id=str(TECHNICIAN_RESOURCE_ID))
    async with AutotaskClient(config) as client:
        await client.post_work(TICKET, "Done", NoteType.RESOLUTION, minutes=15, status_id=None, ended_at=ENDED)
    [note] = at_sim.state.notes(48291)
    [entry] = at_sim.state.time_entries
    assert note["creatorResourceID"] == entry["resourceID"] == TECHNICIAN_RESOURCE_ID
    assert entry["hoursWorked"] == 0.25
    [post] = at_sim.state.requests_to(NOTES_POST)
    assert post.headers["impersonationresourceid"] == str(TECHNICIAN_RESOURCE_ID)


async def test_hours_worked_over_a_day_is_refused_by_autotask_as_a_rejection(client: AutotaskClient) -> None:
    body = {"ticketID": 48291, "dateWorked": "2026-12-05T00:00:00Z", "hoursWorked": 25, "summaryNotes": "x"}
    with pytest.raises(PsaRejected, match="hoursWorked must be greater than 0 and no more than 24") as caught:
        await client.request("POST", "TimeEntries", json=body)
    assert caught.value.status_code == 500 and not caught.value.retryable


# -- errors ---------------------------------------------------------------------------------------


async def test_500_with_errors_is_rejected_and_nothing_is_stored(client: AutotaskClient, at_sim: Sim) -> None:
    async with httpx.AsyncClient(base_url=at_sim.url) as http:
        refused = await http.post("/_simulator/switches", json={"reject_next_with_errors": "not a list"})
        accepted = await http.post("/_simulator/switches",
                                   json={"reject_next_with_errors": ["Title is required", "Publish is invalid"]})
    assert (refused.status_code, accepted.status_code) == (400, 200)
    with pytest.raises(PsaRejected) as caught:
        await client.post_note(TICKET, "x", NoteType.RESOLUTION)
    assert caught.value.message == "Autotask: Title is required; Publish is invalid"
    assert caught.value.status_code == 500 and not caught.value.retryable
    assert at_sim.state.notes(48291) == []


async def test_bare_500_after_the_note_was_stored_may_have_landed(client: AutotaskClient, at_sim: Sim) -> None:
    at_sim.state.switches.fail_after_note_store_next = 1
    with pytest.raises(PsaUnavailable) as caught:
        await client.post_note(TICKET, "Fixed [rflow:w1]", NoteType.RESOLUTION)
    assert caught.value.may_have_landed and caught.value.retryable and caught.value.status_code == 500
    assert "An error has occurred" not in caught.value.message  # a body not in Autotask's error shape is not echoed
    found = await client.find_note(TICKET, "[rflow:w1]")
    assert found is not None and [n["description"] for n in at_sim.state.notes(48291)] == ["Fixed [rflow:w1]"]


async def test_rate_limited_carries_retry_after(client: AutotaskClient, at_sim: Sim) -> None:
    await assert_rate_limit_takes_one_call(at_sim.state.switches,
                                           lambda: client.post_note(TICKET, "x", NoteType.DESCRIPTION),
                                           lambda: at_sim.state.notes(48291))


async def test_the_secret_is_scrubbed_from_autotask_error_text(client: AutotaskClient, at_sim: Sim) -> None:
    secret, code = at_sim.credentials.secret, at_sim.credentials.integration_code
    at_sim.state.switches.reject_next_with_errors = [f"Secret {secret} is not valid for {code}"]
    errors: list[PsaError] = []
    with pytest.raises(PsaRejected) as caught:
        await client.get_ticket(TICKET)
    errors.append(caught.value)
    at_sim.state.switches.rate_limit_next = 1
    with pytest.raises(PsaRateLimited) as limited:
        await client.get_ticket(TICKET)
    errors.append(limited.value)
    assert "Secret *** is not valid for ***" in errors[0].message
    for error in errors:
        assert secret not in f"{error.message} {error!s} {error!r}" and code not in error.message
