"""Rate limits: 429 with Retry-After and RateLimit-* headers, the client IP read only through
trusted proxies, and one limit across two app processes sharing Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from botplatform.config import Settings
from botplatform.kit.client_ip import client_ip, parse_networks
from botplatform.main import create_app
from tests.conftest import base_settings
from tests.serving import app_processes


@pytest.fixture
async def strict_app(tmp_path: Path) -> AsyncIterator[FastAPI]:
    settings = base_settings(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'rl.db'}",
        worker_in_process=False,
        rate_limit_auth="3/minute",
        rate_limit_general="5/minute",
        trusted_proxies=["127.0.0.1"],
    )
    from botplatform import migrate

    await asyncio.to_thread(migrate.upgrade, settings)
    app = create_app(settings)
    async with LifespanManager(app):
        yield app


async def test_auth_tier_is_429_with_headers(strict_app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=strict_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        body = {"email": "a@example.com", "password": "x"}
        first = await http.post("/api/v1/auth/login", json=body)
        assert first.headers["RateLimit-Limit"] == "3"
        assert first.headers["RateLimit-Remaining"] == "2"
        statuses = [first.status_code] + [
            (await http.post("/api/v1/auth/login", json=body)).status_code for _ in range(3)
        ]
        assert statuses == [401, 401, 401, 429]
        limited = await http.post("/api/v1/auth/login", json=body)
        assert limited.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        assert limited.headers["RateLimit-Remaining"] == "0"
        # Other routes are in the general tier, counted separately.
        assert (await http.get("/api/v1/me")).status_code == 401


async def test_login_and_register_have_separate_budgets(strict_app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=strict_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        weak = {"email": "burst@example.com", "password": "x"}
        registrations = [
            (await http.post("/api/v1/auth/register", json=weak)).status_code for _ in range(4)
        ]
        assert registrations == [422, 422, 422, 429]
        # The same address still has its whole login budget…
        logins = [(await http.post("/api/v1/auth/login", json=weak)).status_code for _ in range(4)]
        assert logins == [401, 401, 401, 429]
        # …and a reset request is counted apart from both.
        forgot = await http.post("/api/v1/auth/password/forgot", json={"email": "b@example.com"})
        assert forgot.status_code == 200


async def test_trusted_proxy_gives_each_client_its_own_limit(strict_app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=strict_app)  # its peer is 127.0.0.1, a trusted proxy
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        for client in ("198.51.100.1", "198.51.100.2"):
            statuses = [
                (await http.get("/api/v1/me", headers={"X-Forwarded-For": client})).status_code
                for _ in range(6)
            ]
            assert statuses == [401] * 5 + [429]


def test_client_ip_never_trusts_an_untrusted_peer() -> None:
    trusted = parse_networks(["10.0.0.0/8"])
    spoof = {"client": ("203.0.113.9", 1), "headers": [(b"x-forwarded-for", b"1.2.3.4")]}
    assert client_ip(spoof, trusted) == "203.0.113.9"
    proxied = {
        "client": ("10.0.0.2", 1),
        "headers": [(b"x-forwarded-for", b"1.2.3.4, 198.51.100.7, 10.0.0.5")],
    }
    # The left part is whatever the client wrote: the right-most untrusted hop is the client.
    assert client_ip(proxied, trusted) == "198.51.100.7"
    assert client_ip(proxied, []) == "10.0.0.2"
    garbage = {"client": ("10.0.0.2", 1), "headers": [(b"x-forwarded-for", b"not-an-ip")]}
    assert client_ip(garbage, trusted) == "10.0.0.2"


async def test_a_limit_holds_across_two_app_processes(settings: Settings, tmp_path: Path) -> None:
    if not settings.redis_url:
        pytest.skip("two app processes share limits through Redis (production mode)")
    async with (
        app_processes(settings, tmp_path / "logs", RATE_LIMIT_AUTH="4/minute") as bases,
        httpx.AsyncClient(timeout=5) as http,
    ):
        statuses = []
        for attempt in range(6):  # alternate between the two processes
            response = await http.post(
                f"{bases[attempt % 2]}/api/v1/auth/login",
                json={"email": "shared@example.com", "password": "wrong-password-1"},
            )
            statuses.append(response.status_code)
    assert statuses == [401, 401, 401, 401, 429, 429]
