"""Outgoing webhooks: endpoints, signed deliveries verified with the `standardwebhooks`
package as a customer would, retries on a controllable clock, disabling, replay, the log."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from botplatform.events.service import emit
from botplatform.kit import clock
from botplatform.kit.scoping import enter_workspace
from botplatform.models import WebhookDelivery, WebhookEndpoint
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from botplatform.webhook import schedule
from botplatform.webhook.tasks import attempt_delivery
from botplatform.worker.jobs import JobContext
from botplatform.worker.sweeper import sweep_once
from tests.conftest import Account, Api, SmtpSink, eventually
from tests.events.test_events import assert_valid
from tests.fakes.webhook_receiver import Receiver, Scripted, running_receiver


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as running:
        yield running


async def _workspace(api: Api) -> tuple[Account, str]:
    owner = await api.register()
    return owner, await api.create_workspace(owner)


async def _endpoint(
    api: Api, owner: Account, ws: str, url: str, types: list[str] | None = None
) -> dict[str, Any]:
    response = await api.http.post(
        f"/api/v1/workspaces/{ws}/webhook-endpoints",
        json={"url": url, "event_types": types or ["*"], "description": "CRM"},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    return dict(response.json()["data"])


def _contact_data() -> dict[str, Any]:
    return {
        "contact": {
            "id": str(uuid.uuid4()),
            "name": "Zoë <b>",
            "opted_out": False,
            "created_at": "2026-11-24T10:00:00Z",
            "updated_at": "2026-11-24T10:00:00Z",
        }
    }


async def _emit(runtime: Runtime, ws: str, event_type: str = "contact.created") -> None:
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, uuid.UUID(ws))
        await emit(db, uuid.UUID(ws), event_type, _contact_data())


async def _deliveries(runtime: Runtime, ws: str) -> list[WebhookDelivery]:
    async with runtime.db.unit_of_work(write=False) as db:
        await enter_workspace(db, uuid.UUID(ws))
        rows = await db.execute(
            select(WebhookDelivery)
            .where(WebhookDelivery.workspace_id == uuid.UUID(ws))
            .order_by(WebhookDelivery.created_at)
        )
        return list(rows.scalars())


async def _endpoint_row(runtime: Runtime, ws: str, endpoint_id: str) -> WebhookEndpoint:
    async with runtime.db.unit_of_work(write=False) as db:
        await enter_workspace(db, uuid.UUID(ws))
        row = await db.get(WebhookEndpoint, uuid.UUID(endpoint_id))
        assert row is not None
        return row


def _verify(secret: str, received: Any) -> dict[str, Any]:
    """Exactly what a customer's receiver does with the official library."""
    payload: dict[str, Any] = Webhook(secret).verify(received.body, received.headers)
    return payload


async def test_real_message_reaches_the_endpoint_signed_and_schema_valid(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime, receiver: Receiver
) -> None:
    succeeded_before = REGISTRY.get_sample_value("webhook_attempts_total", {"result": "2xx"})
    owner, ws = await _workspace(api)
    created = await _endpoint(api, owner, ws, receiver.url, ["message.received"])
    secret = created["secret"]
    assert secret.startswith("whsec_")
    channel = await api.create_channel(owner, ws)
    await api.inbound_text(channel["id"], "15551239999", "Where is my order?", name="Ana")

    (received,) = await eventually(lambda: receiver.received)
    payload = _verify(secret, received)
    assert payload["type"] == "message.received"
    assert payload["data"]["message"]["text"] == "Where is my order?"
    assert_valid(payload)
    assert received.headers["webhook-id"] == payload["id"]
    assert received.headers["content-type"] == "application/json"
    with pytest.raises(WebhookVerificationError):
        _verify("whsec_" + "A" * 44, received)
    tampered = type(received)(
        received.path, received.headers, received.body.replace(b"order", b"ordeR")
    )
    with pytest.raises(WebhookVerificationError):
        _verify(secret, tampered)

    base = f"/api/v1/workspaces/{ws}/webhook-endpoints/{created['endpoint']['id']}"

    async def delivered() -> dict[str, Any] | None:
        items = (await client.get(f"{base}/deliveries", headers=owner.headers)).json()["data"]
        found = [d for d in items["items"] if d["status"] == "succeeded"]
        return found[0] if found else None

    delivery = await eventually(delivered)
    detail = (await client.get(f"{base}/deliveries/{delivery['id']}", headers=owner.headers)).json()
    (attempt,) = detail["data"]["attempts"]
    assert attempt["status_code"] == 200 and attempt["succeeded"] and attempt["latency_ms"] >= 0
    assert attempt["response_body"] == "ok"
    assert detail["data"]["payload"] == payload
    succeeded = REGISTRY.get_sample_value("webhook_attempts_total", {"result": "2xx"})
    assert (succeeded or 0) == (succeeded_before or 0) + 1
    # Only subscribed types: the contact and conversation events went nowhere.
    assert len(receiver.received) == 1
    shown = (await client.get(base, headers=owner.headers)).json()["data"]
    assert "secret" not in shown and shown["secret_hint"] == "…" + secret[-4:]


