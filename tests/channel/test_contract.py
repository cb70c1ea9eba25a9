"""One contract for every registered channel adapter: verify, parse and send behave the same
way behind the port, whatever the provider. Adding an adapter to the registry adds it here;
a provider without a fixture below fails this test rather than slipping through."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from botplatform.channels.base import MalformedPayload, ProviderSendError, WebhookRejected
from botplatform.channels.messages import Content, InboundMessage, MessageType, OutboundMessage
from botplatform.channels.registry import ADAPTERS, PROVIDERS, adapter_for
from botplatform.config import Settings
from botplatform.kit import provider_http
from botplatform.kit.errors import NotAvailable
from botplatform.models import Channel
from botplatform.sandbox import FakeGraph
from botplatform.sandbox import create_app as create_graph_app
from botplatform.sandbox.telegram import DEFAULT_TOKEN as TELEGRAM_TOKEN
from botplatform.sandbox.telegram import FakeBotApi
from botplatform.sandbox.telegram import create_app as create_telegram_app
from tests.conftest import PROVIDER_SAMPLES, base_settings
from tests.serving import serving

SAMPLES = PROVIDER_SAMPLES


@dataclass
class Fake:
    """A provider's fake on loopback, and how to make its next send fail."""

    app: Any
    throttle: Callable[[], None]  # the next send is throttled (retryable)
    refuse: Callable[[], None]  # the next send is refused for good
    refused_code: str  # the code the refusal is classified as


def _graph_fake(graph: FakeGraph) -> Fake:
    return Fake(
        create_graph_app(graph),
        lambda: graph.fail_next(429, 130429),
        lambda: graph.fail_next(400, 131026),
        "131026",
    )


@dataclass
class Case:
    channel: Channel
    signed: Callable[[bytes], dict[str, str]]
    sample: bytes
    fake: Callable[[], Fake]


def _whatsapp() -> Case:
    secret = "contract-secret"
    channel = Channel(
        id=uuid.uuid4(),
        workspace_id=uuid.uuid4(),
        provider="whatsapp",
        name="c",
        config={"phone_number_id": "1122334455667"},
        access_token="tok",
        app_secret=secret,
        verify_token="vt",
        send_rate_per_second=80,
    )

    def signed(body: bytes) -> dict[str, str]:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return {"x-hub-signature-256": f"sha256={digest}"}

    def fake() -> Fake:
        return _graph_fake(FakeGraph(access_tokens={"tok"}, app_secret=secret, auto_status=False))

    return Case(channel, signed, (SAMPLES / "whatsapp" / "message__text.json").read_bytes(), fake)


def _meta(provider: str, sample: str) -> Callable[[], Case]:
    """Messenger and Instagram: a Page on the same fake, the customer known to it."""

    def case() -> Case:
        secret = "contract-secret"
        channel = Channel(
            id=uuid.uuid4(),
            workspace_id=uuid.uuid4(),
            provider=provider,
            name="c",
            config={"page_id": "1029384756", "instagram_account_id": "1029384756"},
            access_token="tok",
            app_secret=secret,
            verify_token="vt",
            send_rate_per_second=300,
        )

        def signed(body: bytes) -> dict[str, str]:
            digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            return {"x-hub-signature-256": f"sha256={digest}"}

        def fake() -> Fake:
            graph = FakeGraph(access_tokens={"tok"}, app_secret=secret, auto_status=False)
            page = graph.connect_page("1029384756", "http://platform.test/hook", provider)
            page.customers["15550001234"] = "Ada Lovelace"
            return _graph_fake(graph)

        return Case(channel, signed, (SAMPLES / sample).read_bytes(), fake)

    return case


def _telegram() -> Case:
    """A bot on the fake Bot API; its webhooks carry the secret token, not a signature."""
    channel = Channel(
        id=uuid.uuid4(),
        workspace_id=uuid.uuid4(),
        provider="telegram",
        name="c",
        config={"bot_id": "7000000001", "bot_username": "sandbox7000000001_bot"},
        access_token=TELEGRAM_TOKEN,
        verify_token="contract-secret-token",
        send_rate_per_second=30,
    )

    def signed(body: bytes) -> dict[str, str]:
        # The secret token is the same for any body: "another body" is signed too, so a
        # forged one is told apart by a wrong token, which the verify test below sends.
        return {"x-telegram-bot-api-secret-token": "contract-secret-token"}

    def fake() -> Fake:
        bots = FakeBotApi()
        return Fake(
            create_telegram_app(bots),
            lambda: bots.fail_next(429, "Too Many Requests: retry after 3", retry_after=3),
            lambda: bots.fail_next(400, "Bad Request: chat not found"),
            "400",
        )

    return Case(channel, signed, (SAMPLES / "telegram" / "message_text.json").read_bytes(), fake)


CASES: dict[str, Callable[[], Case]] = {
    "whatsapp": _whatsapp,
    "telegram": _telegram,
    "messenger": _meta("messenger", "messenger/message_reply_to.json"),
    "instagram": _meta("instagram", "instagram/message_text_doc_shape.json"),
}


