"""URLs are right: links and channels' webhook URLs follow where the platform really serves
(PORT, HOST, `serve --port`, APP_URL); the bare address opens the dashboard; there is a
favicon."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from botplatform.config import Settings, load_settings
from tests.dashboard.helpers import browser_login
from tests.serving import app_processes


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "http://localhost:3000"),
        ({"PORT": "3210"}, "http://localhost:3210"),
        ({"PORT": "8080", "HOST": "0.0.0.0"}, "http://localhost:8080"),  # noqa: S104
        ({"PORT": "8080", "HOST": "10.1.2.3"}, "http://10.1.2.3:8080"),
        ({"PORT": "8080", "HOST": "fd00::5"}, "http://[fd00::5]:8080"),
        ({"PORT": "3210", "APP_URL": "https://bots.example.com"}, "https://bots.example.com"),
        ({"NEXTAUTH_URL": "https://old.example.com"}, "https://old.example.com"),
    ],
)
def test_app_url_follows_port_and_host_unless_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of the checkout
    for name in ("PORT", "HOST", "APP_URL", "NEXTAUTH_URL"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert load_settings().app_url == expected


async def test_root_opens_the_dashboard_and_favicon_answers(client: httpx.AsyncClient) -> None:
    root = await client.get("/")
    assert root.status_code == 307 and root.headers["location"] == "/app"
    app = await client.get("/app")
    assert app.status_code == 303 and app.headers["location"].startswith("/app/login")
    icon = await client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.headers["content-type"] == "image/x-icon"
    assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert b"PNG" in icon.content[:64]
    login = await client.get("/app/login")
    assert 'rel="icon" href="/favicon.ico"' in login.text
    svg = await client.get("/app/static/favicon.svg")
    assert svg.status_code == 200 and svg.text.startswith("<svg")


async def test_serve_port_is_the_webhook_urls_port(settings: Settings, tmp_path: Path) -> None:
    """A real `botplatform serve --port N` (no PORT, no APP_URL): the API and the dashboard
    give channels a webhook URL on N."""
    async with app_processes(settings, tmp_path / "logs", count=1) as [base]:
        port = base.rsplit(":", 1)[1]
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            email, password = "port-check@example.com", "a long port check passphrase 42"
            registered = await http.post(
                "/api/v1/auth/register", json={"email": email, "password": password, "name": "P"}
            )
            assert registered.status_code == 201, registered.text
            headers = {"Authorization": f"Bearer {registered.json()['data']['access_token']}"}
            made = await http.post("/api/v1/workspaces", json={"name": "Ports"}, headers=headers)
            ws = made.json()["data"]["id"]
            channel = await http.post(
                f"/api/v1/workspaces/{ws}/channels",
                json={"name": "S", "phone_number_id": "4445556667", "business_account_id": "123"},
                headers=headers,
            )
            assert channel.status_code == 201, channel.text
            data = channel.json()["data"]
            expected = f"http://localhost:{port}/webhooks/whatsapp/{data['id']}"
            assert data["webhook_url"] == expected
            await browser_login(http, email, password)
            page = await http.get(f"/app/w/{ws}/channels/{data['id']}")
            assert expected in page.text