async def test_rotation_signs_with_both_secrets_until_the_old_one_expires(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, receiver: Receiver
) -> None:
    owner, ws = await _workspace(api)
    created = await _endpoint(api, owner, ws, receiver.url)
    old = created["secret"]
    base = f"/api/v1/workspaces/{ws}/webhook-endpoints/{created['endpoint']['id']}"
    rotated = await client.post(f"{base}/rotate-secret", headers=owner.headers)
    assert rotated.status_code == 200
    new = rotated.json()["data"]["secret"]
    assert new != old and rotated.json()["data"]["endpoint"]["previous_secret_expires_at"]

    await _emit(runtime, ws)
    (received,) = await eventually(lambda: receiver.received)
    assert len(received.headers["webhook-signature"].split(" ")) == 2
    assert _verify(old, received) == _verify(new, received)

    ended = await client.post(
        f"{base}/rotate-secret", json={"previous_valid_seconds": 0}, headers=owner.headers
    )
    newest = ended.json()["data"]["secret"]
    await _emit(runtime, ws)
    await eventually(lambda: len(receiver.received) == 2)
    second = receiver.received[1]
    assert _verify(newest, second)["type"] == "contact.created"
    for stale in (old, new):
        with pytest.raises(WebhookVerificationError):
            _verify(stale, second)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.5/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/",
        "http://[fd00:ec2::254]/",
        "http://100.64.1.1/",
        "http://0x7f.1/",
        "http://2130706433/",
        "ftp://example.com/",
        "http://[::ffff:10.0.0.1]/",
    ],
)
async def test_endpoints_to_internal_addresses_are_refused(
    client: httpx.AsyncClient, api: Api, url: str
) -> None:
    owner, ws = await _workspace(api)
    response = await client.post(
        f"/api/v1/workspaces/{ws}/webhook-endpoints",
        json={"url": url, "event_types": ["message.received"]},
        headers=owner.headers,
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "blocked_destination"


async def test_bad_input_and_permissions(
    client: httpx.AsyncClient, api: Api, receiver: Receiver
) -> None:
    owner, ws = await _workspace(api)
    path = f"/api/v1/workspaces/{ws}/webhook-endpoints"
    for body in (
        {"url": receiver.url, "event_types": ["message.exploded"]},
        {"url": receiver.url, "event_types": []},
        {"url": receiver.url, "event_types": ["*"], "workspace_id": str(uuid.uuid4())},
        {"url": "", "event_types": ["*"]},
    ):
        response = await client.post(path, json=body, headers=owner.headers)
        assert response.status_code == 422, body
    agent = await api.add_member(owner, ws, "agent")
    assert (await client.get(path, headers=agent.headers)).status_code == 403
    developer = await api.add_member(owner, ws, "developer")
    made = await client.post(
        path, json={"url": receiver.url, "event_types": ["*"]}, headers=developer.headers
    )
    assert made.status_code == 201
    bad_filter = await client.get(
        f"{path}/{made.json()['data']['endpoint']['id']}/deliveries?status=nope",
        headers=owner.headers,
    )
    assert bad_filter.status_code == 422
    types = await client.get(f"/api/v1/workspaces/{ws}/webhook-event-types", headers=owner.headers)
    assert {t["type"] for t in types.json()["data"]} >= {"message.received", "bot.handoff"}


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


async def test_retry_schedule_over_three_days_then_disabled_and_admins_emailed(
    client: httpx.AsyncClient,
    api: Api,
    runtime: Runtime,
    receiver: Receiver,
    smtp: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner, ws = await _workspace(api)
    admin = await api.add_member(owner, ws, "admin")
    agent = await api.add_member(owner, ws, "agent")
    created = await _endpoint(api, owner, ws, receiver.url)
    endpoint_id = created["endpoint"]["id"]
    receiver.default = Scripted(status=503, body=b"down for maintenance" * 500)
    fake = FakeClock()
    monkeypatch.setattr(clock, "utcnow", fake)
    start = fake.now
    await _emit(runtime, ws)
    await eventually(lambda: len(receiver.received) == 1)

    (delivery,) = await _deliveries(runtime, ws)
    waits = []
    for number in range(2, schedule.MAX_ATTEMPTS + 1):
        (delivery,) = await eventually(lambda n=number: _with_attempts(runtime, ws, n - 1))
        assert delivery.status == "pending" and delivery.next_attempt_at is not None
        waits.append((delivery.next_attempt_at - fake.now).total_seconds())
        # A job that comes early does nothing.
        await attempt_delivery(runtime, uuid.UUID(ws), delivery.id)
        assert len(receiver.received) == number - 1
        fake.now = delivery.next_attempt_at
        await attempt_delivery(runtime, uuid.UUID(ws), delivery.id)
        assert len(receiver.received) == number

    (delivery,) = await _deliveries(runtime, ws)
    assert delivery.status == "failed" and delivery.attempt_count == schedule.MAX_ATTEMPTS
    assert delivery.last_status_code == 503
    for wait, base in zip(waits, schedule.RETRY_DELAYS, strict=True):
        assert base * 0.9 <= wait <= base * 1.1
    assert all(later > earlier for earlier, later in itertools.pairwise(waits[:9]))
    total = fake.now - start
    assert timedelta(days=2.8) < total < timedelta(days=3.5)

    endpoint = await _endpoint_row(runtime, ws, endpoint_id)
    assert endpoint.enabled is False and "failed" in (endpoint.disabled_reason or "")

    def disabled_mail(address: str) -> list[Any]:
        return [m for m in smtp.to(address) if "disabled" in str(m["Subject"])]

    await eventually(lambda: disabled_mail(owner.email) and disabled_mail(admin.email))
    assert receiver.url in disabled_mail(owner.email)[0].get_body().get_content()
    assert disabled_mail(agent.email) == []
    detail = await client.get(
        f"/api/v1/workspaces/{ws}/webhook-endpoints/{endpoint_id}/deliveries/{delivery.id}",
        headers=owner.headers,
    )
    attempts = detail.json()["data"]["attempts"]
    assert [a["number"] for a in attempts] == list(range(1, schedule.MAX_ATTEMPTS + 1))
    assert all(a["status_code"] == 503 and not a["succeeded"] for a in attempts)
    assert len(attempts[0]["response_body"]) <= 4096

    # A disabled endpoint gets no new deliveries.
    await _emit(runtime, ws)
    assert len(await _deliveries(runtime, ws)) == 1


async def _with_attempts(runtime: Runtime, ws: str, count: int) -> list[WebhookDelivery] | None:
    rows = await _deliveries(runtime, ws)
    ready = len(rows) == 1 and rows[0].attempt_count == count and rows[0].lease_until is None
    return rows if ready else None


async def test_retry_after_is_honoured_and_4xx_is_not_retried(
    client: httpx.AsyncClient,
    api: Api,
    runtime: Runtime,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner, ws = await _workspace(api)
    await _endpoint(api, owner, ws, receiver.url)
    fake = FakeClock()
    monkeypatch.setattr(clock, "utcnow", fake)
    receiver.answer(Scripted(429, {"Retry-After": "7200"}))
    await _emit(runtime, ws)
    (delivery,) = await eventually(lambda: _with_attempts(runtime, ws, 1))
    assert delivery.next_attempt_at is not None
    assert (delivery.next_attempt_at - fake.now).total_seconds() == pytest.approx(7200, abs=1)

    # Two hours is past the broker's delay: the sweeper sends the job once it is due.
    receiver.answer(Scripted(408))
    fake.now = delivery.next_attempt_at
    async with runtime.db.unit_of_work(system=True) as db:
        swept = await sweep_once(JobContext(runtime, db, "", 1, 1), after_seconds=0)
    assert swept["webhook_deliveries"] == 1
    (delivery,) = await eventually(lambda: _with_attempts(runtime, ws, 2))
    assert delivery.status == "pending"  # 408 is retried
    assert len(receiver.received) == 2

    receiver.answer(Scripted(400, body=b"bad payload"))
    assert delivery.next_attempt_at is not None
    fake.now = delivery.next_attempt_at
    await attempt_delivery(runtime, uuid.UUID(ws), delivery.id)
    (delivery,) = await _deliveries(runtime, ws)
    assert delivery.status == "failed" and delivery.last_status_code == 400
    assert delivery.next_attempt_at is None


async def test_a_timeout_is_recorded_and_retried(
    client: httpx.AsyncClient,
    api: Api,
    runtime: Runtime,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner, ws = await _workspace(api)
    await _endpoint(api, owner, ws, receiver.url)
    monkeypatch.setattr(runtime.settings, "webhook_timeout_seconds", 0.5)
    receiver.answer(Scripted(200, delay=3))
    await _emit(runtime, ws)
    (delivery,) = await eventually(lambda: _with_attempts(runtime, ws, 1))
    assert delivery.status == "pending" and delivery.last_error == "timeout"
    assert delivery.last_status_code is None


async def test_gone_disables_the_endpoint_and_emails_admins(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, receiver: Receiver, smtp: SmtpSink
) -> None:
    owner, ws = await _workspace(api)
    created = await _endpoint(api, owner, ws, receiver.url)
    receiver.answer(Scripted(410))
    await _emit(runtime, ws)
    (delivery,) = await eventually(lambda: _with_attempts(runtime, ws, 1))
    assert delivery.status == "failed"
    endpoint = await _endpoint_row(runtime, ws, created["endpoint"]["id"])
    assert endpoint.enabled is False and "410" in (endpoint.disabled_reason or "")
    await eventually(lambda: any("disabled" in str(m["Subject"]) for m in smtp.to(owner.email)))

    base = f"/api/v1/workspaces/{ws}/webhook-endpoints/{created['endpoint']['id']}"
    replay = await client.post(f"{base}/deliveries/{delivery.id}/replay", headers=owner.headers)
    assert replay.status_code == 409 and replay.json()["error"]["code"] == "endpoint_disabled"
    enabled = await client.patch(base, json={"enabled": True}, headers=owner.headers)
    assert enabled.json()["data"]["enabled"] is True
    assert enabled.json()["data"]["disabled_reason"] is None

    replay = await client.post(f"{base}/deliveries/{delivery.id}/replay", headers=owner.headers)
    assert replay.status_code == 201
    again = replay.json()["data"]
    assert again["replay_of_id"] == str(delivery.id) and again["id"] != str(delivery.id)
    await eventually(lambda: len(receiver.received) == 2)
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert json.loads(first.body) == json.loads(second.body)
    assert _verify(created["secret"], second)["type"] == "contact.created"

    async def succeeded() -> bool:
        log = await client.get(f"{base}/deliveries?status=succeeded", headers=owner.headers)
        return [d["id"] for d in log.json()["data"]["items"]] == [again["id"]]

    await eventually(succeeded)


async def test_delivery_log_filters_and_pages(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, receiver: Receiver
) -> None:
    owner, ws = await _workspace(api)
    created = await _endpoint(api, owner, ws, receiver.url)
    other = await _endpoint(api, owner, ws, receiver.url, ["contact.updated"])
    receiver.answer(Scripted(400))
    await _emit(runtime, ws, "contact.created")
    await eventually(lambda: len(receiver.received) == 1)
    await _emit(runtime, ws, "contact.updated")
    await _emit(runtime, ws, "contact.updated")
    await eventually(lambda: len(receiver.received) == 5)
    base = f"/api/v1/workspaces/{ws}/webhook-endpoints/{created['endpoint']['id']}/deliveries"

    async def ids(query: str) -> list[str]:
        response = await client.get(f"{base}{query}", headers=owner.headers)
        assert response.status_code == 200, response.text
        return [d["event_type"] + ":" + d["status"] for d in response.json()["data"]["items"]]

    await eventually(lambda: _settled(runtime, ws))
    assert await ids("") == ["contact.updated:succeeded"] * 2 + ["contact.created:failed"]
    assert await ids("?status=failed") == ["contact.created:failed"]
    assert await ids("?event_type=contact.updated") == ["contact.updated:succeeded"] * 2
    assert await ids("?since=2999-01-01T00:00:00Z") == []
    assert len(await ids("?until=2999-01-01T00:00:00Z")) == 3
    page = (await client.get(f"{base}?limit=2", headers=owner.headers)).json()["data"]
    rest = await client.get(f"{base}?limit=2&cursor={page['next_cursor']}", headers=owner.headers)
    assert len(page["items"]) == 2 and len(rest.json()["data"]["items"]) == 1

    other_deliveries = await client.get(
        f"/api/v1/workspaces/{ws}/webhook-endpoints/{other['endpoint']['id']}/deliveries",
        headers=owner.headers,
    )
    foreign = other_deliveries.json()["data"]["items"][0]["id"]
    assert (await client.get(f"{base}/{foreign}", headers=owner.headers)).status_code == 404


async def _settled(runtime: Runtime, ws: str) -> bool:
    return all(d.status != "pending" for d in await _deliveries(runtime, ws))


async def test_deleting_an_endpoint_removes_its_log(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, receiver: Receiver
) -> None:
    owner, ws = await _workspace(api)
    created = await _endpoint(api, owner, ws, receiver.url)
    await _emit(runtime, ws)
    await eventually(lambda: _settled(runtime, ws))
    base = f"/api/v1/workspaces/{ws}/webhook-endpoints/{created['endpoint']['id']}"
    assert (await client.delete(base, headers=owner.headers)).status_code == 200
    assert (await client.get(base, headers=owner.headers)).status_code == 404
    assert await _deliveries(runtime, ws) == []


def test_retry_after_forms() -> None:
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert schedule.retry_after_seconds("120", now) == 120
    assert schedule.retry_after_seconds("Tue, 24 Nov 2026 12:05:00 GMT", now) == 300
    assert schedule.retry_after_seconds("soon", now) is None
    assert schedule.retry_after_seconds(None, now) is None
    delay = schedule.next_delay(1, retry_after=10**9)
    assert delay == timedelta(seconds=schedule.MAX_RETRY_AFTER)
    assert schedule.next_delay(schedule.MAX_ATTEMPTS) is None


async def test_a_workspace_has_a_bounded_number_of_endpoints(
    client: httpx.AsyncClient, api: Api, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botplatform.webhook import service

    monkeypatch.setattr(service, "MAX_ENDPOINTS", 2)
    owner, ws = await _workspace(api)
    await _endpoint(api, owner, ws, receiver.url)
    await _endpoint(api, owner, ws, receiver.url)
    third = await client.post(
        f"/api/v1/workspaces/{ws}/webhook-endpoints",
        json={"url": receiver.url, "event_types": ["*"]},
        headers=owner.headers,
    )
    assert third.status_code == 409
    assert third.json()["error"]["code"] == "too_many_webhook_endpoints"


async def test_a_failing_endpoint_gets_the_event_once_it_recovers(
    client: httpx.AsyncClient,
    api: Api,
    runtime: Runtime,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner, ws = await _workspace(api)
    created = await _endpoint(api, owner, ws, receiver.url)
    fake = FakeClock()
    monkeypatch.setattr(clock, "utcnow", fake)
    receiver.answer(Scripted(500), Scripted(502))
    await _emit(runtime, ws)
    for attempts in (1, 2):
        (delivery,) = await eventually(lambda n=attempts: _with_attempts(runtime, ws, n))
        assert (await _endpoint_row(runtime, ws, created["endpoint"]["id"])).failing_since
        assert delivery.next_attempt_at is not None
        fake.now = delivery.next_attempt_at
        await attempt_delivery(runtime, uuid.UUID(ws), delivery.id)
    (delivery,) = await _deliveries(runtime, ws)
    assert delivery.status == "succeeded" and delivery.attempt_count == 3
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    endpoint = await _endpoint_row(runtime, ws, created["endpoint"]["id"])
    assert endpoint.failing_since is None and endpoint.enabled


async def test_a_name_that_later_resolves_inside_is_refused_at_delivery(
    client: httpx.AsyncClient,
    api: Api,
    runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Registered while its name did not resolve (or resolved outside); by delivery time it
    points at the metadata service: the attempt is refused, recorded, and not retried."""
    import ipaddress

    from botplatform.webhook import tasks

    owner, ws = await _workspace(api)
    created = await _endpoint(api, owner, ws, "https://hooks.rebinding.invalid/in")

    async def inside(host: str, port: int) -> list[Any]:
        assert host == "hooks.rebinding.invalid"
        return [ipaddress.ip_address("169.254.169.254")]

    real = tasks.safe_request

    async def with_resolver(*args: Any, **kwargs: Any) -> httpx.Response:
        return await real(*args, **kwargs, resolver=inside)

    monkeypatch.setattr(tasks, "safe_request", with_resolver)
    await _emit(runtime, ws)
    (delivery,) = await eventually(lambda: _with_attempts(runtime, ws, 1))
    assert delivery.status == "failed" and delivery.next_attempt_at is None
    assert (delivery.last_error or "").startswith("blocked_destination")
    detail = await client.get(
        f"/api/v1/workspaces/{ws}/webhook-endpoints/{created['endpoint']['id']}"
        f"/deliveries/{delivery.id}",
        headers=owner.headers,
    )
    (attempt,) = detail.json()["data"]["attempts"]
    assert attempt["status_code"] is None and "blocked_destination" in attempt["error"]
