"""Issue 24 SSRF: outside dev mode every URL of every provider is https on a public host, including the zone
URL Autotask's discovery answers with and HaloPSA's token URL. A listener on 127.0.0.1 proves nothing inside
is ever connected to; the "public" discovery host is only ever answered by an in-process stand-in."""

from __future__ import annotations

import json
import secrets
import socket
from typing import Any

import httpx
import pytest
from httpx import AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession

from integrations.psa.autotask import AutotaskClient, AutotaskConfig, clear_zone_cache
from integrations.psa.base import PsaError
from integrations.psa.egress import EgressPolicy, PinnedTransport
from integrations.psa.halopsa import HaloClient, HaloConfig
from tests.helpers import make_user
from tests.psa.support import CONNECTIONS
from tests.psa.test_egress import Listener
from tests.psa.test_egress import listener as listener  # a fixture
from tests.psa.test_egress import strict_client as strict_client  # a fixture

STRICT = EgressPolicy(allow_private=False)
PUBLIC_DISCOVERY = "https://93.184.216.34/atservicesrest"  # never dialled: answered in process


class DiscoveryStandIn(httpx.AsyncBaseTransport):
    """Answers Autotask discovery on the public stand-in host; every other request goes through the strict
    egress transport, as the worker's would."""

    def __init__(self, zone_url: str) -> None:
        self.zone_url = zone_url
        self.strict = PinnedTransport(STRICT)
        self.discovery_calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host != "93.184.216.34":
            return await self.strict.handle_async_request(request)
        self.discovery_calls += 1
        if request.url.path.endswith("/versioninformation"):
            return httpx.Response(200, json={"apiVersions": ["1.0"]})
        return httpx.Response(200, json={"url": self.zone_url, "webUrl": "https://ww5.autotask.net/",
                                         "ci": 1, "dataBaseType": "Production", "ciLevel": 1})

    async def aclose(self) -> None:
        await self.strict.aclose()


def _zone_urls(port: int) -> list[str]:
    inside = [f"https://127.1:{port}", f"https://0x7f000001:{port}", f"https://{socket.gethostname()}:{port}"]
    return [f"{root}/ATServicesRest/" for root in [*inside, "http://93.184.216.35"]]  # the last: public, not https


async def test_a_zone_that_discovery_answers_is_checked_like_any_other_url(listener: Listener) -> None:
    for zone in _zone_urls(listener.port):
        clear_zone_cache()
        transport = DiscoveryStandIn(zone)
        config = AutotaskConfig(username=f"api-{secrets.token_hex(4)}@example.com", secret=secrets.token_urlsafe(12),
                                integration_code=secrets.token_urlsafe(12), discovery_url=PUBLIC_DISCOVERY)
        async with httpx.AsyncClient(transport=transport, timeout=5) as http:
            client = AutotaskClient(config, http)
            with pytest.raises(PsaError) as refused:
                await client.get_ticket("48291")
        assert transport.discovery_calls >= 1, zone  # it did discover: the zone itself was refused
        assert any(word in refused.value.message for word in ("public address", "https")), refused.value.message
        assert config.secret not in refused.value.message
    assert listener.accepted == 0


async def test_a_halo_token_url_inside_is_refused_before_any_connection(listener: Listener) -> None:
    for auth in (f"https://127.1:{listener.port}/auth", f"https://{socket.gethostname()}:{listener.port}/auth"):
        config = HaloConfig(api_url="https://93.184.216.34/api", client_id=secrets.token_hex(8),
                            client_secret=secrets.token_urlsafe(16), auth_url=auth)
        async with httpx.AsyncClient(transport=PinnedTransport(STRICT), timeout=5) as http:
            with pytest.raises(PsaError) as refused:
                await HaloClient(config, http).get_ticket("48291")
        assert config.client_secret not in refused.value.message
    assert listener.accepted == 0


def _bodies(port: int) -> list[dict[str, Any]]:
    at = {"provider": "autotask", "username": "api@example.com", "secret": secrets.token_urlsafe(12),
          "integration_code": secrets.token_urlsafe(12)}
    halo = {"provider": "halopsa", "client_id": secrets.token_hex(8), "client_secret": secrets.token_urlsafe(16)}
    inside = [f"https://127.1:{port}/x", f"https://0x7f000001:{port}/x", f"https://{socket.gethostname()}:{port}/x"]
    return [*({**at, "zone_url": url} for url in inside), *({**at, "discovery_url": url} for url in inside),
            *({**halo, "api_url": url} for url in inside),
            *({**halo, "api_url": "https://93.184.216.34/api", "auth_url": url} for url in inside)]


async def test_outside_dev_mode_no_provider_url_may_point_inside(strict_client: AsyncClient, db: AsyncSession,
                                                                  listener: Listener) -> None:
    admin = (await make_user(strict_client, db, role="admin"))["headers"]
    for body in _bodies(listener.port):
        resp = await strict_client.post(CONNECTIONS, headers=admin, json=body)
        assert resp.status_code in (400, 422), (body, resp.text)
        detail = json.dumps(resp.json()["detail"])
        assert "public address" in detail or "https" in detail, (body, detail)
        assert not any(body[k] in resp.text for k in ("secret", "integration_code", "client_secret") if k in body)
    assert listener.accepted == 0
