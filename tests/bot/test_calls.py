"""The nodes and trigger that call out: HTTP requests (SSRF-safe, timeout, JSON → variables,
error port), AI answers (grounded, with the fallback port) and intent triggers — through the
simulator (inline) and over WhatsApp (in a job, outside the message's transaction)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.ai.test_service import FAQ, add_knowledge, trained_model
from tests.bot.flows import edge
from tests.bot.helpers import create_bot, publish, simulate, texts
from tests.bot.test_bot_whatsapp import WA_ID, _nth_sent, _text
from tests.conftest import Account, Api
from tests.fakes.openai import FakeOpenAI
from tests.serving import serving


class OrderApi:
    """A customer's order API on loopback: what it received, and how it answers."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.port = 0

    async def order(self, request: Request) -> Response:
        body = await request.body()
        self.requests.append(
            {"path": request.url.path, "headers": dict(request.headers), "body": body}
        )
        order_id = request.path_params["order_id"]
        if order_id == "slow":
            await asyncio.sleep(3)
        if order_id == "broken":
            return JSONResponse({"error": "boom"}, status_code=500)
        return JSONResponse(
            {"order": {"id": order_id, "status": "shipped", "items": [{"sku": "A1"}]}}
        )


@pytest.fixture
async def order_api() -> AsyncIterator[OrderApi]:
    api = OrderApi()
    app = Starlette(routes=[Route("/orders/{order_id}", api.order, methods=["GET", "POST"])])
    async with serving(app) as api.port:
        yield api


