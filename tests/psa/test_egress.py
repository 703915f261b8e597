"""Issue 20 items 2 and 4: a PSA site URL cannot point the server inside, in any notation, at any time; a URL
the HTTP client cannot parse is a 422, never a 500.

Outside dev mode the address is checked when the connection is opened (every time), and the socket goes to
the address that was checked. Each case below runs a TCP listener on 127.0.0.1 and proves it is never
connected to. No traffic leaves loopback: a "public" address is only ever handed to a fake backend.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpcore
import httpx
import pytest
from httpx import AsyncClient
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from api.app import create_app
from core.config import Settings
from db.models import PsaConnection
from integrations.psa.connectwise import ConnectWiseClient, cw_error_detail
from integrations.psa.egress import EgressPolicy, EgressRefused, PinnedBackend, PinnedTransport, pinned_client
from tests.helpers import make_user
from tests.psa.cw_simulator import SimulatorHandle
from tests.psa.support import API, CONNECTIONS, connect, connection_body, make_desk

STRICT = EgressPolicy(allow_private=False)


class Listener:
    """A TCP listener on 127.0.0.1 that counts the connections it accepted."""

    def __init__(self) -> None:
        self.accepted = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Listener:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            writer.close()

        self._server = await asyncio.start_server(accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    async with Listener() as running:
        yield running


# Every way the issue (and the resolver) spells loopback, plus names that resolve to it.
LOOPBACK_HOSTS = ["2130706433", "127.1", "0x7f000001", "0", "0177.1", "127.0.0.1", "[::1]", "[::ffff:127.0.0.1]",
                  "localhost", socket.gethostname()]


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
async def test_no_notation_of_loopback_is_connected_to_outside_dev_mode(listener: Listener, host: str) -> None:
    async with pinned_client(STRICT, timeout_s=5) as http:
        with pytest.raises(EgressRefused, match="not a public address"):
            await http.get(f"https://{host}:{listener.port}/login/companyinfo/acme")
    assert listener.accepted == 0
    # The same listener is reachable, so the refusal above is the check and not a dead port.
    async with pinned_client(EgressPolicy(allow_private=True), timeout_s=5) as http:
        with pytest.raises(httpx.TransportError):
            await http.get(f"http://127.0.0.1:{listener.port}/")
    assert listener.accepted == 1


@pytest.mark.parametrize("host", ["localhost", socket.gethostname(), "127.1"])
async def test_plain_http_is_refused_before_any_connection(listener: Listener, host: str) -> None:
    async with pinned_client(STRICT, timeout_s=5) as http:
        with pytest.raises(EgressRefused, match="https"):
            await http.get(f"http://{host}:{listener.port}/")
    assert listener.accepted == 0


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Records where it was asked to connect and connects nowhere."""

    def __init__(self) -> None:
        self.hosts: list[str] = []

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        self.hosts.append(host)
        raise httpcore.ConnectError("the test connects nowhere")


