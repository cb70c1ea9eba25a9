"""The outgoing-webhook pages over plain HTTP, on both backends: an endpoint created in the
dashboard (secret shown once) receives a real delivery, the log with its filters and each
delivery's attempts, replay, enable/disable, edit, rotation, delete; permissions hidden and
refused; CSRF; other workspaces' ids; bad input answered in the page, never a 500."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select

from botplatform.models import AuditLog
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.conftest import Account, Api, eventually
from tests.dashboard.conftest import unique_phone
from tests.dashboard.helpers import browser_login, csrf_of, unlabelled_controls
from tests.fakes.webhook_receiver import Receiver, running_receiver

SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as running:
        yield running


async def _audit_count(runtime: Runtime, ws: str, action: str) -> int:
    async with runtime.db.unit_of_work(system=True) as db:
        statement = select(func.count()).where(
            AuditLog.workspace_id == uuid.UUID(ws), AuditLog.action == action
        )
        return int((await db.execute(statement)).scalar_one())


async def _owner(api: Api, client: httpx.AsyncClient) -> tuple[Account, str]:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await browser_login(client, owner.email, owner.password)
    return owner, ws


async def test_endpoint_created_in_the_dashboard_gets_deliveries_that_can_be_replayed(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime, receiver: Receiver
) -> None:
    owner, ws = await _owner(api, client)
    listing = await client.get(f"/app/w/{ws}/webhooks")
    assert listing.status_code == 200
    assert f'href="/app/w/{ws}/webhooks"' in listing.text  # in the menu
    assert unlabelled_controls(listing.text) == []
    token = csrf_of(listing.text)

    created = await client.post(
        f"/app/w/{ws}/webhooks",
        data={
            "url": receiver.url,
            "description": "CRM <sync>",
            "event_types": ["message.received"],
            "csrf_token": token,
        },
    )
    assert created.status_code == 201, created.text
    secret = SECRET.search(created.text)
    assert secret and "shown only this once" in created.text
    assert created.headers["cache-control"] == "no-store"
    assert "CRM &lt;sync&gt;" in created.text and "CRM <sync>" not in created.text
    assert await _audit_count(runtime, ws, "webhook_endpoint.create") == 1
    again = await client.get(f"/app/w/{ws}/webhooks")
    assert secret.group(0) not in again.text and "…" + secret.group(0)[-4:] in again.text
    endpoint_id = re.search(rf"/app/w/{ws}/webhooks/([0-9a-f-]{{36}})", again.text)
    assert endpoint_id
    base = f"/app/w/{ws}/webhooks/{endpoint_id.group(1)}"

    # A real WhatsApp message becomes a delivery the receiver gets.
    channel = await api.create_channel(owner, ws)
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"
    await wa.post_inbound_text(unique_phone(), "Where is my order?", "Ann Customer")
    await eventually(lambda: receiver.received)

    async def succeeded() -> str | None:
        page = await client.get(f"{base}?status=succeeded")
        found = re.search(rf"{base}/deliveries/([0-9a-f-]{{36}})", page.text)
        return found.group(1) if found else None

    delivery_id = await eventually(succeeded)
    detail = await client.get(base)
    assert detail.status_code == 200 and "message.received" in detail.text
    assert unlabelled_controls(detail.text) == []
    failed = await client.get(f"{base}?status=failed")
    assert delivery_id not in failed.text and "match these filters" in failed.text
    typed = await client.get(f"{base}?event_type=contact.created")
    assert delivery_id not in typed.text
    since = await client.get(f"{base}?since=2000-01-01T00:00&until=2999-01-01T00:00")
    assert delivery_id in since.text

    one = await client.get(f"{base}/deliveries/{delivery_id}")
    assert one.status_code == 200
    assert "HTTP 200" in one.text and "Where is my order?" in one.text  # attempt + payload
    replayed = await client.post(
        f"{base}/deliveries/{delivery_id}/replay", data={"csrf_token": csrf_of(one.text)}
    )
    assert replayed.status_code == 303
    new_id = replayed.headers["location"].split("/deliveries/")[1].split("?")[0]
    assert new_id != delivery_id
    assert await _audit_count(runtime, ws, "webhook_delivery.replay") == 1
    await eventually(lambda: len(receiver.received) == 2 or None)
    shown = await client.get(replayed.headers["location"])
    assert "Replay queued" in shown.text and "the original delivery" in shown.text

    # Disable: replays are refused in the page; enable again.
    off = await client.post(f"{base}/enabled", data={"enabled": "false", "csrf_token": token})
    assert off.status_code == 303
    assert "disabled" in (await client.get(base)).text
    refused = await client.post(
        f"{base}/deliveries/{delivery_id}/replay", data={"csrf_token": token}
    )
    assert refused.status_code == 409 and "<html" in refused.text
    on = await client.post(f"{base}/enabled", data={"enabled": "true", "csrf_token": token})
    assert on.status_code == 303
    bad = await client.post(f"{base}/enabled", data={"enabled": "maybe", "csrf_token": token})
    assert bad.status_code == 422
    assert await _audit_count(runtime, ws, "webhook_endpoint.update") == 2


async def test_edit_rotate_delete_and_bad_input(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, receiver: Receiver
) -> None:
    _owner_account, ws = await _owner(api, client)
    token = csrf_of((await client.get(f"/app/w/{ws}/webhooks")).text)
    for data, status, text in (
        ({"url": receiver.url}, 422, "Choose at least one event type"),
        ({"url": "", "event_types": ["*"]}, 422, "has-error"),
        ({"url": receiver.url, "event_types": ["nope.event"]}, 422, "Unknown event type"),
        ({"url": "http://10.0.0.8/hook", "event_types": ["*"]}, 422, "alert"),
        ({"url": "ftp://example.com/x", "event_types": ["*"]}, 422, "alert"),
    ):
        answer = await client.post(f"/app/w/{ws}/webhooks", data={**data, "csrf_token": token})
        assert answer.status_code == status, (data, answer.text)
        assert text in answer.text
    assert await _audit_count(runtime, ws, "webhook_endpoint.create") == 0
    # Without the CSRF token nothing happens.
    forged = await client.post(f"/app/w/{ws}/webhooks", data={"url": receiver.url})
    assert forged.status_code == 403

    created = await client.post(
        f"/app/w/{ws}/webhooks",
        data={"url": receiver.url, "event_types": ["*"], "csrf_token": token},
    )
    first = SECRET.search(created.text)
    assert first
    endpoint_id = re.search(rf"/app/w/{ws}/webhooks/([0-9a-f-]{{36}})", created.text)
    assert endpoint_id
    base = f"/app/w/{ws}/webhooks/{endpoint_id.group(1)}"

    edited = await client.post(
        base,
        data={
            "url": receiver.url + "/v2",
            "description": "Orders",
            "event_types": ["contact.created", "message.received"],
            "csrf_token": token,
        },
    )
    assert edited.status_code == 303
    page = await client.get(base)
    assert "/v2" in page.text and "contact.created, message.received" in page.text
    refused = await client.post(
        base, data={"url": "http://169.254.169.254/", "event_types": ["*"], "csrf_token": token}
    )
    assert refused.status_code == 422 and "/v2" in (await client.get(base)).text
    empty = await client.post(base, data={"url": receiver.url, "csrf_token": token})
    assert empty.status_code == 422 and "Choose at least one event type" in empty.text

    rotated = await client.post(
        f"{base}/rotate", data={"previous_valid_seconds": "60", "csrf_token": token}
    )
    assert rotated.status_code == 200
    second = SECRET.search(rotated.text)
    assert second and second.group(0) != first.group(0)
    assert "old secret also signs until" in rotated.text
    assert second.group(0) not in (await client.get(base)).text
    for overlap in ("-1", "eleven", "99999999"):
        bad = await client.post(
            f"{base}/rotate", data={"previous_valid_seconds": overlap, "csrf_token": token}
        )
        assert bad.status_code == 422, overlap
    assert await _audit_count(runtime, ws, "webhook_endpoint.rotate_secret") == 1

    # Bad filters and cursors are explained, not a 500.
    for query in ("status=lost", "event_id=xyz", "since=yesterday", "cursor=garbage"):
        answer = await client.get(f"{base}?{query}")
        assert answer.status_code == 200, query
        assert 'class="error"' in answer.text, query
    assert (await client.get(f"{base}/deliveries/{uuid.uuid4()}")).status_code == 404
    assert (await client.get(f"/app/w/{ws}/webhooks/not-an-id")).status_code == 404

    deleted = await client.post(f"{base}/delete", data={"csrf_token": token})
    assert deleted.status_code == 303
    assert "deleted" in (await client.get(deleted.headers["location"])).text
    assert (await client.get(base)).status_code == 404
    assert await _audit_count(runtime, ws, "webhook_endpoint.delete") == 1


async def test_webhook_pages_are_hidden_and_refused_without_the_permission(
    client: httpx.AsyncClient, api: Api, receiver: Receiver
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    endpoint = await api.http.post(
        f"/api/v1/workspaces/{ws}/webhook-endpoints",
        json={"url": receiver.url, "event_types": ["*"]},
        headers=owner.headers,
    )
    endpoint_id = endpoint.json()["data"]["endpoint"]["id"]
    manager = await api.add_member(owner, ws, "manager")
    await browser_login(client, manager.email, manager.password)
    inbox = await client.get(f"/app/w/{ws}/inbox")
    assert f"/app/w/{ws}/webhooks" not in inbox.text
    token = csrf_of(inbox.text)
    for path in ("webhooks", f"webhooks/{endpoint_id}"):
        assert (await client.get(f"/app/w/{ws}/{path}")).status_code == 403, path
    for path, data in (
        ("webhooks", {"url": receiver.url, "event_types": ["*"]}),
        (f"webhooks/{endpoint_id}/delete", {}),
        (f"webhooks/{endpoint_id}/rotate", {}),
    ):
        refused = await client.post(f"/app/w/{ws}/{path}", data={**data, "csrf_token": token})
        assert refused.status_code == 403, path

    # Another workspace's owner cannot reach this endpoint through their own workspace.
    client.cookies.clear()
    stranger = await api.register()
    other = await api.create_workspace(stranger)
    await browser_login(client, stranger.email, stranger.password)
    assert (await client.get(f"/app/w/{other}/webhooks/{endpoint_id}")).status_code == 404
    assert (await client.get(f"/app/w/{ws}/webhooks")).status_code in (403, 404)
