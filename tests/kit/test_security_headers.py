from __future__ import annotations

from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager

from botplatform.main import create_app
from tests.conftest import base_settings


async def test_headers_on_every_response(client: httpx.AsyncClient) -> None:
    for response in (await client.get("/health/live"), await client.get("/api/v1/nope")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin"
        assert response.headers["x-frame-options"] == "DENY"
        assert "strict-transport-security" not in response.headers  # plain http here
    docs = await client.get("/api/docs")  # Swagger UI from our own static folder only
    assert "script-src 'self';" in docs.headers["content-security-policy"]
    assert "cdn" not in docs.headers["content-security-policy"]


async def test_hsts_under_https_and_cors_from_config(tmp_path: Path) -> None:
    settings = base_settings(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'h.db'}",
        worker_in_process=False,
        app_url="https://bots.example.com",
        cors_origins=["https://shop.example.com"],
    )
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://t") as http:
            response = await http.get("/health/live")
            assert response.headers["strict-transport-security"].startswith("max-age=31536000")
            allowed = await http.options(
                "/api/v1/me",
                headers={
                    "Origin": "https://shop.example.com",
                    "Access-Control-Request-Method": "GET",
                },
            )
            assert allowed.headers["access-control-allow-origin"] == "https://shop.example.com"
            other = await http.get("/health/live", headers={"Origin": "https://evil.example.com"})
            assert "access-control-allow-origin" not in other.headers
