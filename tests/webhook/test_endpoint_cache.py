"""Which endpoints an event goes to comes from the process's cache: disabling, enabling
again, retyping or deleting an endpoint applies to the very next event."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from botplatform.runtime import Runtime
from botplatform.webhook import cache as webhook_cache
from tests.conftest import Api
from tests.fakes.webhook_receiver import Receiver, running_receiver
from tests.webhook.test_webhooks import _deliveries, _emit, _endpoint, _workspace


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as running:
        yield running


async def test_each_endpoint_change_applies_to_the_next_event(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, receiver: Receiver
) -> None:
    owner, ws = await _workspace(api)
    created = await _endpoint(api, owner, ws, receiver.url, ["contact.created"])
    url = f"/api/v1/workspaces/{ws}/webhook-endpoints/{created['endpoint']['id']}"

    async def change(body: dict[str, object]) -> None:
        response = await client.patch(url, json=body, headers=owner.headers)
        assert response.status_code == 200, response.text

    await _emit(runtime, ws)
    assert len(await _deliveries(runtime, ws)) == 1
    await _emit(runtime, ws, "contact.updated")  # not a type it takes
    assert len(await _deliveries(runtime, ws)) == 1
    await change({"enabled": False})
    await _emit(runtime, ws)
    assert len(await _deliveries(runtime, ws)) == 1
    await change({"enabled": True})
    await _emit(runtime, ws)
    assert len(await _deliveries(runtime, ws)) == 2
    await change({"event_types": ["contact.updated"]})
    await _emit(runtime, ws)
    assert len(await _deliveries(runtime, ws)) == 2
    await _emit(runtime, ws, "contact.updated")
    assert len(await _deliveries(runtime, ws)) == 3
    deleted = await client.delete(url, headers=owner.headers)
    assert deleted.status_code == 200, deleted.text
    # An event after the delete makes no delivery (a stale entry would insert one for an
    # endpoint that is gone, and the event's transaction would fail on its foreign key).
    await _emit(runtime, ws, "contact.updated")
    assert await _deliveries(runtime, ws) == []
    assert runtime.cache.holds(webhook_cache.KIND, uuid.UUID(ws), None)