@pytest.fixture
def allow_loopback(runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """An operator allow-lists the loopback address (OUTBOUND_ALLOWLIST)."""
    monkeypatch.setattr(runtime.settings, "outbound_allowlist", ["127.0.0.1"])


def _http_flow(port: int, **request: Any) -> dict[str, Any]:
    return {
        "triggers": [{"type": "regex", "pattern": "^\\w+$", "node": "lookup"}],
        "nodes": [
            {
                "id": "lookup",
                "type": "http_request",
                "method": "POST",
                "url": f"http://127.0.0.1:{port}/orders/{{{{input.text}}}}",
                "headers": {"X-Customer": "{{contact.name}}"},
                "body": {"asked_by": "{{contact.name}}"},
                "save": {"status": "order.status", "sku": "order.items.0.sku"},
                "timeout_seconds": 1,
                **request,
            },
            {"id": "ok", "type": "end", "message": "Order is {{vars.status}} ({{vars.sku}})"},
            {"id": "failed", "type": "end", "message": "Lookup failed: {{vars.http_error}}"},
        ],
        "edges": [edge("lookup", "ok"), edge("lookup", "failed", "error")],
    }


async def _bot(api: Api, flow: dict[str, Any]) -> tuple[Account, str, str]:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    return owner, ws, (await create_bot(api, owner, ws, flow))["id"]


@pytest.mark.usefixtures("allow_loopback")
async def test_http_request_maps_json_and_takes_the_error_port(
    api: Api, order_api: OrderApi
) -> None:
    owner, ws, bot = await _bot(api, _http_flow(order_api.port))
    contact = {"name": "Ann", "attributes": {}}
    found = await simulate(api, owner, ws, bot, "A42", contact=contact)
    assert texts(found) == ["Order is shipped (A1)"]
    assert found["state"]["variables"] == {"http_status": 200, "status": "shipped", "sku": "A1"}
    (request,) = order_api.requests
    assert request["path"] == "/orders/A42"
    assert request["headers"]["x-customer"] == "Ann"
    assert request["body"] == b'{"asked_by":"Ann"}'
    broken = await simulate(api, owner, ws, bot, "broken", contact=contact)
    assert texts(broken) == ["Lookup failed: status 500"]
    slow = await simulate(api, owner, ws, bot, "slow", contact=contact)
    assert texts(slow) == ["Lookup failed: timeout"]


async def test_http_request_to_a_private_address_is_refused(
    api: Api, order_api: OrderApi, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The suite's settings let loopback through (its fake receivers listen there); not here.
    monkeypatch.setattr(runtime.settings, "outbound_allowlist", [])
    owner, ws, bot = await _bot(api, _http_flow(order_api.port))
    refused = await simulate(api, owner, ws, bot, "A42")
    (text,) = texts(refused)
    assert text.startswith("Lookup failed: blocked")
    assert order_api.requests == []


@pytest.mark.usefixtures("allow_loopback")
async def test_http_request_over_whatsapp_runs_in_a_job(
    api: Api, wa: FakeGraph, order_api: OrderApi
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"
    bot = await create_bot(api, owner, ws, _http_flow(order_api.port))
    await publish(api, owner, ws, bot["id"])
    await api.inbound_text(channel["id"], WA_ID, "B7", name="Dana")
    assert _text(await _nth_sent(wa, 1)) == "Order is shipped (A1)"
    assert order_api.requests[0]["headers"]["x-customer"] == "Dana"


def _ai_flow(with_fallback: bool) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [
        {"id": "ai", "type": "ai_answer", "instructions": "Be brief.", "save_as": "answer"},
    ]
    edges = []
    if with_fallback:
        nodes.append({"id": "human", "type": "handoff", "message": "Let me get a human."})
        edges.append(edge("ai", "human", "fallback"))
    return {"triggers": [{"type": "any_message", "node": "ai"}], "nodes": nodes, "edges": edges}


async def test_ai_answer_is_grounded_and_falls_back(
    api: Api, runtime: Runtime, openai: FakeOpenAI
) -> None:
    owner, ws, bot = await _bot(api, _ai_flow(with_fallback=True))
    await add_knowledge(runtime, uuid.UUID(ws))
    answered = await simulate(api, owner, ws, bot, "What are your opening hours?")
    (text,) = texts(answered)
    assert FAQ[0][1] in text
    assert answered["state"]["variables"]["answer"] == text
    assert answered["state"]["status"] == "finished"
    assert "Be brief." in openai.requests[0]["messages"][0]["content"]

    openai.fail_status = 503
    failed = await simulate(api, owner, ws, bot, "What are your opening hours?")
    assert texts(failed) == ["Let me get a human."]  # the branch, not the fallback text
    assert failed["state"]["status"] == "handoff"
    without_branch = await _bot(api, _ai_flow(with_fallback=False))
    await add_knowledge(runtime, uuid.UUID(without_branch[1]))
    plain = await simulate(api, *without_branch, "What are your opening hours?")
    assert texts(plain) == [runtime.settings.ai_fallback_message]


async def test_ai_answer_over_whatsapp_runs_in_a_job(
    api: Api, wa: FakeGraph, runtime: Runtime, openai: FakeOpenAI
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"
    await add_knowledge(runtime, uuid.UUID(ws))
    bot = await create_bot(api, owner, ws, _ai_flow(with_fallback=True))
    await publish(api, owner, ws, bot["id"])
    await api.inbound_text(channel["id"], WA_ID, "Do you ship abroad?", name="Dana")
    assert _text(await _nth_sent(wa, 1)) == f"Here is what I found: {FAQ[1][1]}"


async def test_intent_trigger_with_a_confidence_threshold(api: Api, runtime: Runtime) -> None:
    flow = {
        "triggers": [
            {"type": "intent", "intent": "order_status", "min_confidence": 0.3, "node": "track"},
            {"type": "intent", "intent": "pricing", "min_confidence": 0.999, "node": "price"},
            {"type": "any_message", "node": "other"},
        ],
        "nodes": [
            {"id": "track", "type": "end", "message": "Let me look up your order."},
            {"id": "price", "type": "end", "message": "Our prices"},
            {"id": "other", "type": "end", "message": "Tell me more."},
        ],
        "edges": [],
    }
    owner, ws, bot = await _bot(api, flow)
    untrained = await simulate(api, owner, ws, bot, "where is my parcel, it's been a week")
    assert texts(untrained) == ["Tell me more."]  # no model yet: no intent
    await trained_model(runtime, uuid.UUID(ws))
    tracked = await simulate(api, owner, ws, bot, "where is my parcel, it's been a week")
    intent = next(e for e in tracked["events"] if e["kind"] == "intent")
    assert intent["data"]["name"] == "order_status"
    assert texts(tracked) == ["Let me look up your order."]
    priced = await simulate(api, owner, ws, bot, "how much is the pro plan?")
    assert next(e for e in priced["events"] if e["kind"] == "intent")["data"]["name"] == "pricing"
    assert texts(priced) == ["Tell me more."]  # below its threshold
