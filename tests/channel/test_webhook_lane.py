"""The fast door for provider webhooks (`channels.inbound.WebhookLane`): once the process knows
a channel, its webhooks skip FastAPI's routing, yet every answer is the one the route gives:
stored and acknowledged, a redelivery flagged, a forgery refused with nothing stored, a
refusal by the rate limit, a disabled channel, and /metrics counting them under the route."""

from __future__ import annotations

import functools
import json
from collections import Counter
from typing import Any

import httpx
import pytest
from limits import parse
from sqlalchemy import select

from botplatform.channels.inbound import WebhookLane
from botplatform.models import InboundEvent
from botplatform.runtime import Runtime
from tests.conftest import Api, meta_signature, whatsapp_text_payload


@functools.cache  # one body per n: the payload carries the time, which may tick between calls
def _body(n: int) -> bytes:
    payload = whatsapp_text_payload(f"1555111{n:04d}", f"lane {n}", "Customer", f"wamid.l{n}")
    return json.dumps(payload).encode()


@pytest.fixture
def lane_answers(monkeypatch: pytest.MonkeyPatch) -> Counter[bool]:
    """How many webhooks the lane answered itself (True) or handed to the route (False)."""
    answers: Counter[bool] = Counter()
    real = WebhookLane._acknowledge

    async def counted(self: WebhookLane, *args: Any) -> bool:
        answered = await real(self, *args)
        answers[answered] += 1
        return answered

    monkeypatch.setattr(WebhookLane, "_acknowledge", counted)
    return answers


async def _stored(runtime: Runtime) -> int:
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        return len((await db.execute(select(InboundEvent.id))).all())


async def _known_channel(api: Api, client: httpx.AsyncClient) -> str:
    """A channel whose first webhook (through the route) made this process know it."""
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    url = f"/webhooks/whatsapp/{channel['id']}"
    first = await client.post(url, content=_body(0), headers=meta_signature(_body(0)))
    assert first.status_code == 200
    return url


async def test_a_known_channels_webhooks_take_the_lane_and_answer_as_the_route_does(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, lane_answers: Counter[bool]
) -> None:
    url = await _known_channel(api, client)
    new = await client.post(url, content=_body(1), headers=meta_signature(_body(1)))
    again = await client.post(url, content=_body(1), headers=meta_signature(_body(1)))
    assert lane_answers == {True: 2}
    assert new.status_code == again.status_code == 200
    assert new.json()["data"] == {"received": True, "duplicate": False}
    assert again.json()["data"] == {"received": True, "duplicate": True}
    assert new.json()["success"] is True and "timestamp" in new.json()
    assert new.headers["content-type"] == "application/json"
    assert new.headers["x-request-id"]  # the platform's middleware still wraps the lane
    assert new.headers["x-content-type-options"] == "nosniff"
    assert await _stored(runtime) == 2

    metrics = (await client.get("/metrics")).text
    assert 'route="/webhooks/{provider}/{channel_id}",status="200"' in metrics


async def test_what_the_lane_refuses_the_route_answers_and_nothing_is_stored(
    client: httpx.AsyncClient,
    api: Api,
    runtime: Runtime,
    lane_answers: Counter[bool],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = await _known_channel(api, client)
    forged = await client.post(
        url, content=_body(2), headers=meta_signature(_body(2), secret="not the app secret")
    )
    assert forged.status_code == 401
    assert forged.json()["error"]["code"]
    assert lane_answers == {False: 1}
    assert await _stored(runtime) == 1

    monkeypatch.setattr(runtime.ratelimiter, "enabled", True)
    monkeypatch.setitem(runtime.ratelimiter.tiers, "webhooks", parse("1/minute"))
    answers = [
        await client.post(url, content=_body(n), headers=meta_signature(_body(n))) for n in (3, 4)
    ]
    assert [a.status_code for a in answers] == [200, 429]
    assert answers[1].json()["error"]["code"] == "rate_limited"
    assert await _stored(runtime) == 2


async def test_a_disabled_channel_is_refused_at_once_though_the_lane_knew_it(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, lane_answers: Counter[bool]
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    url = f"/webhooks/whatsapp/{channel['id']}"
    assert (await client.post(url, content=_body(5), headers=meta_signature(_body(5)))).is_success
    disabled = await client.patch(
        f"/api/v1/workspaces/{ws}/channels/{channel['id']}",
        json={"status": "disabled"},
        headers=owner.headers,
    )
    assert disabled.status_code == 200, disabled.text
    refused = await client.post(url, content=_body(6), headers=meta_signature(_body(6)))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "channel_disabled"
    assert lane_answers[True] == 0
    assert await _stored(runtime) == 1