def test_pinned_clients_load_the_ca_bundle_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    # Admin calls build a pinned client each; loading the CA bundle (milliseconds) for each was waste.
    pinned_client(STRICT, timeout_s=5)
    loads: list[object] = []
    original = ssl.SSLContext.load_verify_locations

    def counting(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        loads.append(args or kwargs)
        original(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counting)
    for _ in range(3):
        pinned_client(STRICT, timeout_s=5)
    assert loads == []


async def test_the_connection_goes_to_the_address_that_was_checked() -> None:
    # A name is resolved once, in the check, and the socket is opened to that address: no second lookup.
    inner = RecordingBackend()
    backend = PinnedBackend(EgressPolicy(allow_private=True), inner)
    with pytest.raises(httpcore.ConnectError):
        await backend.connect_tcp("localhost", 443, timeout=5)
    assert inner.hosts and all(ipaddress.ip_address(h).is_loopback for h in inner.hosts)
    # A public address passes the strict check and is dialled as checked (the fake backend sends nothing).
    inner = RecordingBackend()
    async with httpx.AsyncClient(transport=PinnedTransport(STRICT, inner=inner)) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get("https://93.184.216.34:9443/")
        with pytest.raises(EgressRefused):
            await http.get("https://10.0.0.1/")
        with pytest.raises(EgressRefused):
            await http.get("https://169.254.169.254/")
    assert inner.hosts == ["93.184.216.34"]


async def test_every_call_checks_again_not_only_the_creation(listener: Listener) -> None:
    # A client built for a URL that was accepted once (or whose name now resolves inside) is still refused.
    config_site = f"https://127.1:{listener.port}"
    client = ConnectWiseClient(_config(config_site), pinned_client(STRICT, timeout_s=5))
    async with client:
        for _ in range(3):
            with pytest.raises(Exception, match="may not be called"):
                await client.check()
    assert listener.accepted == 0


def test_a_server_that_is_not_connectwise_is_never_quoted() -> None:
    request = httpx.Request("GET", "https://example.test/")
    html = httpx.Response(502, text="<h1>internal-admin-panel v2 on 10.0.0.5</h1>", request=request)
    assert cw_error_detail(html) == "HTTP 502 Bad Gateway"
    other_json = httpx.Response(401, json={"message": "redis at 10.0.0.7 says hello"}, request=request)
    assert "redis" not in cw_error_detail(other_json)
    spoofed_reason = httpx.Response(404, text="x", request=request, extensions={"reason_phrase": b"secret-host"})
    assert "secret-host" not in cw_error_detail(spoofed_reason)
    cw = httpx.Response(400, json={"code": "InvalidObject", "message": "ticket object is invalid"}, request=request)
    assert cw_error_detail(cw) == "ticket object is invalid (InvalidObject)"


def _config(site_url: str) -> Any:
    from integrations.psa.connectwise import ConnectWiseConfig

    return ConnectWiseConfig(site_url=site_url, company_id="acme", public_key="pub-key", private_key="priv-key",
                             client_id="client", codebase="v4_6_release/")


# --- over HTTP, with DEV_MODE unset -------------------------------------------------------------------


@pytest.fixture
async def strict_client(settings: Settings, app: Any) -> AsyncIterator[AsyncClient]:
    """The API as `rflow api` serves it with DEV_MODE unset (the shared worker keeps running workflows)."""
    strict = create_app(settings.model_copy(update={"dev_mode": False}))
    transport = httpx.ASGITransport(app=strict)
    async with strict.router.lifespan_context(strict), AsyncClient(transport=transport, base_url="http://test",
                                                                   timeout=30) as c:
        yield c


async def test_outside_dev_mode_internal_sites_are_refused_at_creation_and_at_every_call(
    strict_client: AsyncClient, db: AsyncSession, listener: Listener, cw_sim: SimulatorHandle,
) -> None:
    admin = (await make_user(strict_client, db, role="admin"))["headers"]
    for host in ["2130706433", "127.1", "0x7f000001", "0", "localhost", socket.gethostname()]:
        resp = await connect(strict_client, admin, cw_sim, site_url=f"https://{host}:{listener.port}")
        assert resp.status_code == 400, (host, resp.text)
        assert "not a public address" in resp.json()["detail"]
    # A connection stored earlier (or a name that resolves inside only now) is refused when it is used.
    body = connection_body(cw_sim, site_url="https://93.184.216.34")  # public, and nothing is sent to it
    created = await strict_client.post(CONNECTIONS, headers=admin, json=body)
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    for host in ["127.1", "0x7f000001", socket.gethostname()]:
        await db.execute(update(PsaConnection).where(PsaConnection.id == uuid.UUID(cid))
                         .values(site_url=f"https://{host}:{listener.port}"))
        await db.commit()
        tested = await strict_client.post(f"{CONNECTIONS}/{cid}/test", headers=admin)
        assert tested.status_code == 200, tested.text
        assert tested.json()["ok"] is False and "not a public address" in tested.json()["detail"]
        statuses = await strict_client.get(f"{CONNECTIONS}/{cid}/boards/1/statuses", headers=admin)
        assert statuses.status_code == 400 and "not a public address" in statuses.json()["detail"], statuses.text
    assert listener.accepted == 0


# --- item 4: URLs the client cannot parse, ticket ids the PSA cannot take ---------------------------------

UNPARSABLE = ["http://0177.0.0.1:8124", "http://999.1.1.1:8124", "http://127.0.0.1:99999"]


@pytest.mark.parametrize("site", [*UNPARSABLE, "http://127.0.0.1:0", "http://127.0.0.1:8124/path", "http://u@127.0.0.1"])
async def test_a_site_url_the_client_cannot_parse_is_a_422(client: AsyncClient, db: AsyncSession,
                                                           cw_sim: SimulatorHandle, site: str) -> None:
    admin = (await make_user(client, db, role="admin"))["headers"]
    resp = await connect(client, admin, cw_sim, site_url=site)
    assert resp.status_code == 422, resp.text
    assert "site_url" in str(resp.json()["detail"])


async def test_a_stored_unparsable_site_url_is_never_a_500(client: AsyncClient, db: AsyncSession,
                                                           cw_sim: SimulatorHandle) -> None:
    desk = await make_desk(client, db, cw_sim)
    for site in UNPARSABLE:
        await db.execute(update(PsaConnection).where(PsaConnection.id == uuid.UUID(desk.connection_id))
                         .values(site_url=site))
        await db.commit()
        tested = await client.post(f"{CONNECTIONS}/{desk.connection_id}/test", headers=desk.admin)
        assert tested.status_code == 200 and tested.json()["ok"] is False, (site, tested.text)
        statuses = await client.get(f"{CONNECTIONS}/{desk.connection_id}/boards/1/statuses", headers=desk.admin)
        assert statuses.status_code == 400 and "connect the site again" in statuses.json()["detail"], statuses.text
        opened = await client.post(API, headers=desk.engineer, json={
            "session_type": "chat", "intake_type": "psa_ticket", "psa_connection_id": desk.connection_id,
            "psa_ticket_id": "48291"})
        assert opened.status_code == 502, (site, opened.text)
        assert "ConnectWise site" in opened.json()["detail"]


@pytest.mark.parametrize("intake", ["psa_ticket", "free_text"])
@pytest.mark.parametrize("ticket", ["abc", "48-291", "0", "99999999999"])
async def test_a_ticket_id_connectwise_cannot_take_is_a_422(client: AsyncClient, db: AsyncSession,
                                                            cw_sim: SimulatorHandle, intake: str,
                                                            ticket: str) -> None:
    desk = await make_desk(client, db, cw_sim)
    body: dict[str, Any] = {"session_type": "chat", "intake_type": intake, "psa_connection_id": desk.connection_id,
                            "psa_ticket_id": ticket}
    if intake == "free_text":
        body["intake_content"] = {"text": "printer offline"}
    resp = await client.post(API, headers=desk.engineer, json=body)
    assert resp.status_code == 422, resp.text
    assert "ConnectWise ticket ids are whole numbers" in resp.json()["detail"]
    assert cw_sim.state.requests_to("GET service/tickets/{id}") == []
