"""Templates through the API against the fake Graph API (both backends): create → PENDING →
the sandbox's signed status webhook → APPROVED with its event; a rejection with its reason;
sync across several pages; delete; Meta's errors as clear 4xx; another workspace sees
nothing; a viewer cannot manage; sends checked against the template before anything is
queued."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import jsonschema
import pytest
from sqlalchemy import func, select
from tests.conftest import Account, Api, eventually

from botplatform.events.catalog import json_schema
from botplatform.models import AuditLog, Event, Message
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph

BODY = {
    "type": "BODY",
    "text": "Hi {{1}}, your order {{2}} has shipped.",
    "example": {"body_text": [["Ada", "#42"]]},
}
TEMPLATE: dict[str, Any] = {
    "name": "order_shipped",
    "language": "en_US",
    "category": "UTILITY",
    "components": [
        {"type": "HEADER", "format": "TEXT", "text": "Your order"},
        BODY,
        {"type": "FOOTER", "text": "Thanks for shopping"},
        {"type": "BUTTONS", "buttons": [{"type": "QUICK_REPLY", "text": "Thanks"}]},
    ],
}


@dataclass
class Setup:
    owner: Account
    ws: str
    channel: dict[str, Any]

    def url(self, path: str = "") -> str:
        return f"/api/v1/workspaces/{self.ws}{path}"


@pytest.fixture
async def fast_review(wa: FakeGraph) -> AsyncIterator[FakeGraph]:
    before = wa.template_approval_delay
    wa.template_approval_delay = 0.3
    yield wa
    wa.template_approval_delay = before


async def _setup(api: Api, wa: FakeGraph) -> Setup:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await api.subscribe(owner, ws)  # its events stored, read by the tests
    channel = await api.create_channel(owner, ws, business_account_id=wa.waba_id)
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"
    return Setup(owner, ws, channel)


async def _create(client: httpx.AsyncClient, s: Setup, **overrides: Any) -> httpx.Response:
    body = {**TEMPLATE, "channel_id": s.channel["id"], **overrides}
    return await client.post(s.url("/templates"), json=body, headers=s.owner.headers)


async def _get(client: httpx.AsyncClient, s: Setup, template_id: str) -> dict[str, Any]:
    response = await client.get(s.url(f"/templates/{template_id}"), headers=s.owner.headers)
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


async def _events(runtime: Runtime, ws: str) -> list[Event]:
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        statement = (
            select(Event)
            .where(Event.workspace_id == uuid.UUID(ws), Event.type == "template.status_changed")
            .order_by(Event.created_at)
        )
        return list((await db.execute(statement)).scalars())


async def test_create_pending_then_the_review_webhook_approves_it(
    client: httpx.AsyncClient, api: Api, fast_review: FakeGraph, runtime: Runtime
) -> None:
    wa = fast_review
    s = await _setup(api, wa)
    created = await _create(client, s)
    assert created.status_code == 201, created.text
    template = created.json()["data"]
    assert template["status"] == "PENDING"
    assert template["variables"]["body"] == ["1", "2"]
    # What reached "Meta": the documented create call with its components and examples.
    [call] = [c for c in wa.received if c["path"].endswith("/message_templates")]
    assert call["method"] == "POST"
    assert call["path"] == f"/v21.0/{wa.waba_id}/message_templates" or call["path"].endswith(
        f"/{wa.waba_id}/message_templates"
    )
    assert call["json"]["components"][1]["example"] == {"body_text": [["Ada", "#42"]]}
    assert template["provider_template_id"] == wa.templates.of(wa.waba_id)[0]["id"]

    async def approved() -> dict[str, Any] | None:
        found = await _get(client, s, template["id"])
        return found if found["status"] == "APPROVED" else None

    assert (await eventually(approved))["status_updated_at"] is not None
    [event] = await _events(runtime, s.ws)
    assert event.data["previous_status"] == "PENDING"
    assert event.data["template"]["status"] == "APPROVED"
    assert event.data["source"] == "webhook"
    payload = {
        "id": str(event.id),
        "type": event.type,
        "version": event.version,
        "timestamp": event.created_at.isoformat(),
        "workspace_id": s.ws,
        "data": event.data,
    }
    jsonschema.Draft202012Validator(json_schema("template.status_changed")).validate(payload)

    # Listed, filtered by status and channel; the same name and language again is a 409.
    listed = await client.get(
        s.url("/templates"),
        params={"status": "APPROVED", "channel_id": s.channel["id"]},
        headers=s.owner.headers,
    )
    assert [t["name"] for t in listed.json()["data"]["items"]] == ["order_shipped"]
    none = await client.get(s.url("/templates?status=REJECTED"), headers=s.owner.headers)
    assert none.json()["data"]["items"] == []
    again = await _create(client, s)
    assert again.status_code == 409 and again.json()["error"]["code"] == "template_exists"
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        actions = (
            await db.execute(select(AuditLog.action).where(AuditLog.target_type == "template"))
        ).scalars()
        assert list(actions) == ["template.create"]


async def test_a_rejected_template_keeps_the_reason(
    client: httpx.AsyncClient, api: Api, fast_review: FakeGraph
) -> None:
    s = await _setup(api, fast_review)
    body = {"type": "BODY", "text": "{{1}} is ready", "example": {"body_text": [["Ada"]]}}
    created = await _create(client, s, name="starts_with_var", components=[body])
    assert created.status_code == 201, created.text

    async def rejected() -> dict[str, Any] | None:
        found = await _get(client, s, created.json()["data"]["id"])
        return found if found["status"] == "REJECTED" else None

    assert (await eventually(rejected))["rejected_reason"] == "INVALID_FORMAT"


async def test_meta_errors_are_clear_4xx(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    s = await _setup(api, wa)
    # Known to WhatsApp but not here (made in Meta's console): Meta's duplicate error → 409.
    wa.templates.create(wa.waba_id, {**TEMPLATE})
    duplicate = await _create(client, s)
    assert duplicate.status_code == 409, duplicate.text
    error = duplicate.json()["error"]
    assert error["code"] == "template_exists"
    assert error["details"]["provider_subcode"] == 2388024
    # A business account the API does not know → 422 waba_not_found.
    other = await api.create_channel(
        s.owner, s.ws, phone_number_id="9988776655", business_account_id="555000111"
    )
    unknown = await _create(client, s, channel_id=other["id"])
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "waba_not_found"
    # A token Meta refuses → 422 provider_auth_failed, and nothing stored.
    await client.patch(
        s.url(f"/channels/{s.channel['id']}"),
        json={"access_token": "EAAG-revoked"},
        headers=s.owner.headers,
    )
    refused = await _create(client, s, name="another_one")
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "provider_auth_failed"
    listed = await client.get(s.url("/templates"), headers=s.owner.headers)
    assert listed.json()["data"]["items"] == []
    # Our own checks come first: a variable without its example never reaches Meta.
    bad = {"type": "BODY", "text": "Hi {{1}}"}
    invalid = await _create(client, s, name="no_example", components=[bad])
    assert invalid.status_code == 422


async def test_sync_reads_every_page_and_marks_the_missing(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    s = await _setup(api, wa)
    for i in range(230):
        template = wa.templates.create(wa.waba_id, {**TEMPLATE, "name": f"promo_{i:03d}"})
        template["status"] = "APPROVED"
    wa.templates.of(wa.waba_id)[5]["status"] = "PAUSED"
    url = s.url(f"/channels/{s.channel['id']}/templates/sync")
    synced = await client.post(url, headers=s.owner.headers)
    assert synced.status_code == 200, synced.text
    result = synced.json()["data"]
    assert result == {"created": 230, "updated": 0, "deleted": 0, "total": 230, "pages": 3}
    gets = [c for c in wa.received if c["method"] == "GET"]
    assert len(gets) == 3
    page = await client.get(s.url("/templates?limit=200"), headers=s.owner.headers)
    assert len(page.json()["data"]["items"]) == 200 and page.json()["data"]["next_cursor"]
    paused = await client.get(s.url("/templates?status=PAUSED"), headers=s.owner.headers)
    assert [t["name"] for t in paused.json()["data"]["items"]] == ["promo_005"]

    # Deleted in Meta's console, and one disabled: the next sync says so.
    wa.templates.delete(wa.waba_id, "promo_007", None)
    wa.templates.of(wa.waba_id)[0]["status"] = "DISABLED"
    again = (await client.post(url, headers=s.owner.headers)).json()["data"]
    assert again == {"created": 0, "updated": 229, "deleted": 1, "total": 229, "pages": 3}
    gone = await client.get(s.url("/templates?status=DELETED"), headers=s.owner.headers)
    assert [t["name"] for t in gone.json()["data"]["items"]] == ["promo_007"]
    changes = {
        (e.data["template"]["name"], e.data["template"]["status"])
        for e in await _events(runtime, s.ws)
    }
    assert changes == {("promo_007", "DELETED"), ("promo_000", "DISABLED")}


async def test_delete_on_whatsapp_and_here(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    s = await _setup(api, wa)
    created = (await _create(client, s)).json()["data"]
    deleted = await client.delete(s.url(f"/templates/{created['id']}"), headers=s.owner.headers)
    assert deleted.status_code == 200, deleted.text
    [call] = [c for c in wa.received if c["method"] == "DELETE"]
    assert wa.templates.of(wa.waba_id) == []
    missing = await client.get(s.url(f"/templates/{created['id']}"), headers=s.owner.headers)
    assert missing.status_code == 404
    # Meta keeps a deleted name and language blocked: recreating it is a clear 409.
    again = await _create(client, s)
    assert again.status_code == 409
    assert again.json()["error"]["details"]["provider_subcode"] == 2388023
    assert call["path"].endswith(f"/{wa.waba_id}/message_templates")


async def test_another_workspace_sees_and_changes_nothing(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    s = await _setup(api, wa)
    template = (await _create(client, s)).json()["data"]
    stranger = await api.register()
    other_ws = await api.create_workspace(stranger, "Other")
    base = f"/api/v1/workspaces/{other_ws}"
    h = stranger.headers
    assert (await client.get(f"{base}/templates", headers=h)).json()["data"]["items"] == []
    for method, path, body in [
        ("GET", f"/templates/{template['id']}", None),
        ("DELETE", f"/templates/{template['id']}", None),
        ("POST", f"/templates/{template['id']}/preview", {}),
        ("POST", f"/channels/{s.channel['id']}/templates/sync", None),
        ("POST", "/templates", {**TEMPLATE, "name": "x", "channel_id": s.channel["id"]}),
    ]:
        response = await client.request(method, f"{base}{path}", json=body, headers=h)
        assert response.status_code == 404, (method, path, response.text)
    # And the owner's own workspace path with the stranger's token: 404 too.
    foreign = await client.get(s.url(f"/templates/{template['id']}"), headers=h)
    assert foreign.status_code == 404
    assert len(wa.templates.of(wa.waba_id)) == 1


async def test_a_viewer_reads_and_previews_but_cannot_manage(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    s = await _setup(api, wa)
    template = (await _create(client, s)).json()["data"]
    viewer = await api.add_member(s.owner, s.ws, "viewer")
    h = viewer.headers
    assert (await client.get(s.url("/templates"), headers=h)).status_code == 200
    preview = await client.post(s.url(f"/templates/{template['id']}/preview"), json={}, headers=h)
    assert preview.status_code == 200
    for method, path, body in [
        ("POST", "/templates", {**TEMPLATE, "name": "x", "channel_id": s.channel["id"]}),
        ("DELETE", f"/templates/{template['id']}", None),
        ("POST", f"/channels/{s.channel['id']}/templates/sync", None),
    ]:
        response = await client.request(method, s.url(path), json=body, headers=h)
        assert response.status_code == 403, (method, path, response.text)
    manager = await api.add_member(s.owner, s.ws, "manager")
    synced = await client.post(
        s.url(f"/channels/{s.channel['id']}/templates/sync"), headers=manager.headers
    )
    assert synced.status_code == 200


async def test_preview_with_examples_and_with_values(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    s = await _setup(api, wa)
    template = (await _create(client, s)).json()["data"]
    url = s.url(f"/templates/{template['id']}/preview")
    shown = (await client.post(url, json={}, headers=s.owner.headers)).json()["data"]
    assert shown["body"] == "Hi Ada, your order #42 has shipped."
    assert shown["header"] == "Your order" and shown["footer"] == "Thanks for shopping"
    assert shown["errors"] == []
    given = {"params": {"body": ["Grace", "#7"]}}
    shown = (await client.post(url, json=given, headers=s.owner.headers)).json()["data"]
    assert shown["body"] == "Hi Grace, your order #7 has shipped."
    assert shown["components"] == [
        {
            "type": "body",
            "parameters": [{"type": "text", "text": "Grace"}, {"type": "text", "text": "#7"}],
        }
    ]
    short = {"params": {"body": ["Grace"]}}
    shown = (await client.post(url, json=short, headers=s.owner.headers)).json()["data"]
    assert shown["errors"] == ["body: expected 2 value(s), got 1"]


async def _message_count(runtime: Runtime, ws: str) -> int:
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        statement = (
            select(func.count()).select_from(Message).where(Message.workspace_id == uuid.UUID(ws))
        )
        return int((await db.execute(statement)).scalar_one())


async def test_sends_are_checked_against_a_known_template(
    client: httpx.AsyncClient, api: Api, fast_review: FakeGraph, runtime: Runtime
) -> None:
    wa = fast_review
    s = await _setup(api, wa)
    template = (await _create(client, s)).json()["data"]

    async def send(name: str, parameters: list[dict[str, Any]]) -> httpx.Response:
        body = {
            "channel_id": s.channel["id"],
            "to": "+15551230000",
            "type": "template",
            "template": {
                "name": name,
                "language": "en_US",
                "components": [{"type": "body", "parameters": parameters}],
            },
        }
        return await client.post(s.url("/messages"), json=body, headers=s.owner.headers)

    one = [{"type": "text", "text": "Ada"}]
    pending = await send("order_shipped", one + one)
    assert pending.status_code == 422 and pending.json()["error"]["code"] == "template_not_approved"

    async def approved() -> bool:
        return (await _get(client, s, template["id"]))["status"] == "APPROVED"

    await eventually(approved)
    wrong = await send("order_shipped", one)
    assert wrong.status_code == 422, wrong.text
    error = wrong.json()["error"]
    assert error["code"] == "template_variables_invalid"
    assert error["details"]["errors"] == ["body: expected 2 value(s), got 1"]
    assert await _message_count(runtime, s.ws) == 0  # nothing queued

    right = await send("order_shipped", [*one, {"type": "text", "text": "#9"}])
    assert right.status_code == 201, right.text
    # A template not known here is left to Meta, as before.
    unknown = await send("made_in_console", one)
    assert unknown.status_code == 201, unknown.text
    sent = await eventually(lambda: len(wa.sent) == 2 and wa.sent)
    assert {m["body"]["template"]["name"] for m in sent} == {"order_shipped", "made_in_console"}