def _settings(tmp_path: Path) -> Settings:
    return base_settings(
        tmp_path,
        whatsapp_api_base_url="http://graph.test",
        messenger_api_base_url="http://graph.test",
    )


def test_every_registered_adapter_has_a_contract_case() -> None:
    assert set(ADAPTERS) == set(CASES)
    assert set(ADAPTERS) <= set(PROVIDERS)


@pytest.mark.parametrize("provider", sorted(ADAPTERS))
def test_verify_accepts_signed_and_rejects_the_rest(provider: str, tmp_path: Path) -> None:
    case = CASES[provider]()
    adapter = adapter_for(case.channel, _settings(tmp_path), httpx.AsyncClient())
    adapter.verify(case.signed(case.sample), case.sample)
    forged = {key: f"{value}0" for key, value in case.signed(case.sample).items()}
    for headers in ({}, forged):
        with pytest.raises(WebhookRejected):
            adapter.verify(headers, case.sample)
    if case.channel.provider != "telegram":  # signed bodies: a signature fits one body only
        with pytest.raises(WebhookRejected):
            adapter.verify(case.signed(b"another body"), case.sample)


@pytest.mark.parametrize("provider", sorted(ADAPTERS))
def test_parse_yields_normalized_events(provider: str, tmp_path: Path) -> None:
    case = CASES[provider]()
    adapter = adapter_for(case.channel, _settings(tmp_path), httpx.AsyncClient())
    events = adapter.parse(case.sample)
    assert events
    assert all(isinstance(event, InboundMessage) for event in events)
    assert events[0].content.type == MessageType.TEXT
    with pytest.raises(MalformedPayload):
        adapter.parse(b"\x00 not a payload")


@pytest.mark.parametrize("provider", sorted(ADAPTERS))
async def test_send_returns_the_provider_id_and_classifies_errors(
    provider: str, tmp_path: Path
) -> None:
    case = CASES[provider]()
    fake = case.fake()
    # Sends leave through the message path's own client (kit.provider_http): a real server.
    async with serving(fake.app, lifespan="on") as port, httpx.AsyncClient() as http:
        base = f"http://127.0.0.1:{port}"
        settings = base_settings(
            tmp_path,
            whatsapp_api_base_url=base,
            messenger_api_base_url=base,
            telegram_api_base_url=base,
        )
        adapter = adapter_for(case.channel, settings, http)
        message = OutboundMessage(
            recipient_id="15550001234",
            idempotency_key="k",
            content=Content(type=MessageType.TEXT, text="hello"),
        )
        result = await adapter.send(message)
        assert result.provider_message_id
        fake.throttle()
        with pytest.raises(ProviderSendError) as throttled:
            await adapter.send(message)
        assert throttled.value.retryable is True
        fake.refuse()
        with pytest.raises(ProviderSendError) as undeliverable:
            await adapter.send(message)
        assert (undeliverable.value.retryable, undeliverable.value.code) == (
            False,
            fake.refused_code,
        )
        await provider_http.close()


def test_providers_without_an_adapter_are_not_available(tmp_path: Path) -> None:
    for provider in sorted(set(PROVIDERS) - set(ADAPTERS)):
        channel = Channel(provider=provider, name="x", config={})
        with pytest.raises(NotAvailable) as refused:
            adapter_for(channel, _settings(tmp_path), httpx.AsyncClient())
        assert refused.value.code == "channel_not_available"


def test_error_classification_table() -> None:
    from botplatform.channels.whatsapp.errors import classify

    def kind(status: int, code: int | None) -> bool:
        body = {"error": {"code": code, "message": "m"}} if code is not None else {}
        return classify(status, body).retryable

    for code in (4, 80007, 130429, 131048, 131056, 131000):
        assert kind(400, code) is True, code
    for code in (131026, 131047, 132001, 100):
        assert kind(400, code) is False, code
    assert kind(503, None) is True and kind(429, None) is True and kind(404, None) is False
    assert json.dumps(
        classify(
            400,
            {
                "error": {
                    "code": 132001,
                    "message": "no such template",
                    "error_data": {"details": "hello_world"},
                }
            },
        ).title
    )


def test_messenger_error_classification_table() -> None:
    from botplatform.channels.messenger.errors import classify

    def sent(status: int, code: int | None, subcode: int | None = None) -> ProviderSendError:
        error: dict[str, Any] = {"code": code, "message": "m"} if code is not None else {}
        if subcode is not None:
            error["error_subcode"] = subcode
        return classify(status, {"error": error} if error else {})

    for code in (4, 17, 32, 613, 1200, 2):
        assert sent(400, code).retryable is True, code
    for code in (551, 100, 190, 200, 2022):
        assert sent(400, code).retryable is False, code
    outside = sent(400, 10, 2018278)
    assert (outside.retryable, outside.code) == (False, "2018278")
    assert sent(503, None).retryable is True and sent(429, None).retryable is True
    assert sent(404, None).retryable is False
