"""Every real WhatsApp payload in the shared samples goes through the real webhook endpoint
and its processing job without failing (the parser's per-file expectations live in
tests/channels/whatsapp/test_parse.py)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from botplatform.models import InboundEvent
from botplatform.runtime import Runtime
from tests.conftest import APP_SECRET, PROVIDER_SAMPLES, Api, eventually, meta_signature

SAMPLE_FILES = sorted((PROVIDER_SAMPLES / "whatsapp").glob("*.json"))


def test_samples_are_there() -> None:
    assert len(SAMPLE_FILES) >= 40, "the shared provider samples are missing"


@pytest.mark.parametrize("sample", SAMPLE_FILES, ids=lambda path: path.stem)
async def test_sample_is_accepted_and_processed(
    sample: Path, client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    body = sample.read_bytes()
    json.loads(body)  # a real JSON sample
    response = await client.post(
        f"/webhooks/whatsapp/{channel['id']}", content=body, headers=meta_signature(body)
    )
    assert response.status_code == 200

    async def done() -> str | None:
        async with runtime.db.unit_of_work(write=False, system=True) as db:
            event = (await db.execute(select(InboundEvent))).scalar_one_or_none()
            return event.status if event and event.status != "pending" else None

    assert await eventually(done) == "processed"


META_SAMPLES = sorted(
    p for folder in ("messenger", "instagram") for p in (PROVIDER_SAMPLES / folder).glob("*.json")
)


@pytest.mark.parametrize("sample", META_SAMPLES, ids=lambda path: f"{path.parent.name}/{path.stem}")
async def test_meta_sample_is_accepted_and_processed(
    sample: Path, client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    """Messenger and Instagram payloads through their webhook routes and the shared intake."""
    provider = sample.parent.name
    owner = await api.register()
    ws = await api.create_workspace(owner)
    body: dict[str, object] = {
        "provider": provider,
        "name": provider,
        "page_id": "1029384756",
        "access_token": "EAAG-test-token-9876",
        "app_secret": APP_SECRET,
    }
    if provider == "instagram":
        body["instagram_account_id"] = "1029384756"
    created = await client.post(
        f"/api/v1/workspaces/{ws}/channels", json=body, headers=owner.headers
    )
    assert created.status_code == 201, created.text
    raw = sample.read_bytes()
    response = await client.post(
        f"/webhooks/{provider}/{created.json()['data']['id']}",
        content=raw,
        headers=meta_signature(raw),
    )
    assert response.status_code == 200

    async def done() -> str | None:
        async with runtime.db.unit_of_work(write=False, system=True) as db:
            event = (await db.execute(select(InboundEvent))).scalar_one_or_none()
            return event.status if event and event.status != "pending" else None

    assert await eventually(done) == "processed"
