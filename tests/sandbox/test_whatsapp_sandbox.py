"""The fake WhatsApp Cloud API: Meta's endpoints, validation, errors, media and webhooks."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from botplatform.sandbox import FakeGraph, create_app, run

TOKEN = "EAAG-sandbox-token"
SECRET = "sandbox-app-secret"
PHONE_ID = "1122334455667"
MESSAGES = f"/v21.0/{PHONE_ID}/messages"
MEDIA = f"/v21.0/{PHONE_ID}/media"
CUSTOMER = "15557654321"
HOOK_URL = "http://platform.test/webhooks/whatsapp"


class Receiver:
    """A stand-in for the platform's webhook endpoint that keeps what it was sent."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        self.arrived = asyncio.Condition()

    async def endpoint(self, request: Request) -> Response:
        self.calls.append((dict(request.headers), await request.body()))
        async with self.arrived:
            self.arrived.notify_all()
        return Response(status_code=self.status)

    def client(self) -> httpx.AsyncClient:
        app = Starlette(routes=[Route("/webhooks/whatsapp", self.endpoint, methods=["POST"])])
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app))

    async def wait_for(self, count: int, timeout: float = 2.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout), self.arrived:
            await self.arrived.wait_for(lambda: len(self.calls) >= count)
        return [json.loads(body) for _, body in self.calls]


def verify_signature(headers: dict[str, str], body: bytes) -> None:
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-hub-signature-256"], f"sha256={expected}")
    assert headers["content-type"] == "application/json"


def value_of(payload: dict[str, Any]) -> dict[str, Any]:
    assert payload["object"] == "whatsapp_business_account"
    [entry] = payload["entry"]
    [change] = entry["changes"]
    assert change["field"] == "messages"
    value: dict[str, Any] = change["value"]
    assert value["messaging_product"] == "whatsapp"
    assert value["metadata"] == {"display_phone_number": "15550001111", "phone_number_id": PHONE_ID}
    return value


@pytest.fixture
async def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
async def graph(receiver: Receiver) -> AsyncIterator[FakeGraph]:
    hooks = receiver.client()
    graph = FakeGraph(
        access_tokens={TOKEN},
        app_secret=SECRET,
        webhook_url=HOOK_URL,
        status_delay=0.01,
        webhook_client=hooks,
    )
    yield graph
    await graph.aclose()
    await hooks.aclose()


def api_client(graph: FakeGraph, token: str | None = TOKEN) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=create_app(graph))
    return httpx.AsyncClient(transport=transport, base_url="http://graph.test", headers=headers)


@pytest.fixture
async def client(graph: FakeGraph) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(graph) as client:
        yield client


def message(kind: str, obj: Any, **extra: Any) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": CUSTOMER,
        "type": kind,
        kind: obj,
        **extra,
    }


def buttons(count: int) -> list[dict[str, Any]]:
    return [
        {"type": "reply", "reply": {"id": f"b{index}", "title": f"Option {index}"}}
        for index in range(count)
    ]


def list_action(rows: int = 2, row_title: str = "Margherita") -> dict[str, Any]:
    return {
        "button": "See the menu",
        "sections": [
            {
                "title": "Pizza",
                "rows": [
                    {"id": f"row-{index}", "title": row_title, "description": "Tomato, basil"}
                    for index in range(rows)
                ],
            }
        ],
    }


VALID: dict[str, dict[str, Any]] = {
    "text": message("text", {"body": "Your order has shipped", "preview_url": False}),
    "image": message("image", {"link": "https://cdn.example.com/cat.jpg", "caption": "A cat"}),
    "video": message("video", {"id": "1234567890123456", "caption": "Unboxing"}),
    "audio": message("audio", {"id": "1234567890123456"}),
    "document": message(
        "document",
        {
            "link": "https://cdn.example.com/invoice.pdf",
            "filename": "invoice-42.pdf",
            "caption": "Your invoice",
        },
    ),
    "sticker": message("sticker", {"id": "9876543210987654"}),
    "location": message(
        "location",
        {"latitude": 52.5200, "longitude": "13.4050", "name": "Office", "address": "Berlin"},
    ),
    "contacts": message(
        "contacts",
        [
            {
                "name": {"formatted_name": "Ada Lovelace", "first_name": "Ada"},
                "phones": [{"phone": "+44 20 7946 0000", "type": "WORK"}],
            }
        ],
    ),
    "template": message(
        "template",
        {
            "name": "order_update",
            "language": {"code": "en_US"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "#42"}]}],
        },
    ),
    "template-no-components": message(
        "template", {"name": "hello_world", "language": {"code": "en_US"}}
    ),
    "interactive-button": message(
        "interactive",
        {
            "type": "button",
            "header": {"type": "text", "text": "Order #42"},
            "body": {"text": "Shall we ship it?"},
            "footer": {"text": "Reply below"},
            "action": {"buttons": buttons(3)},
        },
    ),
    "interactive-list": message(
        "interactive",
        {"type": "list", "body": {"text": "What would you like?"}, "action": list_action()},
    ),
    "reaction": message(
        "reaction", {"message_id": "wamid.HBgLMTU1NTc2NTQzMjEVAgASGBQA", "emoji": "👍"}
    ),
    "reaction-removed": message("reaction", {"message_id": "wamid.HBgLMTU1NQA=", "emoji": ""}),
    "reply-with-context": message(
        "text", {"body": "Replying"}, context={"message_id": "wamid.HBgLMTU1NQA="}
    ),
}


