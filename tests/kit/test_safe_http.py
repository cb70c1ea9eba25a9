"""The SSRF-safe client. The blocked addresses below come from the RFCs' own examples and from
Python's `ipaddress` properties — never from the table the blocking code uses."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from botplatform.kit.safe_http import (
    BlockedDestination,
    IPAddress,
    check_url,
    is_blocked_address,
    safe_request,
)

# Hand-written from the RFCs and cloud providers' documentation, one line per form.
BLOCKED_EXAMPLES = {
    "loopback": "127.0.0.1",
    "loopback elsewhere in 127/8": "127.45.6.7",
    "private 10/8 (RFC 1918)": "10.1.2.3",
    "private 172.16/12 (RFC 1918)": "172.31.255.254",
    "private 192.168/16 (RFC 1918)": "192.168.1.1",
    "link-local (RFC 3927)": "169.254.10.20",
    "AWS/GCP/Azure metadata": "169.254.169.254",
    "CGNAT (RFC 6598)": "100.64.0.1",
    "CGNAT upper end": "100.127.255.254",
    "multicast (RFC 5771)": "224.0.0.251",
    "limited broadcast": "255.255.255.255",
    "unspecified": "0.0.0.0",  # noqa: S104 - a target, not a bind address
    "this network (RFC 1122)": "0.1.2.3",
    "documentation TEST-NET-1 (RFC 5737)": "192.0.2.10",
    "benchmarking (RFC 2544)": "198.18.0.5",
    "reserved class E": "240.1.2.3",
    "IPv6 loopback": "::1",
    "IPv6 unspecified": "::",
    "IPv6 link-local": "fe80::1",
    "IPv6 unique local (RFC 4193)": "fd12:3456:789a::1",
    "AWS metadata over IPv6": "fd00:ec2::254",
    "IPv6 multicast": "ff02::1",
    "IPv4-mapped loopback (RFC 4291)": "::ffff:127.0.0.1",
    "IPv4-mapped metadata": "::ffff:169.254.169.254",
    "IPv4-mapped private, hex form": "::ffff:a00:1",
    "IPv4-compatible loopback (deprecated)": "::127.0.0.1",
    "6to4 of 192.0.2.4 (RFC 3056 example)": "2002:c000:204::1",
    "6to4 of loopback": "2002:7f00:1::1",
    "6to4 of 10.0.0.1": "2002:a00:1::",
    "Teredo (RFC 4380 example)": "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "Teredo carrying 127.0.0.1": "2001:0:0:0:0:0:80ff:fffe",
    "NAT64 of loopback (RFC 6052 prefix)": "64:ff9b::127.0.0.1",
    "NAT64 of metadata": "64:ff9b::a9fe:a9fe",
    "NAT64 of 192.0.2.33 (RFC 6052 example)": "64:ff9b::192.0.2.33",
    "local-use NAT64 (RFC 8215)": "64:ff9b:1::a00:1",
    "IPv6 documentation": "2001:db8::1",
    "site-local (deprecated)": "fec0::1",
}

PUBLIC_EXAMPLES = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.215.14",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "64:ff9b::808:808",  # NAT64 of a public address is a public destination
]

# Ways of writing 127.0.0.1 that inet_aton() accepts; a resolver would turn them into loopback.
NUMERIC_SPELLINGS = [
    "2130706433",
    "0x7f000001",
    "0177.0.0.1",
    "0177.0000.0000.0001",
    "127.1",
    "127.0.1",
    "0x7f.0.0.1",
    "0x7f.1",
    "017700000001",
    "0x7F.0x00.0x00.0x01",
    "2852039166",  # 169.254.169.254
]


def _url(address: str, path: str = "/") -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}{path}"


async def _never_called(host: str, port: int) -> list[IPAddress]:
    raise AssertionError("a refused URL must not reach DNS")


@pytest.mark.parametrize("address", BLOCKED_EXAMPLES.values(), ids=BLOCKED_EXAMPLES.keys())
async def test_every_blocked_form_is_refused_as_literal(address: str) -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(BlockedDestination) as caught:
            await safe_request(
                client, "POST", _url(address), allowlist=[], json={}, resolver=_never_called
            )
    assert caught.value.status_code == 422
    assert caught.value.code == "blocked_destination"


@pytest.mark.parametrize("address", BLOCKED_EXAMPLES.values(), ids=BLOCKED_EXAMPLES.keys())
async def test_every_blocked_form_is_refused_when_a_name_resolves_to_it(address: str) -> None:
    async def resolver(host: str, port: int) -> list[IPAddress]:
        assert host == "customer.example"
        return [ipaddress.ip_address(address)]

    async with httpx.AsyncClient() as client:
        with pytest.raises(BlockedDestination):
            await safe_request(
                client, "GET", "https://customer.example/hook", allowlist=[], resolver=resolver
            )


@pytest.mark.parametrize("spelling", NUMERIC_SPELLINGS)
async def test_odd_ipv4_spellings_are_refused(spelling: str) -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(BlockedDestination):
            await safe_request(
                client, "GET", f"http://{spelling}/", allowlist=[], resolver=_never_called
            )


@pytest.mark.parametrize(
    "url",
    [
        "ftp://files.example.com/x",
        "file:///etc/passwd",
        "gopher://example.com/",
        "http://user:secret@example.com/",
        "http:///nohost",
        "not a url",
        "http://[::1/",
    ],
)
def test_other_schemes_credentials_and_garbage_are_refused(url: str) -> None:
    with pytest.raises(BlockedDestination):
        check_url(url)


@pytest.mark.parametrize("address", PUBLIC_EXAMPLES)
def test_public_addresses_pass(address: str) -> None:
    assert not is_blocked_address(ipaddress.ip_address(address))


def _python_says_internal(address: IPAddress) -> bool:
    """The standard library's view, independent of our table."""
    if address.is_multicast or address.is_loopback or address.is_link_local:
        return True
    if address.is_unspecified or address.is_private or not address.is_global:
        return True
    if isinstance(address, ipaddress.IPv6Address):
        return address.is_site_local or address.ipv4_mapped is not None
    return address.is_reserved


