"""The fast door for provider webhooks (`channels.inbound.WebhookLane`): once the process knows
a channel, its webhooks skip FastAPI's routing, yet every answer is the one the route gives:
stored and acknowledged, a redelivery flagged, a forgery refused with nothing stored, a
refusal by the rate limit, a disabled channel, and /metrics counting them under the route."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from limits import parse
from sqlalchemy import select

from botplatform.channel import repository as channel_repository
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


async def test_a_stale_channel_is_read_again_once_for_all_its_waiting_webhooks(
    client: httpx.AsyncClient,
    api: Api,
    runtime: Runtime,
    lane_answers: Counter[bool],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """When a busy channel's cached entry expires, the webhooks arriving at that moment stay
    on the lane and share one read of the channel, instead of each taking the long way."""
    url = await _known_channel(api, client)
    channel_id = uuid.UUID(url.rsplit("/", 1)[1])
    known = runtime.intake._channels[channel_id]
    runtime.intake._channels[channel_id] = dataclasses.replace(known, expires_at=0.0)
    reads = Counter[str]()
    real_read = channel_repository.get_for_webhook

    async def counted(db: Any, wanted: uuid.UUID) -> Any:
        reads["channel"] += 1
        return await real_read(db, wanted)

    monkeypatch.setattr(channel_repository, "get_for_webhook", counted)
    answers = await asyncio.gather(
        *(
            client.post(url, content=_body(n), headers=meta_signature(_body(n)))
            for n in range(10, 20)
        )
    )
    assert [a.status_code for a in answers] == [200] * 10
    assert lane_answers == {True: 10}
    assert reads["channel"] == 1
    assert runtime.intake._channels[channel_id].expires_at > 0
    assert await _stored(runtime) == 11


async def test_the_lane_leaves_oversized_and_cross_origin_webhooks_to_the_app(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, lane_answers: Counter[bool]
) -> None:
    url = await _known_channel(api, client)
    limit = runtime.settings.max_body_bytes
    payload = whatsapp_text_payload("15551110099", "x" * limit, "Customer", "wamid.big")
    big = json.dumps(payload).encode()
    declared = await client.post(url, content=big, headers=meta_signature(big))
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "payload_too_large"

    async def chunks() -> AsyncIterator[bytes]:  # no content-length: the limit is met reading
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    streamed = await client.post(url, content=chunks(), headers=meta_signature(big))
    assert streamed.status_code == 413
    # A browser's request (it carries Origin) is the application's, CORS and all.
    browser = await client.post(
        url,
        content=_body(30),
        headers={**meta_signature(_body(30)), "origin": "https://example.com"},
    )
    assert browser.status_code == 200
    assert lane_answers == {}
    assert await _stored(runtime) == 2


async def test_a_lane_webhook_gets_its_access_line_with_its_request_id(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, lane_answers: Counter[bool]
) -> None:
    url = await _known_channel(api, client)
    answer = await client.post(
        url, content=_body(40), headers={**meta_signature(_body(40)), "x-request-id": "lane-40"}
    )
    assert answer.status_code == 200 and answer.headers["x-request-id"] == "lane-40"
    assert lane_answers == {True: 1}
    for handler in logging.getLogger().handlers:
        handler.flush()
    log_file = runtime.settings.log_dir / "combined.log"
    lines = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
    [line] = [line for line in lines if line.get("request_id") == "lane-40"]
    assert line["event"] == "request" and line["status"] == 200
    assert line["path"] == url and line["method"] == "POST"
