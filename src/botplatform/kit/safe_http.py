"""Outbound HTTP to URLs that customers choose (webhook endpoints, a bot's HTTP node).

Such a URL must never reach the platform's own network: loopback, private ranges,
link-local (and the cloud metadata service on it), CGNAT, multicast, the unspecified address,
and the IPv6 forms that smuggle an IPv4 address through (IPv4-mapped, 6to4, Teredo, NAT64).

The host is resolved once, every address it resolves to is checked, and the connection goes to
the checked address: the URL handed to httpx carries the IP, while the `Host` header and the
TLS server name (SNI, and so certificate checking) keep the original host name. A second DNS
answer (rebinding) therefore has nothing to change. Redirects are never followed.

An operator allow-list (`OUTBOUND_ALLOWLIST`: host names or CIDR ranges) lets chosen
internal targets through; nothing else does.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from botplatform.kit.errors import AppError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

DEFAULT_MAX_RESPONSE_BYTES = 1_048_576


class BlockedDestination(AppError):
    status_code = 422
    code = "blocked_destination"
    message = "This URL points to an address the platform does not call."


# IANA's IPv4 and IPv6 special-purpose address registries (RFC 6890 and successors), the
# multicast blocks, and the deprecated ranges: none of them is a customer's public server.
_BLOCKED_V4 = tuple(
    ipaddress.IPv4Network(cidr)
    for cidr in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the local host
        "10.0.0.0/8",
        "100.64.0.0/10",  # carrier-grade NAT (shared address space)
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata at 169.254.169.254
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",
        "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the limited broadcast 255.255.255.255
    )
)
_BLOCKED_V6 = tuple(
    ipaddress.IPv6Network(cidr)
    for cidr in (
        "::/96",  # unspecified, loopback and the deprecated IPv4-compatible form
        "::ffff:0:0/96",  # IPv4-mapped: refused outright, IPv4 targets are reached as IPv4
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments, Teredo 2001::/32 among them
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4 (deprecated; relays reach arbitrary IPv4 space)
        "3fff::/20",  # documentation
        "5f00::/16",  # segment routing
        "fc00::/7",  # unique local, AWS metadata fd00:ec2::254 among them
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
# Well-known NAT64 prefix: the last 32 bits are an IPv4 address, judged as one.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")

# Digits, dots and hex letters only: a spelling inet_aton() would read as IPv4 ("2130706433",
# "0x7f.1", "0177.0.0.1", "127.1"). Only the canonical dotted quad is accepted as an address.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]*))*\.?$", re.IGNORECASE)


def is_blocked_address(address: IPAddress) -> bool:
    """True when `address` is not a public unicast address (allow-list aside)."""
    if isinstance(address, ipaddress.IPv4Address):
        return any(address in network for network in _BLOCKED_V4)
    if address in _NAT64:
        return is_blocked_address(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.scope_id:
        return True
    return any(address in network for network in _BLOCKED_V6)


@dataclass(frozen=True)
class Allowlist:
    hosts: frozenset[str]
    networks: tuple[IPNetwork, ...]

    @classmethod
    def parse(cls, entries: Sequence[str]) -> Allowlist:
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().lower().rstrip(".")
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.add(entry)
        return cls(frozenset(hosts), tuple(networks))

    def permits_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def permits_address(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@dataclass(frozen=True)
class Target:
    """A URL that passed the syntactic checks, before its host is resolved."""

    url: httpx.URL
    host: str
    port: int
    address: IPAddress | None


def check_url(url: str) -> Target:
    """The checks that need no DNS: scheme, host present, no credentials, no odd IPv4
    spellings, and a literal address that is public. Raises BlockedDestination."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise BlockedDestination("The URL is not valid.", details={"url": url}) from exc
    if parsed.scheme not in ("http", "https"):
        raise BlockedDestination("Only http and https URLs are called.")
    host = parsed.host
    if not host:
        raise BlockedDestination("The URL has no host.")
    if parsed.userinfo:
        raise BlockedDestination("Credentials in the URL are not accepted.")
    address = _literal_address(host)
    if address is None and _NUMERIC_HOST.match(host):
        raise BlockedDestination("Write an IPv4 address as four decimal numbers.")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return Target(parsed, host, port, address)


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise httpx.ConnectError(f"cannot resolve {host}") from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


async def resolve_target(
    target: Target, allowlist: Allowlist, resolver: Resolver = system_resolver
) -> IPAddress:
    """The one address to connect to. Every address the name resolves to must be allowed,
    so a name with one public and one private record is refused as a whole."""
    if target.address is not None:
        addresses = [target.address]
    else:
        addresses = await resolver(target.host, target.port)
        if not addresses:
            raise httpx.ConnectError(f"cannot resolve {target.host}")
    if allowlist.permits_host(target.host):
        return addresses[0]
    for address in addresses:
        if is_blocked_address(address) and not allowlist.permits_address(address):
            raise BlockedDestination(
                "This URL points to a private, loopback, link-local or otherwise reserved address.",
                details={"host": target.host},
            )
    return addresses[0]


async def safe_request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    allowlist: Sequence[str],
    headers: Mapping[str, str] | None = None,
    json: Any = None,
    content: bytes | None = None,
    timeout: float = 10.0,  # noqa: ASYNC109 - one budget for DNS, connect and response
    resolver: Resolver = system_resolver,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> httpx.Response:
    """One request to a customer-chosen URL. Raises BlockedDestination for a refused URL,
    httpx.TimeoutException when `timeout` (DNS + connect + response) runs out, and other
    httpx.TransportError for network failures. The body read is capped at
    `max_response_bytes` (the rest is dropped)."""
    target = check_url(url)
    try:
        async with asyncio.timeout(timeout):
            address = await resolve_target(target, Allowlist.parse(allowlist), resolver)
            request = _pinned_request(client, method, target, address, headers, json, content)
            request.extensions["timeout"] = httpx.Timeout(timeout).as_dict()
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                body = await _read_capped(response, max_response_bytes)
            finally:
                await response.aclose()
    except TimeoutError as exc:
        raise httpx.TimeoutException(f"no answer from {target.host} in {timeout}s") from exc
    # The body is already decoded: the copy must not claim an encoding or a length.
    kept = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(response.status_code, headers=kept, content=body, request=request)


def _pinned_request(
    client: httpx.AsyncClient,
    method: str,
    target: Target,
    address: IPAddress,
    headers: Mapping[str, str] | None,
    json: Any,
    content: bytes | None,
) -> httpx.Request:
    request = client.build_request(
        method, target.url, headers=dict(headers or {}), json=json, content=content
    )
    request.url = target.url.copy_with(host=str(address))
    request.headers["Host"] = target.url.netloc.decode("ascii").rsplit("@", 1)[-1]
    if target.url.scheme == "https":
        request.extensions["sni_hostname"] = target.host
        # The pool keys connections by (scheme, IP, port): a TLS connection opened for one
        # host name must not carry a request for another name that shares the address.
        request.headers["Connection"] = "close"
    return request


async def _read_capped(response: httpx.Response, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk[: limit - size])
        size += len(chunks[-1])
        if size >= limit:
            break
    return b"".join(chunks)
