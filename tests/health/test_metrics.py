"""Prometheus metrics: HTTP by route template, jobs by outcome, queue depth; and Sentry."""

from __future__ import annotations

import gzip
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager
from prometheus_client.parser import text_string_to_metric_families

from botplatform.main import create_app
from botplatform.runtime import Runtime
from tests.conftest import Api, base_settings, eventually


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_count_routes_jobs_and_queues(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await client.get(f"/api/v1/workspaces/{ws}", headers=owner.headers)
    await client.get(f"/api/v1/workspaces/{uuid.uuid4()}", headers=owner.headers)
    await api.invite(owner, ws, "metrics@example.com", "viewer")  # queues an email job

    async def job_counted() -> bool:
        text = (await client.get("/metrics")).text
        key = ("jobs_total", frozenset({("job", "send_email"), ("outcome", "succeeded")}))
        return _samples(text).get(key, 0) >= 1

    await eventually(job_counted)
    text = (await client.get("/metrics")).text
    samples = _samples(text)
    route = "/api/v1/workspaces/{ws}"
    assert (
        samples[
            (
                "http_requests_total",
                frozenset({("method", "GET"), ("route", route), ("status", "200")}),
            )
        ]
        >= 1
    )
    assert (
        samples[
            (
                "http_requests_total",
                frozenset({("method", "GET"), ("route", route), ("status", "404")}),
            )
        ]
        >= 1
    )
    assert not any(ws in str(labels) for _, labels in samples)  # templates, not raw paths
    assert any(name == "http_request_duration_seconds_bucket" for name, _ in samples)
    assert any(name == "job_duration_seconds_count" for name, _ in samples)
    assert ("queue_depth", frozenset({("queue", "default"), ("state", "waiting")})) in samples


async def test_metrics_token_is_required_when_set(tmp_path: Path) -> None:
    settings = base_settings(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'm.db'}",
        metrics_token="scrape-me",
        worker_in_process=False,
    )
    app = create_app(settings)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            refused = await http.get("/metrics")
            allowed = await http.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert refused.status_code == 401
    assert allowed.status_code == 200
    assert "http_requests_total" in allowed.text


class _SentryIngest(BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        _SentryIngest.received.append(body)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


async def test_sentry_receives_unhandled_errors(tmp_path: Path) -> None:
    server = HTTPServer(("127.0.0.1", 0), _SentryIngest)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    dsn = f"http://publickey@127.0.0.1:{server.server_port}/42"
    settings = base_settings(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 's.db'}",
        sentry_dsn=dsn,
        worker_in_process=False,
    )
    try:
        app = create_app(settings)

        @app.get("/explode")
        async def explode() -> None:
            raise RuntimeError("sentry-test-marker")

        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                assert (await http.get("/explode")).status_code == 500
        import sentry_sdk

        sentry_sdk.flush(timeout=5)
        await eventually(
            lambda: any(b"sentry-test-marker" in body for body in _SentryIngest.received)
        )
    finally:
        import sentry_sdk

        sentry_sdk.init(dsn=None)  # leave no client behind for other tests
        server.shutdown()
    event = next(body for body in _SentryIngest.received if b"sentry-test-marker" in body)
    _, item_header, payload = event.splitlines()[:3]
    assert json.loads(item_header)["type"] == "event"
    assert json.loads(payload)["exception"]["values"][0]["type"] == "RuntimeError"
