"""WhatsApp channels: CRUD with secrets encrypted and masked, and the webhook: Meta's GET
handshake, signature on the raw bytes, durable storage with deduplication."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import Text, select, type_coerce

from botplatform.models import Channel, InboundEvent
from botplatform.runtime import Runtime
from tests.conftest import APP_SECRET, PROVIDER_SAMPLES, Account, Api, eventually, meta_signature

SAMPLES = PROVIDER_SAMPLES


async def create_channel(api: Api, owner: Account, ws: str, **extra: Any) -> dict[str, Any]:
    return await api.create_channel(owner, ws, **extra)


sign = meta_signature


async def test_create_shows_webhook_url_and_masks_secrets(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await create_channel(api, owner, ws, verify_token="vtok-123")
    assert channel["webhook_url"] == f"http://localhost:3000/webhooks/whatsapp/{channel['id']}"
    assert channel["verify_token"] == "vtok-123"
    assert channel["access_token_hint"] == "••••••••9876"
    assert "EAAG-test-token" not in json.dumps(channel) and APP_SECRET not in json.dumps(channel)
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        raw = (await db.execute(select(type_coerce(Channel.__table__.c.app_secret, Text)))).scalar()
    assert raw and APP_SECRET not in raw
    viewer = await api.add_member(owner, ws, "viewer")
    seen = await client.get(
        f"/api/v1/workspaces/{ws}/channels/{channel['id']}", headers=viewer.headers
    )
    assert seen.json()["data"]["verify_token"].startswith("••••")
    refused = await client.post(
        f"/api/v1/workspaces/{ws}/channels", json={"name": "x"}, headers=viewer.headers
    )
    assert refused.status_code == 403


async def test_channel_update_and_delete(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await create_channel(api, owner, ws)
    url = f"/api/v1/workspaces/{ws}/channels/{channel['id']}"
    updated = await client.patch(
        url, json={"name": "Sales", "send_rate_per_second": 200}, headers=owner.headers
    )
    assert updated.json()["data"]["name"] == "Sales"
    assert updated.json()["data"]["send_rate_per_second"] == 200
    too_fast = await client.patch(url, json={"send_rate_per_second": 5000}, headers=owner.headers)
    assert too_fast.status_code == 422
    duplicate = await client.post(
        f"/api/v1/workspaces/{ws}/channels",
        json={"name": "Again", "phone_number_id": "1122334455667", "business_account_id": "1" * 5},
        headers=owner.headers,
    )
    assert duplicate.json()["error"]["code"] == "channel_exists"
    assert (await client.delete(url, headers=owner.headers)).status_code == 200
    assert (await client.get(url, headers=owner.headers)).status_code == 404


HANDSHAKE = json.loads((SAMPLES / "meta-verification" / "get_handshake_cases.json").read_text())


@pytest.mark.parametrize("case", HANDSHAKE["cases"], ids=lambda c: c["query"][:40])
async def test_meta_handshake(client: httpx.AsyncClient, api: Api, case: dict[str, Any]) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await create_channel(
        api, owner, ws, verify_token=HANDSHAKE["configured_verify_token"]
    )
    response = await client.get(f"/webhooks/whatsapp/{channel['id']}?{case['query']}")
    assert response.status_code == case["expect_status"]
    if case["expect_status"] == 200:
        assert response.text == case["expect_body"]
        assert response.headers["content-type"].startswith("text/plain")


async def test_signed_webhook_is_stored_once_and_processed(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await create_channel(api, owner, ws)
    body = (SAMPLES / "whatsapp" / "message__text.json").read_bytes()
    url = f"/webhooks/whatsapp/{channel['id']}"
    first = await client.post(url, content=body, headers=sign(body))
    again = await client.post(url, content=body, headers=sign(body))  # Meta retries
    assert first.status_code == again.status_code == 200
    assert first.json()["data"] == {"received": True, "duplicate": False}
    assert again.json()["data"]["duplicate"] is True

    async def processed() -> list[InboundEvent]:
        async with runtime.db.unit_of_work(write=False, system=True) as db:
            rows = (await db.execute(select(InboundEvent))).scalars().all()
            return [r for r in rows if r.status == "processed"]

    assert len(await eventually(processed)) == 1
    conversations = (
        await client.get(f"/api/v1/workspaces/{ws}/conversations", headers=owner.headers)
    ).json()["data"]["items"]
    assert [c["contact_name"] for c in conversations] == ["Test Name"]
    messages = (
        await client.get(
            f"/api/v1/workspaces/{ws}/conversations/{conversations[0]['id']}/messages",
            headers=owner.headers,
        )
    ).json()["data"]["items"]
    assert [(m["direction"], m["type"], m["text"]) for m in messages] == [
        ("inbound", "text", "Body Text")
    ]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        {"X-Hub-Signature-256": "md5=abc"},
    ],
)
async def test_unsigned_or_forged_webhooks_are_401_and_store_nothing(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, headers: dict[str, str]
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await create_channel(api, owner, ws)
    body = (SAMPLES / "whatsapp" / "message__text.json").read_bytes()
    forged = await client.post(
        f"/webhooks/whatsapp/{channel['id']}",
        content=body,
        headers={"Content-Type": "application/json", **headers},
    )
    assert forged.status_code == 401
    wrong_secret = await client.post(
        f"/webhooks/whatsapp/{channel['id']}", content=body, headers=sign(body, "another-secret")
    )
    assert wrong_secret.status_code == 401
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        assert (await db.execute(select(InboundEvent))).scalars().all() == []


async def test_real_meta_signature_vector(client: httpx.AsyncClient, api: Api) -> None:
    vector = json.loads((SAMPLES / "signatures" / "meta_xhub256_pywa.json").read_text())
    body = (SAMPLES / "signatures" / vector["raw_body_file"]).read_bytes()
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await create_channel(
        api, owner, ws, app_secret=vector["app_secret"], phone_number_id="277321005464405"
    )
    response = await client.post(
        f"/webhooks/whatsapp/{channel['id']}",
        content=body,
        headers={
            "X-Hub-Signature-256": vector["expected_header_value"],
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 200


async def test_signed_but_malformed_body_is_kept_and_never_crashes(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await create_channel(api, owner, ws)
    for body in (b"not json at all", b'{"object": "page", "entry": 5}', b"[]"):
        response = await client.post(
            f"/webhooks/whatsapp/{channel['id']}", content=body, headers=sign(body)
        )
        assert response.status_code == 200

    async def failed() -> list[InboundEvent]:
        async with runtime.db.unit_of_work(write=False, system=True) as db:
            rows = (await db.execute(select(InboundEvent))).scalars().all()
            return [r for r in rows if r.status == "failed"]

    kept = await eventually(lambda: _three(failed))
    assert all(row.error for row in kept)


async def _three(fetch: Any) -> Any:
    rows = await fetch()
    return rows if len(rows) == 3 else None


async def test_unknown_channel_and_provider(client: httpx.AsyncClient) -> None:
    import uuid

    body = b"{}"
    assert (
        await client.post(f"/webhooks/whatsapp/{uuid.uuid4()}", content=body, headers=sign(body))
    ).status_code == 404
    assert (
        await client.post(f"/webhooks/fax/{uuid.uuid4()}", content=body, headers=sign(body))
    ).status_code == 404
