"""Embedded mode (no Redis) keeps what users expect to outlive a restart: a new app over the
same SQLite database still honours a logged-in session, a login lockout and a pending 2FA
challenge."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager

from botplatform import migrate
from botplatform.config import Settings
from botplatform.kit.kv import SqliteStore
from botplatform.main import create_app
from tests.auth.test_two_factor import codes, enable_2fa, login
from tests.conftest import STRONG_PASSWORD, Account, base_settings


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """One life of the app: started, used, shut down (its process memory gone with it)."""
    app = create_app(settings)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        assert isinstance(app.state.runtime.kv, SqliteStore)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            yield http


async def embedded(tmp_path: Path) -> Settings:
    settings = base_settings(
        tmp_path, database_url=f"sqlite:///{tmp_path / 'app.db'}", redis_url=""
    )
    await asyncio.to_thread(migrate.upgrade, settings)
    return settings


async def register(http: httpx.AsyncClient, email: str) -> Account:
    response = await http.post(
        "/api/v1/auth/register", json={"email": email, "password": STRONG_PASSWORD}
    )
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    return Account(email, STRONG_PASSWORD, data["access_token"], uuid.UUID(data["user"]["id"]))


async def test_session_lockout_and_challenge_survive_a_restart(tmp_path: Path) -> None:
    settings = await embedded(tmp_path)
    async with running(settings) as http:
        kept = await register(http, "kept@example.com")
        locked = await register(http, "locked@example.com")
        for _ in range(settings.login_max_failures):
            wrong = {"email": locked.email, "password": "wrong-password-123"}
            assert (await http.post("/api/v1/auth/login", json=wrong)).status_code == 401
        second = await register(http, "second@example.com")
        secret, _ = await enable_2fa(http, second)
        challenge = (await login(http, second.email))["challenge_token"]

    async with running(settings) as http:  # a new app instance: a restart
        me = await http.get("/api/v1/me", headers=kept.headers)
        assert me.status_code == 200, me.text
        assert me.json()["data"]["user"]["email"] == "kept@example.com"
        still_locked = await http.post(
            "/api/v1/auth/login", json={"email": locked.email, "password": STRONG_PASSWORD}
        )
        assert still_locked.status_code == 429
        assert still_locked.json()["error"]["code"] == "login_locked"
        verified = await http.post(
            "/api/v1/auth/2fa/verify",
            json={"challenge_token": challenge, "code": codes(secret)[2]},
        )
        assert verified.status_code == 200, verified.text
        # Logging out is remembered across a restart too.
        assert (await http.post("/api/v1/auth/logout", headers=kept.headers)).status_code == 200

    async with running(settings) as http:
        assert (await http.get("/api/v1/me", headers=kept.headers)).status_code == 401
