"""Where a PSA connection may make this server connect, checked when it connects, every time.

A tenant admin chooses the site URL, so the URL is untrusted: outside dev mode only https to a global
(public) address is allowed. A check of the URL's text is not enough: `2130706433`, `127.1`, `0x7f000001`
and `0` are loopback to the system's resolver, and any DNS name may resolve to an internal address (or
change to one later). So the address is resolved and checked in the connection itself, and the socket is
opened to the very address that was checked (no second lookup a DNS answer could change).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import anyio
import httpcore
import httpx

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_PORT = 65535


class EgressRefused(Exception):
    """The site may not be connected to (plain http, or an address that is not public); `message` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class SiteAddress:
    """A site URL as the HTTP client parses it."""

    scheme: str
    host: str
    port: int


def parse_site_url(site_url: str) -> SiteAddress:
    """Parse a site URL or bare host the way httpx will (ValueError with what to fix when it cannot)."""
    site = site_url.strip().rstrip("/")
    if "://" not in site:
        site = f"https://{site}"
    try:
        url = httpx.URL(site)
    except httpx.InvalidURL as exc:
        raise ValueError(f"site_url is not a URL the server can call: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise ValueError("site_url must use https (or http in dev mode)")
    if not url.host:
        raise ValueError("site_url has no host")
    port = url.port if url.port is not None else (443 if url.scheme == "https" else 80)
    if not 1 <= port <= MAX_PORT:
        raise ValueError(f"site_url's port must be between 1 and {MAX_PORT}, not {port}")
    if url.path not in ("", "/") or url.query or url.fragment or url.userinfo:
        raise ValueError("site_url is the site's address only: no path, query or user")
    return SiteAddress(scheme=url.scheme, host=url.host, port=port)


def parse_api_url(api_url: str, field: str = "url") -> SiteAddress:
    """Parse an API root that may carry a path (`https://webservices5.autotask.net/atservicesrest`), as httpx will.

    ValueError names `field` and what to fix. A path is allowed (providers' APIs live under one); a query,
    fragment or user part is not, and a bare host means https.
    """
    text = api_url.strip()
    if "://" not in text:
        text = f"https://{text}"
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise ValueError(f"{field} is not a URL the server can call: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise ValueError(f"{field} must use https (or http in dev mode)")
    if not url.host:
        raise ValueError(f"{field} has no host")
    port = url.port if url.port is not None else (443 if url.scheme == "https" else 80)
    if not 1 <= port <= MAX_PORT:
        raise ValueError(f"{field}'s port must be between 1 and {MAX_PORT}, not {port}")
    if url.query or url.fragment or url.userinfo:
        raise ValueError(f"{field} is the API's address only: no query, fragment or user")
    return SiteAddress(scheme=url.scheme, host=url.host, port=port)


def literal_address(host: str) -> IpAddress | None:
    """The address a host names in any notation the resolver accepts (`127.1`, `0x7f000001`, `2130706433`)."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    try:
        # inet_aton is the parser getaddrinfo uses for numeric IPv4 hosts: every short, hex and octal form.
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def is_public(address: IpAddress) -> bool:
    """A global unicast address (IPv4 inside IPv6 judged as the IPv4 address it carries)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None and not is_public(embedded):
            return False
    return address.is_global and not address.is_multicast and not address.is_unspecified


@dataclass(frozen=True)
class EgressPolicy:
    """Dev mode allows the local simulator (http, loopback); otherwise only https to public addresses."""

    allow_private: bool = False

    def check_scheme(self, scheme: str) -> None:
        """Refuse plain http outside dev mode."""
        if scheme != "https" and not self.allow_private:
            raise EgressRefused("The PSA site must use https (plain http is allowed in dev mode only)")

    def check_address(self, address: IpAddress) -> None:
        """Refuse an address that is not public, outside dev mode."""
        if not self.allow_private and not is_public(address):
            # The address itself is not named: an admin must not learn what internal names resolve to.
            raise EgressRefused("The PSA site is not a public address: outside dev mode the server connects only "
                                "to public https hosts")

    def check_site(self, site_url: str, *, with_path: bool = False) -> SiteAddress:
        """Check what the URL's text alone tells (scheme, a literal address in any notation)."""
        site = parse_api_url(site_url) if with_path else parse_site_url(site_url)
        self.check_scheme(site.scheme)
        literal = literal_address(site.host)
        if literal is not None:
            self.check_address(literal)
        elif site.host.rstrip(".").lower() == "localhost" or site.host.rstrip(".").lower().endswith(".localhost"):
            self.check_address(ipaddress.IPv4Address("127.0.0.1"))
        return site

    async def resolve(self, host: str, port: int, limit_s: float | None = None) -> list[IpAddress]:
        """The host's addresses, each checked; refused when any one is not allowed (a DNS answer picks among them)."""
        if not 1 <= port <= MAX_PORT:
            raise EgressRefused(f"The PSA site's port must be between 1 and {MAX_PORT}")
        literal = literal_address(host)
        if literal is not None:
            found = [literal]
        else:
            try:
                with anyio.fail_after(limit_s):
                    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except TimeoutError:
                raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
            except (OSError, UnicodeError) as exc:
                raise httpcore.ConnectError(f"{host} does not resolve") from exc
            found = []
            for info in infos:
                address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
                if address not in found:
                    found.append(address)
        for address in found:
            self.check_address(address)
        return found


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Resolves and checks the host at every connect, then connects to the checked address itself."""

    def __init__(self, policy: EgressPolicy, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._policy = policy
        self._inner = inner or httpcore.AnyIOBackend()

    # httpcore's interface names the parameter `timeout`.
    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,  # noqa: ASYNC109
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        """Connect to the first checked address that answers (TLS then verifies the host name, not the address)."""
        addresses = await self._policy.resolve(host, port, timeout)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(str(address), port, timeout=timeout, local_address=local_address,
                                                     socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # resolve() returns at least one address or raises
        raise failure

    async def connect_unix_socket(self, path: str, timeout: float | None = None,  # noqa: ASYNC109
                                  socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        """Never: a PSA is reached over TCP only."""
        raise EgressRefused("The PSA site must be a TCP address")

    async def sleep(self, seconds: float) -> None:
        """Delegate (httpcore's connect retries)."""
        await self._inner.sleep(seconds)


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle costs milliseconds, and admin calls build a client each: one context per process.
    # Sharing is safe: httpcore only sets ALPN on it per connection, the same "http/1.1" for every pinned pool.
    return httpx.create_ssl_context(trust_env=False)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a `PinnedBackend`, refusing plain http outside dev mode; no proxy, no env."""

    def __init__(self, policy: EgressPolicy, *, ssl_context: ssl.SSLContext | None = None,
                 inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        ssl_context = ssl_context or _default_ssl_context()
        super().__init__(verify=ssl_context, trust_env=False)  # given a context, httpx loads no CA bundle
        self._policy = policy
        # httpx's transport takes no network backend: the same pool as its own, with ours underneath.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context, max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0,
            network_backend=PinnedBackend(policy, inner),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Check the scheme, then send (the backend checks the address when it connects)."""
        self._policy.check_scheme(request.url.scheme)
        return await super().handle_async_request(request)


def pinned_client(policy: EgressPolicy, timeout_s: float) -> httpx.AsyncClient:
    """An HTTP client for PSA calls: every connection checked by `policy`, no redirects, no proxy from the env."""
    return httpx.AsyncClient(transport=PinnedTransport(policy), timeout=timeout_s, trust_env=False,
                             follow_redirects=False)
