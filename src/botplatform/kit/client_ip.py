"""The caller's IP address, read correctly behind trusted proxies and never from a header an
untrusted peer could have written."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: Iterable[str]) -> list[Network]:
    return [ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip()]


def _is_trusted(address: str, trusted: list[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def client_ip(scope: dict[str, Any] | Any, trusted: list[Network]) -> str:
    """The peer's address; if the peer is a trusted proxy, the right-most address of
    X-Forwarded-For that is not itself a trusted proxy (the left part is client-written)."""
    peer = (scope.get("client") or ("", 0))[0] or ""
    if not trusted or not _is_trusted(peer, trusted):
        return str(peer)
    forwarded = ",".join(
        bytes(value).decode("latin-1")
        for key, value in scope.get("headers", [])
        if key == b"x-forwarded-for"
    )
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return str(peer)  # garbage from a proxy we trust: fall back to the proxy
    return str(hops[0]) if hops else str(peer)


def ip_allowed(ip: str, allowed: list[str]) -> bool:
    if not allowed:
        return True
    return _is_trusted(ip, parse_networks(allowed))
