from __future__ import annotations

from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager

from botplatform.main import create_app
from tests.conftest import base_settings


async def test_live_and_ready(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health/live")).json()["data"] == {"status": "alive"}
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["data"]["database"] == "up"
    assert ready.json()["data"]["redis"] in {"up", "in-process"}
    assert ready.json()["data"]["queue"] in {"up", "in-process"}


async def test_ready_is_503_naming_what_is_down(tmp_path: Path) -> None:
    # Nothing listens on port 9 of loopback: both dependencies are unreachable.
    settings = base_settings(
        tmp_path,
        database_url="postgresql://postgres@127.0.0.1:9/none",
        redis_url="redis://127.0.0.1:9/0",
    )
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.get("/health/ready")
            live = await http.get("/health/live")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "not_ready"
    assert error["details"]["checks"] == {"database": "down", "redis": "down", "queue": "down"}
    assert "database" in error["message"]
    assert "redis" in error["message"]
    assert live.status_code == 200
