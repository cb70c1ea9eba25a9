"""Structured JSON logs with the request id, to combined.log and (errors) error.log; an
unexpected exception is a 500 in the envelope, logged with its request id."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager

from botplatform.main import create_app
from tests.conftest import base_settings


def _lines(path: Path) -> list[dict[str, object]]:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def test_request_lines_carry_the_request_id(tmp_path: Path) -> None:
    settings = base_settings(tmp_path, database_url=f"sqlite:///{tmp_path / 'x.db'}")
    app = create_app(settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaboom")

    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            ok = await http.get("/health/live", headers={"x-request-id": "req-ok-1"})
            failed = await http.get("/boom", headers={"x-request-id": "req-boom-1"})

    assert ok.status_code == 200
    assert failed.status_code == 500
    assert failed.json()["error"]["code"] == "internal_error"
    assert "kaboom" not in failed.text  # internals stay in the logs
    assert failed.headers["x-request-id"] == "req-boom-1"

    combined = _lines(settings.log_dir / "combined.log")
    access = [line for line in combined if line.get("event") == "request"]
    assert {line["request_id"] for line in access} >= {"req-ok-1", "req-boom-1"}
    assert all("timestamp" in line and "level" in line for line in combined)

    errors = _lines(settings.log_dir / "error.log")
    crash = [line for line in errors if line.get("event") == "unhandled_error"]
    assert crash
    assert crash[0]["request_id"] == "req-boom-1"
    assert "kaboom" in str(crash[0].get("exception"))
    assert all(line["level"] in ("error", "critical") for line in errors)


async def test_a_busy_or_lost_database_is_503_not_500(tmp_path: Path) -> None:
    from sqlalchemy.exc import OperationalError

    settings = base_settings(
        tmp_path, database_url=f"sqlite:///{tmp_path / 'y.db'}", worker_in_process=False
    )
    app = create_app(settings)

    @app.get("/locked")
    async def locked() -> None:
        raise OperationalError("UPDATE x", {}, Exception("database is locked"))

    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            response = await http.get("/locked")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "database_unavailable"
    assert response.headers["Retry-After"] == "1"