@settings(max_examples=3000, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_every_ipv4_python_calls_internal_is_blocked_in_every_wrapping(value: int) -> None:
    address = ipaddress.IPv4Address(value)
    if not _python_says_internal(address):
        return
    assert is_blocked_address(address)
    assert is_blocked_address(ipaddress.IPv6Address(f"::ffff:{address}"))
    assert is_blocked_address(ipaddress.IPv6Address(f"64:ff9b::{address}"))
    assert is_blocked_address(ipaddress.IPv6Address((0x2002 << 112) | (value << 80)))
    teredo_client = value ^ 0xFFFFFFFF
    teredo = (0x20010000 << 96) | (0x01020304 << 64) | teredo_client
    assert ipaddress.IPv6Address(teredo).teredo == (ipaddress.IPv4Address("1.2.3.4"), address)
    assert is_blocked_address(ipaddress.IPv6Address(teredo))


# Addresses drawn inside the ranges Python's ipaddress module lists as non-global, so the
# generator lands in them often (uniform 128-bit draws almost never would).
_PY_NETS = [
    ipaddress.ip_network(cidr)
    for cidr in ("::1/128", "fc00::/7", "fe80::/10", "ff00::/8", "2001::/23", "::ffff:0:0/96")
]


@settings(max_examples=2000, deadline=None)
@given(st.integers(min_value=0, max_value=2**128 - 1), st.sampled_from([*_PY_NETS, None]))
def test_every_ipv6_python_calls_internal_is_blocked(value: int, inside: object) -> None:
    if isinstance(inside, ipaddress.IPv6Network):
        value = int(inside.network_address) | (value & int(inside.hostmask))
    address = ipaddress.IPv6Address(value)
    if _python_says_internal(address):
        assert is_blocked_address(address), address


@dataclass
class Recorded:
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)


@dataclass
class Server:
    port: int
    seen: Recorded
    response: bytes


async def _serve(
    response: bytes, ssl_context: ssl.SSLContext | None = None, stall: bool = False
) -> AsyncIterator[Server]:
    seen = Recorded()
    server_box: list[Server] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if length:
            await reader.readexactly(length)
        seen.requests.append((lines[0], headers))
        if stall:
            await asyncio.sleep(5)
        writer.write(server_box[0].response)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ssl_context)
    port = server.sockets[0].getsockname()[1]
    server_box.append(Server(port, seen, response))
    try:
        yield server_box[0]
    finally:
        server.close()


def _ok(body: bytes = b"ok", extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}Connection: close\r\n\r\n"
    ).encode() + body


@pytest.fixture
async def loopback_server() -> AsyncIterator[Server]:
    async for server in _serve(_ok()):
        yield server


async def test_loopback_is_refused_unless_allow_listed(loopback_server: Server) -> None:
    url = f"http://127.0.0.1:{loopback_server.port}/hook"
    async with httpx.AsyncClient() as client:
        with pytest.raises(BlockedDestination):
            await safe_request(client, "POST", url, allowlist=[], json={"a": 1})
        with pytest.raises(BlockedDestination):
            await safe_request(client, "POST", url, allowlist=["10.0.0.0/8"], json={"a": 1})
        assert loopback_server.seen.requests == []
        response = await safe_request(client, "POST", url, allowlist=["127.0.0.0/8"], json={})
    assert response.status_code == 200
    assert response.text == "ok"
    assert loopback_server.seen.requests[0][0] == "POST /hook HTTP/1.1"


