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


async def _odd_requests(
    client: httpx.AsyncClient, api: Api, owner_headers: dict[str, str], ws: str, channel_id: str
) -> list[str]:
    """Requests to many odd paths; returns every raw id, key and name they carried."""
    marker = uuid.uuid4().hex
    secrets = [marker, ws, channel_id]
    await client.get(f"/static/vendor/{marker}.js")
    await client.get(f"/app/static/vendor/{marker}.js")
    await client.get("/app/static/vendor/htmx.min.js")
    await client.get(f"/media/{ws}/{marker}-photo.jpg")
    await client.get(f"/media/{marker}")
    await client.post(f"/webhooks/whatsapp/{uuid.uuid4()}", content=b"{}")
    await client.post(f"/webhooks/whatsapp/{marker}", content=b"{}")
    await client.get(f"/webhooks/whatsapp/{channel_id}")
    await api.inbound_text(channel_id, "15551230000", "hello")  # the webhook lane's door
    await client.get(f"/branding/{ws}/logo")
    await client.get(f"/branding/{marker}/theme.css")
    await client.get(f"/api/v1/workspaces/{ws}/{marker}", headers=owner_headers)
    await client.get(f"/{marker}/{marker}/{marker}")
    await client.request("PROPFIND", f"/{marker}")
    await client.request(f"X{marker[:8].upper()}", f"/api/v1/workspaces/{ws}")
    await client.get(f"/api/v1/workspaces/{ws}/channels/{channel_id}", headers=owner_headers)
    secrets.append(f"X{marker[:8].upper()}")
    return secrets


async def test_metrics_never_label_by_raw_path_and_stay_bounded(
    client: httpx.AsyncClient, api: Api, wa: object
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel_id = str((await api.create_channel(owner, ws))["id"])

    def series(text: str) -> set[tuple[str, frozenset[tuple[str, str]]]]:
        return {key for key in _samples(text) if key[0] == "http_requests_total"}

    secrets = await _odd_requests(client, api, owner.headers, ws, channel_id)
    first = (await client.get("/metrics")).text
    secrets += await _odd_requests(client, api, owner.headers, ws, channel_id)
    second = (await client.get("/metrics")).text

    # One family is labelled by workspace on purpose (SPEC §8: messages per workspace, bounded
    # by the number of tenants); no other series may carry an id from a path.
    by_path = "\n".join(
        line for line in second.splitlines() if not line.startswith("workspace_messages_")
    )
    for secret in secrets:
        assert secret not in by_path, f"{secret} leaked into /metrics"
    routes = {dict(labels)["route"] for _, labels in series(second)}
    assert "<unmatched>" in routes
    assert "/media/{key}" in routes
    assert "/webhooks/{provider}/{channel_id}" in routes
    assert "/app/static/{path}" in routes
    assert {dict(labels)["method"] for _, labels in series(second)} <= {
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "PATCH",
        "DELETE",
        "OPTIONS",
        "OTHER",
    }
    # The second batch hit other raw paths and ids: it adds no series, only counts.
    assert series(second) - series(first) <= {
        key for key in series(second) if dict(key[1])["route"] == "/metrics"
    }


async def test_metrics_can_be_limited_to_internal_networks(tmp_path: Path) -> None:
    settings = base_settings(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'm.db'}",
        metrics_allow_ips="10.0.0.0/8, 127.0.0.1",
        worker_in_process=False,
    )
    app = create_app(settings)
    async with LifespanManager(app):
        inside = httpx.ASGITransport(app=app, client=("10.1.2.3", 5000))
        outside = httpx.ASGITransport(app=app, client=("203.0.113.9", 5000))
        async with httpx.AsyncClient(transport=inside, base_url="http://t") as http:
            allowed = await http.get("/metrics")
        async with httpx.AsyncClient(transport=outside, base_url="http://t") as http:
            refused = await http.get("/metrics")
            unknown = await http.get("/no-such-page-at-all")
    assert allowed.status_code == 200
    assert "http_requests_total" in allowed.text
    assert refused.status_code == 404  # looks like nothing is there
    assert refused.json()["error"]["code"] == unknown.json()["error"]["code"]


def test_metrics_allow_ips_typo_fails_at_start(tmp_path: Path) -> None:
    import pydantic
    import pytest

    with pytest.raises(pydantic.ValidationError, match="not-a-network"):
        base_settings(tmp_path, metrics_allow_ips="10.0.0.0/8,not-a-network")
