"""Meta's template webhooks keep the stored template up to date: the real status samples
(approved; rejected with its reason) from ../shared/provider-samples, and quality and category
changes in the shape Meta documents (no real sample of those ships with the samples)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from tests.conftest import PROVIDER_SAMPLES, Api, eventually, meta_signature
from tests.events.test_events import assert_valid
from tests.serving import serving
from tests.template.test_templates_api import TEMPLATE, Setup, _setup
from websockets.asyncio.client import connect

from botplatform.authz.permissions import Permission, permissions_of
from botplatform.channels.messages import SystemEvent
from botplatform.channels.whatsapp.parse import parse
from botplatform.events.endpoints import readable_types
from botplatform.models import InboundEvent
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph

SAMPLES = PROVIDER_SAMPLES / "whatsapp"
WABA = "102290129340398"  # the business account the samples were sent for


@pytest.fixture(scope="session")
async def socket_base(app: FastAPI) -> AsyncIterator[str]:
    """The app under test on a loopback port, for a real WebSocket client."""
    async with serving(app) as port:
        yield f"ws://127.0.0.1:{port}"


def _sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def _account_change(field: str, value: dict[str, Any]) -> bytes:
    """A business-account webhook as Meta documents it (entry id, time, one change)."""
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA, "time": 1739321024, "changes": [{"field": field, "value": value}]}],
    }
    return json.dumps(payload).encode()


def test_the_parser_names_each_template_change() -> None:
    [approved] = parse(json.loads(_sample("template_status_update__approved.json")))
    assert isinstance(approved, SystemEvent) and approved.kind == "template_status"
    assert approved.data["event"] == "APPROVED"
    quality = _account_change("message_template_quality_update", {"new_quality_score": "RED"})
    category = _account_change("template_category_update", {"new_category": "MARKETING"})
    assert [e.kind for e in parse(json.loads(quality))] == ["template_quality"]  # type: ignore[union-attr]
    assert [e.kind for e in parse(json.loads(category))] == ["template_category"]  # type: ignore[union-attr]


async def _known_templates(client: httpx.AsyncClient, api: Api, wa: FakeGraph) -> Setup:
    """A channel of the samples' business account, whose sync found the two templates the
    samples are about (with the ids Meta gave them), still pending."""
    assert wa.waba_id == WABA
    s = await _setup(api, wa)
    for template_id, name, language in [
        ("1689556908129832", "order_confirmation", "en_US"),
        ("1689556908129835", "abandoned_cart", "en"),
    ]:
        template = wa.templates.create(WABA, {**TEMPLATE, "name": name, "language": language})
        template["id"] = template_id
    synced = await client.post(
        s.url(f"/channels/{s.channel['id']}/templates/sync"), headers=s.owner.headers
    )
    assert synced.json()["data"]["created"] == 2
    return s


async def _template(client: httpx.AsyncClient, s: Setup, name: str) -> dict[str, Any]:
    listed = await client.get(s.url("/templates"), headers=s.owner.headers)
    return next(t for t in listed.json()["data"]["items"] if t["name"] == name)


async def _post(client: httpx.AsyncClient, s: Setup, body: bytes) -> None:
    url = f"/webhooks/whatsapp/{s.channel['id']}"
    response = await client.post(url, content=body, headers=meta_signature(body))
    assert response.status_code == 200, response.text


async def test_real_status_samples_approve_and_reject(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    s = await _known_templates(client, api, wa)
    await _post(client, s, _sample("template_status_update__approved.json"))
    await _post(client, s, _sample("template_status_update__rejected.json"))

    async def changed() -> tuple[dict[str, Any], dict[str, Any]] | None:
        approved = await _template(client, s, "order_confirmation")
        rejected = await _template(client, s, "abandoned_cart")
        done = approved["status"] == "APPROVED" and rejected["status"] == "REJECTED"
        return (approved, rejected) if done else None

    approved, rejected = await eventually(changed)
    assert approved["rejected_reason"] is None
    assert rejected["category"] == "MARKETING"
    assert rejected["rejected_reason"].startswith("INVALID_FORMAT: Your template has parameters")


async def test_quality_and_category_updates(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    s = await _known_templates(client, api, wa)
    names = {
        "message_template_id": 1689556908129832,
        "message_template_name": "order_confirmation",
        "message_template_language": "en_US",
    }
    quality = {**names, "previous_quality_score": "GREEN", "new_quality_score": "YELLOW"}
    await _post(client, s, _account_change("message_template_quality_update", quality))
    await eventually(
        lambda: _check(client, s, "order_confirmation", "quality_score", "YELLOW"), timeout=10
    )
    # An announced recategorisation: `new_category` is still the current one.
    announced = {
        **names,
        "correct_category": "MARKETING",
        "new_category": "UTILITY",
        "category_update_timestamp": 1760711433,
    }
    await _post(client, s, _account_change("template_category_update", announced))
    done = {**names, "previous_category": "UTILITY", "new_category": "MARKETING"}
    await _post(client, s, _account_change("template_category_update", done))
    await eventually(lambda: _check(client, s, "order_confirmation", "category", "MARKETING"))
    # A pause, posted by the sandbox as Meta would, reaches the template too.
    await wa.set_template_status("1689556908129832", "PAUSED", "NONE")
    await eventually(lambda: _check(client, s, "order_confirmation", "status", "PAUSED"))


async def _check(client: httpx.AsyncClient, s: Setup, name: str, field: str, value: str) -> bool:
    return (await _template(client, s, name))[field] == value


async def test_a_webhook_for_a_template_not_known_here_changes_nothing(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    s = await _setup(api, wa)
    await _post(client, s, _sample("template_status_update__approved.json"))

    async def processed() -> bool:
        async with runtime.db.unit_of_work(write=False, system=True) as db:
            statuses = (await db.execute(select(InboundEvent.status))).scalars().all()
            return list(statuses) == ["processed"]

    await eventually(processed)
    listed = await client.get(s.url("/templates"), headers=s.owner.headers)
    assert listed.json()["data"]["items"] == []


def test_template_events_on_the_live_socket_need_templates_read() -> None:
    class Reader:
        def __init__(self, role: str) -> None:
            self.permissions = permissions_of(role)

        def can(self, permission: Permission) -> bool:
            return permission in self.permissions

    for role in ("viewer", "agent", "owner"):
        assert "template.status_changed" in readable_types(Reader(role))  # type: ignore[arg-type]


async def test_a_status_change_reaches_the_live_socket_of_a_viewer(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, socket_base: str
) -> None:
    s = await _known_templates(client, api, wa)
    viewer = await api.add_member(s.owner, s.ws, "viewer")
    url = f"{socket_base}/api/v1/workspaces/{s.ws}/events/ws"
    async with connect(url, additional_headers=viewer.headers) as socket:
        hello = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert "template.status_changed" in hello["event_types"]
        await _post(client, s, _sample("template_status_update__approved.json"))
        while True:
            message = json.loads(await asyncio.wait_for(socket.recv(), 15))
            if message["type"] == "template.status_changed":
                break
    assert_valid(message)
    assert message["data"]["template"]["name"] == "order_confirmation"
    assert message["data"]["template"]["status"] == "APPROVED"
    assert message["data"]["previous_status"] == "PENDING"