async def test_allow_listed_host_name_connects_to_the_resolved_address(
    loopback_server: Server,
) -> None:
    calls: list[str] = []

    async def resolver(host: str, port: int) -> list[IPAddress]:
        calls.append(host)
        return [ipaddress.ip_address("127.0.0.1")]

    async with httpx.AsyncClient() as client:
        url = f"http://hooks.internal:{loopback_server.port}/x?y=1"
        response = await safe_request(
            client, "GET", url, allowlist=["Hooks.Internal"], resolver=resolver
        )
        assert response.status_code == 200
        with pytest.raises(BlockedDestination):
            await safe_request(
                client,
                "GET",
                f"http://other.internal:{loopback_server.port}/",
                allowlist=["hooks.internal"],
                resolver=resolver,
            )
    request_line, headers = loopback_server.seen.requests[0]
    assert request_line == "GET /x?y=1 HTTP/1.1"
    assert headers["host"] == f"hooks.internal:{loopback_server.port}"
    assert calls == ["hooks.internal", "other.internal"]


async def test_the_name_is_resolved_once_and_every_record_must_pass(
    loopback_server: Server,
) -> None:
    answers = iter([[ipaddress.ip_address("127.0.0.1")], [ipaddress.ip_address("10.9.9.9")]])
    calls = 0

    async def rebinding(host: str, port: int) -> list[IPAddress]:
        nonlocal calls
        calls += 1
        return next(answers)

    async with httpx.AsyncClient() as client:
        response = await safe_request(
            client,
            "GET",
            f"http://rebind.example:{loopback_server.port}/",
            allowlist=["127.0.0.1/32"],
            resolver=rebinding,
        )
    assert response.status_code == 200
    assert calls == 1
    assert loopback_server.seen.requests[0][1]["host"] == f"rebind.example:{loopback_server.port}"

    async def mixed(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("8.8.8.8"), ipaddress.ip_address("10.0.0.1")]

    async with httpx.AsyncClient() as client:
        with pytest.raises(BlockedDestination):
            await safe_request(client, "GET", "http://mixed.example/", allowlist=[], resolver=mixed)


async def test_redirects_are_returned_never_followed() -> None:
    redirect = (
        b"HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest/meta-data/\r\n"
        b"Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    async for server in _serve(redirect):
        async with httpx.AsyncClient(follow_redirects=True) as client:
            response = await safe_request(
                client, "GET", f"http://127.0.0.1:{server.port}/", allowlist=["127.0.0.1"]
            )
        assert response.status_code == 302
        assert response.headers["location"].startswith("http://169.254.169.254/")
        assert len(server.seen.requests) == 1


async def test_response_body_is_capped() -> None:
    async for server in _serve(_ok(b"x" * 300_000)):
        async with httpx.AsyncClient() as client:
            response = await safe_request(
                client,
                "GET",
                f"http://127.0.0.1:{server.port}/",
                allowlist=["127.0.0.1"],
                max_response_bytes=1000,
            )
        assert response.content == b"x" * 1000


async def test_a_silent_server_times_out() -> None:
    async for server in _serve(_ok(), stall=True):
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.TimeoutException):
                await safe_request(
                    client,
                    "GET",
                    f"http://127.0.0.1:{server.port}/",
                    allowlist=["127.0.0.1"],
                    timeout=0.3,
                )


def _certificate(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for `name` only: the server's context and a client context
    that trusts it."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file = tmp_path / "cert.pem"
    key_file = tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


async def test_tls_checks_the_certificate_against_the_host_name_not_the_ip(
    tmp_path: Path,
) -> None:
    server_ctx, client_ctx = _certificate(tmp_path, "hooks.customer.test")

    async def resolver(host: str, port: int) -> list[IPAddress]:
        return [ipaddress.ip_address("127.0.0.1")]

    async for server in _serve(_ok(b"secure"), ssl_context=server_ctx):
        async with httpx.AsyncClient(verify=client_ctx) as client:
            response = await safe_request(
                client,
                "POST",
                f"https://hooks.customer.test:{server.port}/in",
                allowlist=["127.0.0.1"],
                content=b"{}",
                resolver=resolver,
            )
            assert response.text == "secure"
            # The certificate names hooks.customer.test only: another name on the same
            # address must fail verification, so SNI and checking follow the URL's host.
            with pytest.raises(httpx.ConnectError):
                await safe_request(
                    client,
                    "POST",
                    f"https://other.customer.test:{server.port}/in",
                    allowlist=["127.0.0.1"],
                    content=b"{}",
                    resolver=resolver,
                )
        assert server.seen.requests[0][1]["host"] == f"hooks.customer.test:{server.port}"