def broken(name: str, path: list[str | int], value: Any) -> tuple[str, dict[str, Any]]:
    """A copy of ``VALID[name]`` with the value at ``path`` replaced (or removed: ...)."""
    body = copy.deepcopy(VALID[name])
    target: Any = body
    for key in path[:-1]:
        target = target[key]
    if value is ...:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return name, body


BROKEN: dict[str, tuple[tuple[str, dict[str, Any]], str]] = {
    "not-whatsapp": (broken("text", ["messaging_product"], "sms"), "messaging_product"),
    "no-to": (broken("text", ["to"], ...), "Param to"),
    "to-not-a-number": (broken("text", ["to"], "alice"), "Param to"),
    "unknown-type": (broken("text", ["type"], "poll"), "Param type"),
    "type-object-missing": (broken("text", ["text"], ...), "Param text is required"),
    "text-empty": (broken("text", ["text", "body"], ""), "text['body']"),
    "text-too-long": (broken("text", ["text", "body"], "x" * 4097), "at most 4096"),
    "preview-url-not-bool": (broken("text", ["text", "preview_url"], "yes"), "preview_url"),
    "image-id-and-link": (broken("image", ["image", "id"], "123"), "exactly one"),
    "image-no-source": (broken("image", ["image", "link"], ...), "exactly one"),
    "image-bad-link": (broken("image", ["image", "link"], "ftp://x/cat.jpg"), "valid URL"),
    "image-filename": (broken("image", ["image", "filename"], "cat.jpg"), "filename"),
    "audio-caption": (broken("audio", ["audio", "caption"], "hi"), "caption"),
    "sticker-caption": (broken("sticker", ["sticker", "caption"], "hi"), "caption"),
    "location-no-longitude": (broken("location", ["location", "longitude"], ...), "longitude"),
    "location-out-of-range": (broken("location", ["location", "latitude"], 91), "latitude"),
    "location-not-number": (broken("location", ["location", "latitude"], "north"), "latitude"),
    "contacts-empty": (broken("contacts", ["contacts"], []), "at least 1"),
    "contacts-not-list": (broken("contacts", ["contacts"], {"name": {}}), "array"),
    "contacts-no-formatted-name": (
        broken("contacts", ["contacts", 0, "name", "formatted_name"], ...),
        "formatted_name",
    ),
    "template-no-name": (broken("template", ["template", "name"], ...), "template['name']"),
    "template-no-language-code": (
        broken("template", ["template", "language"], {"policy": "deterministic"}),
        "['code']",
    ),
    "template-components-not-list": (
        broken("template", ["template", "components"], {"type": "body"}),
        "components",
    ),
    "button-too-many": (
        broken("interactive-button", ["interactive", "action", "buttons"], buttons(4)),
        "at most 3",
    ),
    "button-none": (
        broken("interactive-button", ["interactive", "action", "buttons"], []),
        "at least 1",
    ),
    "button-title-too-long": (
        broken(
            "interactive-button",
            ["interactive", "action", "buttons", 0, "reply", "title"],
            "x" * 21,
        ),
        "at most 20",
    ),
    "button-not-reply": (
        broken("interactive-button", ["interactive", "action", "buttons", 0, "type"], "url"),
        "'reply'",
    ),
    "button-duplicate-ids": (
        broken("interactive-button", ["interactive", "action", "buttons", 1, "reply", "id"], "b0"),
        "unique",
    ),
    "interactive-no-body": (broken("interactive-button", ["interactive", "body"], ...), "body"),
    "interactive-unknown-type": (
        broken("interactive-button", ["interactive", "type"], "carousel"),
        "interactive['type']",
    ),
    "header-too-long": (
        broken("interactive-button", ["interactive", "header", "text"], "x" * 61),
        "header",
    ),
    "list-button-too-long": (
        broken("interactive-list", ["interactive", "action", "button"], "x" * 21),
        "action['button']",
    ),
    "list-row-title-too-long": (
        broken("interactive-list", ["interactive", "action"], list_action(1, "x" * 25)),
        "at most 24",
    ),
    "list-too-many-rows": (
        broken("interactive-list", ["interactive", "action"], list_action(11)),
        "at most 10 rows",
    ),
    "list-no-sections": (
        broken("interactive-list", ["interactive", "action", "sections"], []),
        "at least 1",
    ),
    "reaction-no-message-id": (
        broken("reaction", ["reaction", "message_id"], ...),
        "reaction['message_id']",
    ),
    "reaction-no-emoji": (broken("reaction", ["reaction", "emoji"], ...), "emoji"),
    "context-without-id": (
        broken("reply-with-context", ["context"], {"id": "wamid.x"}),
        "context['message_id']",
    ),
}


