"""One contract for every registered channel adapter: verify, parse and send behave the same
way behind the port, whatever the provider. Adding an adapter to the registry adds it here;
a provider without a fixture below fails this test rather than slipping through."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from botplatform.channels.base import (
    ChannelAdapter,
    MalformedPayload,
    ProviderSendError,
    WebhookRejected,
)
from botplatform.channels.messages import Content, InboundMessage, MessageType, OutboundMessage
from botplatform.channels.registry import ADAPTERS, PROVIDERS, adapter_for
from botplatform.channels.slack.adapter import sign as slack_sign
from botplatform.channels.webchat.hub import hub_for
from botplatform.config import Settings
from botplatform.kit import provider_http
from botplatform.kit.errors import NotAvailable
from botplatform.models import Channel
from botplatform.sandbox import FakeGraph
from botplatform.sandbox import create_app as create_graph_app
from botplatform.sandbox import slack as slack_fake
from botplatform.sandbox.telegram import DEFAULT_TOKEN as TELEGRAM_TOKEN
from botplatform.sandbox.telegram import FakeBotApi
from botplatform.sandbox.telegram import create_app as create_telegram_app
from tests.conftest import PROVIDER_SAMPLES, base_settings
from tests.serving import serving

SAMPLES = PROVIDER_SAMPLES


@dataclass
class Case:
    channel: Channel
    #: None: the provider webhook route is closed to this channel (the website widget's
    #: visitors come in through /widget/, which checks their token instead).
    signed: Callable[[bytes], dict[str, str]] | None
    sample: bytes
    #: None: the platform is both ends; `delivered` checks a send reached its recipient.
    fake: Callable[[], Any] | None
    delivered: Callable[[ChannelAdapter, OutboundMessage], Awaitable[None]] | None = None
    # The provider's fake as an app; how it is made to throttle, then to refuse for good
    # (and the code that refusal is classified under).
    app: Callable[[Any], Any] = create_graph_app
    throttle: Callable[[Any], None] = lambda fake: fake.fail_next(429, 130429)
    refuse: Callable[[Any], None] = lambda fake: fake.fail_next(400, 131026)
    refused_code: str = "131026"
    recipient: str = "15550001234"


def _slack() -> Case:
    secret = "contract-signing-secret"
    channel = Channel(
        id=uuid.uuid4(),
        workspace_id=uuid.uuid4(),
        provider="slack",
        name="c",
        config={"team_id": slack_fake.TEAM_ID, "bot_user_id": slack_fake.BOT_USER_ID},
        access_token="xoxb-tok",
        app_secret=secret,
        verify_token="vt",
        send_rate_per_second=20,
    )
    sample = (SAMPLES / "slack" / "event_callback_message_channels.json").read_bytes()
    sample = sample.replace(b"Live long", b"<@" + slack_fake.BOT_USER_ID.encode() + b"> Live long")
    sample = sample.replace(b"T123ABC456", slack_fake.TEAM_ID.encode())
    return Case(
        channel,
        lambda body: slack_sign(body, secret, int(time.time())),
        sample,
        lambda: slack_fake.FakeSlack(tokens={"xoxb-tok"}, signing_secret=secret),
        app=slack_fake.create_app,
        throttle=lambda fake: fake.fail_next(429, "ratelimited", 3),
        refuse=lambda fake: fake.fail_next(200, "channel_not_found"),
        refused_code="channel_not_found",
        recipient="U0CUSTOMER",
    )


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

    def fake() -> FakeGraph:
        return FakeGraph(access_tokens={"tok"}, app_secret=secret, auto_status=False)

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

        def fake() -> FakeGraph:
            graph = FakeGraph(access_tokens={"tok"}, app_secret=secret, auto_status=False)
            page = graph.connect_page("1029384756", "http://platform.test/hook", provider)
            page.customers["15550001234"] = "Ada Lovelace"
            return graph

        return Case(channel, signed, (SAMPLES / sample).read_bytes(), fake)

    return case


async def _pushed_to_the_visitor(adapter: ChannelAdapter, message: OutboundMessage) -> None:
    """A widget reply reaches the visitor's open socket (the in-process hub when embedded);
    a template, which the widget cannot show, is a final error."""
    webchat: Any = adapter  # its channel and settings are not on the port
    hub = hub_for(webchat.settings.redis_url)
    channel_id = str(webchat.channel.id)
    async with hub.subscribe(channel_id, message.recipient_id) as feed:
        result = await adapter.send(message)
        pushed = await feed.wait(5)
    assert pushed is not None
    assert pushed["type"] == "message" and pushed["message"]["text"] == "hello"
    assert result.provider_message_id == pushed["message"]["pid"]
    template = Content(type=MessageType.TEMPLATE)
    with pytest.raises(ProviderSendError) as refused:
        await adapter.send(
            OutboundMessage(recipient_id="v:1", idempotency_key="t", content=template)
        )
    assert refused.value.retryable is False


def _webchat() -> Case:
    channel = Channel(
        id=uuid.uuid4(),
        workspace_id=uuid.uuid4(),
        provider="webchat",
        name="c",
        config={"allowed_origins": ["https://shop.example.com"]},
        app_secret="identity-secret",
        send_rate_per_second=1000,
    )
    sample = json.dumps(
        {"kind": "message", "visitor": "v:1", "client_id": "c1", "text": "hi",
         "at": "2026-01-01T00:00:00+00:00"}
    ).encode()  # fmt: skip
    return Case(channel, None, sample, None, _pushed_to_the_visitor)


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

    return Case(
        channel,
        signed,
        (SAMPLES / "telegram" / "message_text.json").read_bytes(),
        FakeBotApi,
        app=create_telegram_app,
        throttle=lambda bots: bots.fail_next(
            429, "Too Many Requests: retry after 3", retry_after=3
        ),
        refuse=lambda bots: bots.fail_next(400, "Bad Request: chat not found"),
        refused_code="400",
    )


CASES: dict[str, Callable[[], Case]] = {
    "whatsapp": _whatsapp,
    "telegram": _telegram,
    "messenger": _meta("messenger", "messenger/message_reply_to.json"),
    "instagram": _meta("instagram", "instagram/message_text_doc_shape.json"),
    "webchat": _webchat,
    "slack": _slack,
}


def _settings(tmp_path: Path) -> Settings:
    return base_settings(
        tmp_path,
        whatsapp_api_base_url="http://graph.test",
        messenger_api_base_url="http://graph.test",
        slack_api_base_url="http://slack.test/api",
    )


def test_every_registered_adapter_has_a_contract_case() -> None:
    assert set(ADAPTERS) == set(CASES)
    assert set(ADAPTERS) <= set(PROVIDERS)


@pytest.mark.parametrize("provider", sorted(ADAPTERS))
def test_verify_accepts_signed_and_rejects_the_rest(provider: str, tmp_path: Path) -> None:
    case = CASES[provider]()
    adapter = adapter_for(case.channel, _settings(tmp_path), httpx.AsyncClient())
    if case.signed is None:  # closed to webhooks: nothing gets through, signed or not
        for headers in ({}, {"x-hub-signature-256": "sha256=00"}):
            with pytest.raises(WebhookRejected):
                adapter.verify(headers, case.sample)
        return
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
    message = OutboundMessage(
        recipient_id="15550001234",
        idempotency_key="k",
        content=Content(type=MessageType.TEXT, text="hello"),
    )
    if case.fake is None:
        assert case.delivered is not None
        async with httpx.AsyncClient() as http:
            await case.delivered(adapter_for(case.channel, _settings(tmp_path), http), message)
        return
    fake = case.fake()
    # Sends leave through the message path's own client (kit.provider_http): a real server.
    async with serving(case.app(fake), lifespan="on") as port, httpx.AsyncClient() as http:
        base = f"http://127.0.0.1:{port}"
        settings = base_settings(
            tmp_path,
            whatsapp_api_base_url=base,
            messenger_api_base_url=base,
            slack_api_base_url=f"{base}/api",
            telegram_api_base_url=base,
        )
        adapter = adapter_for(case.channel, settings, http)
        message = OutboundMessage(
            recipient_id=case.recipient,
            idempotency_key="k",
            content=Content(type=MessageType.TEXT, text="hello"),
        )
        result = await adapter.send(message)
        assert result.provider_message_id
        case.throttle(fake)
        with pytest.raises(ProviderSendError) as throttled:
            await adapter.send(message)
        assert throttled.value.retryable is True
        case.refuse(fake)
        with pytest.raises(ProviderSendError) as undeliverable:
            await adapter.send(message)
        assert (undeliverable.value.retryable, undeliverable.value.code) == (
            False,
            case.refused_code,
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