# -- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "not-the-token"], ids=["missing", "wrong"])
async def test_send_needs_a_known_bearer_token(graph: FakeGraph, token: str | None) -> None:
    async with api_client(graph, token) as anon:
        response = await anon.post(MESSAGES, json=VALID["text"])
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == 190
    assert error["type"] == "OAuthException"
    assert error["message"]
    assert error["fbtrace_id"]
    assert graph.sent == []


async def test_unknown_phone_number_id_is_an_unknown_object(client: httpx.AsyncClient) -> None:
    response = await client.post("/v21.0/999/messages", json=VALID["text"])
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["error_subcode"]) == (100, 33)
    assert "'999' does not exist" in error["message"]


@pytest.mark.parametrize("path", ["/latest/1122334455667/messages", "/v21.0/a/b/c"])
async def test_unknown_paths_answer_like_graph(client: httpx.AsyncClient, path: str) -> None:
    response = await client.post(path, json=VALID["text"])
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 2500


async def test_wrong_method_answers_like_graph(client: httpx.AsyncClient) -> None:
    response = await client.get(MESSAGES)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["error_subcode"]) == (100, 33)
    assert error["message"].startswith("Unsupported get request.")


# -- messages ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(VALID))
async def test_each_message_type_is_accepted(
    client: httpx.AsyncClient, graph: FakeGraph, name: str
) -> None:
    body = VALID[name]
    response = await client.post(MESSAGES, json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["messaging_product"] == "whatsapp"
    assert answer["contacts"] == [{"input": CUSTOMER, "wa_id": CUSTOMER}]
    [sent] = graph.sent
    assert answer["messages"] == [{"id": sent["wamid"]}]
    assert sent == {
        "wamid": sent["wamid"],
        "to": CUSTOMER,
        "type": body["type"],
        "body": body,
        "phone_number_id": PHONE_ID,
    }


@pytest.mark.parametrize("name", list(BROKEN))
async def test_broken_bodies_are_rejected_with_details(
    client: httpx.AsyncClient, graph: FakeGraph, name: str
) -> None:
    (_, body), detail = BROKEN[name]
    response = await client.post(MESSAGES, json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["message"] == "(#100) Invalid parameter"
    assert error["type"] == "OAuthException"
    assert error["code"] == 100
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert detail in error["error_data"]["details"]
    assert error["fbtrace_id"]
    assert graph.sent == []


@pytest.mark.parametrize("content", [b"not json", b"[1, 2]"], ids=["not-json", "not-object"])
async def test_a_body_that_is_no_json_object_is_invalid(
    client: httpx.AsyncClient, content: bytes
) -> None:
    response = await client.post(MESSAGES, content=content)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == 100


async def test_missing_type_defaults_to_text(client: httpx.AsyncClient, graph: FakeGraph) -> None:
    body = {"messaging_product": "whatsapp", "to": CUSTOMER, "text": {"body": "hi"}}
    response = await client.post(MESSAGES, json=body)
    assert response.status_code == 200
    assert graph.sent[0]["type"] == "text"


async def test_recipient_is_normalized_to_digits(client: httpx.AsyncClient) -> None:
    body = {**VALID["text"], "to": "+1 (555) 765-4321"}
    response = await client.post(MESSAGES, json=body)
    assert response.json()["contacts"] == [{"input": "+1 (555) 765-4321", "wa_id": CUSTOMER}]


async def test_mark_as_read(client: httpx.AsyncClient, graph: FakeGraph) -> None:
    body = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.in1"}
    response = await client.post(MESSAGES, json=body)
    assert response.status_code == 200
    assert response.json() == {"success": True}
    assert graph.marked_read == ["wamid.in1"]
    assert graph.sent == []
    bad = await client.post(MESSAGES, json={**body, "status": "delivered"})
    assert bad.status_code == 400


async def test_wamids_are_unique_realistic_and_recorded(
    client: httpx.AsyncClient, graph: FakeGraph
) -> None:
    wamids = []
    for _ in range(25):
        response = await client.post(MESSAGES, json=VALID["text"])
        wamids.append(response.json()["messages"][0]["id"])
    assert len(set(wamids)) == 25
    assert [item["wamid"] for item in graph.sent] == wamids
    for wamid in wamids:
        assert wamid.startswith("wamid.HBg")
        assert len(wamid) > 40


async def test_requests_are_recorded(client: httpx.AsyncClient, graph: FakeGraph) -> None:
    await client.post(MESSAGES, json=VALID["text"], headers={"X-Trace": "abc"})
    [call] = graph.received
    assert call["method"] == "POST"
    assert call["path"] == MESSAGES
    assert call["headers"]["x-trace"] == "abc"
    assert call["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert call["json"] == VALID["text"]
    assert call["form"] is None
    assert isinstance(call["time"], float)


# -- error injection and latency ----------------------------------------------------------------


async def test_fail_next_answers_the_next_sends_with_graph_errors(
    client: httpx.AsyncClient, graph: FakeGraph
) -> None:
    graph.fail_next(429, 130429, times=2)
    graph.fail_next(400, 132001, title="Template missing")
    answers = [await client.post(MESSAGES, json=VALID["text"]) for _ in range(4)]
    assert [response.status_code for response in answers] == [429, 429, 400, 200]
    throttled = answers[0].json()["error"]
    assert throttled["code"] == 130429
    assert throttled["message"] == "(#130429) Rate limit hit"
    assert throttled["type"] == "OAuthException"
    assert throttled["error_data"]["details"] == "Rate limit hit"
    assert answers[2].json()["error"]["message"] == "(#132001) Template missing"
    assert len(graph.sent) == 1


async def test_fail_next_leaves_mark_as_read_and_invalid_bodies_alone(
    client: httpx.AsyncClient, graph: FakeGraph
) -> None:
    graph.fail_next(500, 131000)
    read = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.x"}
    assert (await client.post(MESSAGES, json=read)).status_code == 200
    assert (await client.post(MESSAGES, json=BROKEN["text-empty"][0][1])).status_code == 400
    failed = await client.post(MESSAGES, json=VALID["text"])
    assert failed.status_code == 500
    assert failed.json()["error"]["code"] == 131000


@pytest.mark.parametrize(("status", "times"), [(200, 1), (500, 0)])
def test_fail_next_rejects_nonsense(status: int, times: int) -> None:
    graph = FakeGraph(access_tokens={TOKEN}, app_secret=SECRET)
    with pytest.raises(ValueError, match="must"):
        graph.fail_next(status, 131000, times=times)


async def test_latency_is_honoured(client: httpx.AsyncClient, graph: FakeGraph) -> None:
    graph.latency = 0.05
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await client.post(MESSAGES, json=VALID["text"])
    assert response.status_code == 200
    assert loop.time() - started >= 0.05


# -- media ------------------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


async def upload(client: httpx.AsyncClient, data: bytes, mime: str) -> httpx.Response:
    return await client.post(
        MEDIA,
        files={"file": ("photo.png", data, mime)},
        data={"type": mime, "messaging_product": "whatsapp"},
    )


async def test_media_upload_metadata_download_round_trip(
    client: httpx.AsyncClient, graph: FakeGraph
) -> None:
    response = await upload(client, PNG, "image/png")
    assert response.status_code == 200, response.text
    media_id = response.json()["id"]
    assert media_id.isdigit()
    assert graph.received[0]["form"]["type"] == "image/png"
    assert graph.received[0]["form"]["file"]["size"] == len(PNG)

    meta = (await client.get(f"/v21.0/{media_id}")).json()
    assert meta == {
        "messaging_product": "whatsapp",
        "url": f"http://graph.test/media-download/{media_id}",
        "mime_type": "image/png",
        "sha256": hashlib.sha256(PNG).hexdigest(),
        "file_size": len(PNG),
        "id": media_id,
    }
    download = await client.get(meta["url"])
    assert download.status_code == 200
    assert download.content == PNG
    assert download.headers["content-type"] == "image/png"


async def test_media_endpoints_need_the_bearer_token(
    client: httpx.AsyncClient, graph: FakeGraph
) -> None:
    media_id = graph.add_media(PNG, "image/png")
    async with api_client(graph, token=None) as anon:
        assert (await upload(anon, PNG, "image/png")).status_code == 401
        assert (await anon.get(f"/v21.0/{media_id}")).status_code == 401
        denied = await anon.get(f"/media-download/{media_id}")
    assert denied.status_code == 401
    assert denied.json()["error"]["code"] == 190


async def test_preloaded_media_can_be_fetched(client: httpx.AsyncClient, graph: FakeGraph) -> None:
    media_id = graph.add_media(b"OggS voice note", "audio/ogg")
    meta = (await client.get(f"/v21.0/{media_id}")).json()
    assert meta["mime_type"] == "audio/ogg"
    assert (await client.get(meta["url"])).content == b"OggS voice note"


async def test_unknown_media_is_a_graph_404(client: httpx.AsyncClient) -> None:
    for path in ("/v21.0/4242424242424242", "/media-download/4242424242424242"):
        response = await client.get(path)
        assert response.status_code == 404
        error = response.json()["error"]
        assert error["code"] == 100
        assert "4242424242424242" in error["message"]


async def test_media_can_be_deleted(client: httpx.AsyncClient, graph: FakeGraph) -> None:
    media_id = graph.add_media(PNG, "image/png")
    assert (await client.delete(f"/v21.0/{media_id}")).json() == {"success": True}
    assert (await client.get(f"/v21.0/{media_id}")).status_code == 404


@pytest.mark.parametrize(
    ("data", "form", "code"),
    [
        ({"type": "image/png"}, {}, 100),
        ({"messaging_product": "whatsapp", "type": "image/gif"}, {}, 100),
        ({"messaging_product": "whatsapp", "type": "image/png"}, None, 100),
        ({"messaging_product": "whatsapp", "type": "image/webp"}, b"x" * 600_000, 131053),
    ],
    ids=["no-product", "unsupported-type", "no-file", "too-big"],
)
async def test_bad_uploads_are_rejected(
    client: httpx.AsyncClient, data: dict[str, str], form: Any, code: int
) -> None:
    files = None if form is None else {"file": ("f", form if form else PNG, "image/png")}
    response = await client.post(MEDIA, data=data, files=files)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


# -- webhooks ---------------------------------------------------------------------------------


async def test_a_send_is_followed_by_signed_sent_delivered_read(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    response = await client.post(MESSAGES, json=VALID["text"])
    wamid = response.json()["messages"][0]["id"]
    payloads = await receiver.wait_for(3)
    for headers, body in receiver.calls:
        verify_signature(headers, body)
    statuses = [value_of(payload)["statuses"][0] for payload in payloads]
    assert [status["status"] for status in statuses] == ["sent", "delivered", "read"]
    for status in statuses:
        assert status["id"] == wamid
        assert status["recipient_id"] == CUSTOMER
        assert status["timestamp"].isdigit()
    sent, delivered, read = statuses
    assert sent["conversation"]["origin"] == {"type": "service"}
    assert sent["conversation"]["expiration_timestamp"].isdigit()
    assert sent["pricing"] == {"billable": True, "pricing_model": "CBP", "category": "service"}
    assert delivered["conversation"]["id"] == sent["conversation"]["id"]
    assert "conversation" not in read
    assert "pricing" not in read


async def test_no_status_chain_without_auto_status(receiver: Receiver) -> None:
    async with receiver.client() as hooks:
        graph = FakeGraph(
            access_tokens={TOKEN},
            app_secret=SECRET,
            webhook_url=HOOK_URL,
            auto_status=False,
            webhook_client=hooks,
        )
        async with api_client(graph) as client:
            assert (await client.post(MESSAGES, json=VALID["text"])).status_code == 200
        await asyncio.sleep(0.1)
        await graph.aclose()
    assert receiver.calls == []


async def test_reset_stops_pending_status_chains(
    client: httpx.AsyncClient, graph: FakeGraph, receiver: Receiver
) -> None:
    graph.status_delay = 0.05
    await client.post(MESSAGES, json=VALID["text"])
    graph.reset()
    await asyncio.sleep(0.2)
    assert receiver.calls == []
    assert graph.sent == []


async def test_failed_status_carries_errors(graph: FakeGraph, receiver: Receiver) -> None:
    errors = [{"code": 131026, "title": "Message undeliverable", "error_data": {"details": "x"}}]
    await graph.post_status("wamid.HBgLfailed", "failed", CUSTOMER, errors)
    [payload] = await receiver.wait_for(1)
    verify_signature(*receiver.calls[0])
    [status] = value_of(payload)["statuses"]
    assert status["status"] == "failed"
    assert status["errors"] == errors
    assert "pricing" not in status


async def test_inbound_text_has_meta_shape_and_escaping(
    graph: FakeGraph, receiver: Receiver
) -> None:
    wamid = await graph.post_inbound_text(CUSTOMER, "Olá / ✓", name="Maria")
    [payload] = await receiver.wait_for(1)
    headers, body = receiver.calls[0]
    verify_signature(headers, body)
    # Meta escapes non-ASCII and "/" in the signed bytes.
    assert b"Ol\\u00e1 \\/ \\u2713" in body
    assert payload["entry"][0]["id"] == graph.waba_id
    value = value_of(payload)
    assert value["contacts"] == [{"profile": {"name": "Maria"}, "wa_id": CUSTOMER}]
    [inbound] = value["messages"]
    assert inbound["timestamp"].isdigit()
    assert inbound == {
        "from": CUSTOMER,
        "id": wamid,
        "timestamp": inbound["timestamp"],
        "text": {"body": "Olá / ✓"},
        "type": "text",
    }
    assert wamid.startswith("wamid.HBg")


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def warnings_seen() -> Iterator[Collect]:
    handler = Collect()
    logger = logging.getLogger("botplatform.sandbox")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


async def test_webhook_failures_are_logged_not_raised(
    graph: FakeGraph, receiver: Receiver, warnings_seen: Collect
) -> None:
    receiver.status = 500
    await graph.post_inbound_text(CUSTOMER, "hello")
    assert any("answered 500" in message for message in warnings_seen.messages)


async def test_own_client_posts_signed_statuses_over_real_http(receiver: Receiver) -> None:
    # No injected client: the graph's own session posts to a real loopback server, the
    # body's bytes exactly as signed (the platform verifies them), Meta's user agent, and a
    # status chain's three webhooks in order.
    server = TestServer(_as_aiohttp(receiver))
    await server.start_server()
    graph = FakeGraph(
        access_tokens={TOKEN},
        app_secret=SECRET,
        webhook_url=str(server.make_url("/webhooks/whatsapp")),
        status_delay=0.0,
    )
    try:
        async with api_client(graph) as client:
            body = message("text", {"body": "hi"})
            assert (await client.post(MESSAGES, json=body)).status_code == 200
            payloads = await receiver.wait_for(3)
        statuses = [value_of(payload)["statuses"][0]["status"] for payload in payloads]
        assert statuses == ["sent", "delivered", "read"]
        for headers, raw in receiver.calls:
            verify_signature(headers, raw)
            assert headers["user-agent"] == "facebookexternalua"
        assert graph.last_delivery.endswith("answered 200")
    finally:
        await graph.aclose()
        await server.close()


def _as_aiohttp(receiver: Receiver) -> web.Application:
    """The receiver behind a real HTTP server (aiohttp's), keeping the raw body."""

    async def endpoint(request: web.Request) -> web.Response:
        headers = {name.lower(): value for name, value in request.headers.items()}
        receiver.calls.append((headers, await request.read()))
        async with receiver.arrived:
            receiver.arrived.notify_all()
        return web.Response(status=receiver.status)

    app = web.Application()
    app.router.add_post("/webhooks/whatsapp", endpoint)
    return app


async def test_unreachable_webhook_url_is_logged(warnings_seen: Collect) -> None:
    # No injected client: the graph makes (and closes) its own; port 9 refuses connections.
    graph = FakeGraph(access_tokens={TOKEN}, app_secret=SECRET, webhook_url="http://127.0.0.1:9/")
    await graph.post_inbound_text(CUSTOMER, "hello")
    await graph.aclose()
    assert any("failed" in message for message in warnings_seen.messages)
    assert len(graph.webhooks) == 1


# -- control endpoints ------------------------------------------------------------------------


async def test_control_endpoints(
    client: httpx.AsyncClient, graph: FakeGraph, receiver: Receiver
) -> None:
    graph.auto_status = False
    inbound = await client.post(
        "/_sandbox/inbound", json={"from": CUSTOMER, "text": "Hi!", "name": "Bob"}
    )
    [payload] = await receiver.wait_for(1)
    assert value_of(payload)["messages"][0]["id"] == inbound.json()["id"]

    fail = await client.post("/_sandbox/fail", json={"status": 429, "code": 130429, "times": 1})
    assert fail.json() == {"ok": True}
    assert (await client.post(MESSAGES, json=VALID["text"])).status_code == 429
    accepted = await client.post(MESSAGES, json=VALID["text"])
    wamid = accepted.json()["messages"][0]["id"]

    sent = (await client.get("/_sandbox/sent")).json()["sent"]
    assert [(item["wamid"], item["to"], item["type"]) for item in sent] == [
        (wamid, CUSTOMER, "text")
    ]

    status = await client.post("/_sandbox/status", json={"id": wamid, "status": "failed"})
    assert status.json() == {"ok": True}
    payloads = await receiver.wait_for(2)
    [failed] = value_of(payloads[1])["statuses"]
    assert (failed["status"], failed["errors"][0]["code"]) == ("failed", 131026)

    await client.post("/_sandbox/fail", json={"status": 500, "code": 131000})
    assert (await client.post("/_sandbox/reset")).json() == {"ok": True}
    assert (await client.get("/_sandbox/sent")).json() == {"sent": []}
    assert (await client.post(MESSAGES, json=VALID["text"])).status_code == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/_sandbox/fail", {"status": "429", "code": 130429}),
        ("/_sandbox/fail", {"status": 200, "code": 130429}),
        ("/_sandbox/inbound", {"text": "no sender"}),
        ("/_sandbox/status", {"id": "wamid.unknown", "status": "read"}),
    ],
)
async def test_control_endpoints_reject_bad_input(
    client: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    response = await client.post(path, json=body)
    assert response.status_code == 400
    assert response.json()["error"]


def test_run_serves_the_app_with_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, dict[str, Any]]] = []

    def fake_run(app: Any, **kwargs: Any) -> None:
        calls.append((app, kwargs))

    monkeypatch.setattr("uvicorn.run", fake_run)
    graph = FakeGraph(access_tokens={TOKEN}, app_secret=SECRET)
    run("127.0.0.1", 8765, graph)
    [(app, kwargs)] = calls
    assert isinstance(app, Starlette)
    assert app.state.graph is graph
    assert (kwargs["host"], kwargs["port"]) == ("127.0.0.1", 8765)


# -- numbers told about, customers apart ------------------------------------------------------

OTHER_ID = "987654321012345"


def metadata(payload: dict[str, Any]) -> dict[str, str]:
    return dict(payload["entry"][0]["changes"][0]["value"]["metadata"])


async def test_a_number_told_about_answers_sends_and_gets_its_own_webhooks(
    client: httpx.AsyncClient, graph: FakeGraph, receiver: Receiver
) -> None:
    before = await client.post(f"/v21.0/{OTHER_ID}/messages", json=VALID["text"])
    assert before.status_code == 400  # unknown until told

    connected = await client.post(
        "/_sandbox/channels",
        json={
            "phone_number_id": OTHER_ID,
            "webhook_url": HOOK_URL,
            "display_phone_number": "+1 555 222 3333",
        },
    )
    assert connected.status_code == 200
    assert connected.json() == {
        "phone_number_id": OTHER_ID,
        "display_phone_number": "15552223333",
        "business_account_id": graph.waba_id,
        "webhook_url": HOOK_URL,
        "access_token": TOKEN,
        "app_secret": SECRET,
    }
    listed = (await client.get("/_sandbox/channels")).json()["numbers"]
    assert [n["phone_number_id"] for n in listed] == [PHONE_ID, OTHER_ID]

    sent = await client.post(f"/v21.0/{OTHER_ID}/messages", json=VALID["text"])
    assert sent.status_code == 200
    assert graph.sent[-1]["phone_number_id"] == OTHER_ID
    # Its statuses come from that number.
    statuses = await receiver.wait_for(3)
    assert {metadata(p)["phone_number_id"] for p in statuses} == {OTHER_ID}
    assert metadata(statuses[0])["display_phone_number"] == "15552223333"

    # A customer writes to the latest connected number unless told which.
    inbound = await client.post("/_sandbox/inbound", json={"from": CUSTOMER, "text": "hi"})
    assert inbound.status_code == 200
    assert inbound.json()["phone_number_id"] == OTHER_ID
    assert inbound.json()["delivery"] == f"{HOOK_URL} answered 200"
    [*_, payload] = await receiver.wait_for(4)
    assert metadata(payload)["phone_number_id"] == OTHER_ID
    headers, _ = receiver.calls[-1]
    verify_signature(headers, receiver.calls[-1][1])

    to_default = await client.post(
        "/_sandbox/inbound", json={"from": CUSTOMER, "text": "hi", "phone_number_id": PHONE_ID}
    )
    assert to_default.json()["phone_number_id"] == PHONE_ID
    unknown = await client.post(
        "/_sandbox/inbound", json={"from": CUSTOMER, "text": "hi", "phone_number_id": "555"}
    )
    assert unknown.status_code == 400 and "555" in unknown.json()["error"]


async def test_a_reset_keeps_the_connected_numbers(
    client: httpx.AsyncClient, graph: FakeGraph
) -> None:
    graph.connect(OTHER_ID, HOOK_URL)
    await client.post("/_sandbox/reset")
    assert (await client.post(f"/v21.0/{OTHER_ID}/messages", json=VALID["text"])).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"webhook_url": HOOK_URL},
        {"phone_number_id": "12ab", "webhook_url": HOOK_URL},
        {"phone_number_id": OTHER_ID},
        {"phone_number_id": OTHER_ID, "webhook_url": "ftp://x"},
        {"phone_number_id": OTHER_ID, "webhook_url": HOOK_URL, "display_phone_number": 5},
        {"phone_number_id": OTHER_ID, "webhook_url": HOOK_URL, "business_account_id": "x"},
    ],
)
async def test_connect_rejects_bad_input(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await client.post("/_sandbox/channels", json=body)
    assert response.status_code == 400 and response.json()["error"]


async def test_each_customer_has_a_distinct_name_and_keeps_it(
    client: httpx.AsyncClient, graph: FakeGraph, receiver: Receiver
) -> None:
    async def write(body: dict[str, str]) -> dict[str, Any]:
        response = await client.post("/_sandbox/inbound", json={"text": "hello", **body})
        assert response.status_code == 200, response.text
        return dict(response.json())

    ada = await write({"from": "+1 (555) 123-4567", "name": "Ada"})
    assert (ada["from"], ada["name"]) == ("15551234567", "Ada")
    first = await write({"from": "15559876543"})
    same_tail = await write({"from": "15550006543"})
    assert first["name"] == "Customer 6543"
    assert same_tail["name"] == "Customer 06543"  # never two customers with one name
    again = await write({"from": "15551234567"})
    assert again["name"] == "Ada"  # a profile name sticks to its number
    payloads = await receiver.wait_for(4)
    profiles = [p["entry"][0]["changes"][0]["value"]["contacts"][0] for p in payloads]
    assert [(c["wa_id"], c["profile"]["name"]) for c in profiles] == [
        ("15551234567", "Ada"),
        ("15559876543", "Customer 6543"),
        ("15550006543", "Customer 06543"),
        ("15551234567", "Ada"),
    ]
    bad = await client.post("/_sandbox/inbound", json={"from": "abc", "text": "x"})
    assert bad.status_code == 400


async def test_inbound_without_a_webhook_url_says_so() -> None:
    graph_without = FakeGraph(access_tokens={TOKEN}, app_secret=SECRET)
    await graph_without.post_inbound_text(CUSTOMER, "hello")
    assert graph_without.last_delivery == "no webhook URL: connect a channel first"
    await graph_without.aclose()


async def test_status_webhooks_in_flight_are_capped() -> None:
    """A burst of sends (a broadcast) does not open a connection per status at once: at most
    `status_concurrency` status webhooks are in flight, the rest wait their turn."""
    in_flight = peak = 0
    release = asyncio.Event()

    async def endpoint(request: Request) -> Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await release.wait()
        in_flight -= 1
        return Response(status_code=200)

    app = Starlette(routes=[Route("/webhooks/whatsapp", endpoint, methods=["POST"])])
    hooks = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    graph = FakeGraph(
        access_tokens={TOKEN},
        app_secret=SECRET,
        webhook_url=HOOK_URL,
        status_delay=0.0,
        webhook_client=hooks,
        status_concurrency=3,
    )
    try:
        async with api_client(graph) as client:
            for index in range(10):
                body = message("text", {"body": "hi"}) | {"to": f"1555000{index:04d}"}
                assert (await client.post(MESSAGES, json=body)).status_code == 200
            await asyncio.sleep(0.2)
            assert peak == 3
            release.set()
            for _ in range(100):
                if len(graph.webhooks) == 30 and in_flight == 0:
                    break
                await asyncio.sleep(0.02)
            assert len(graph.webhooks) == 30
            assert peak == 3
    finally:
        release.set()
        await graph.aclose()
        await hooks.aclose()
