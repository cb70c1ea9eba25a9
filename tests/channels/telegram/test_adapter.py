"""The Telegram adapter's pure parts: the secret token check, error classification, the
request each kind of message becomes, and bot tokens kept out of the logs."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import httpx
import pytest

from botplatform.channels.base import RECIPIENT_BLOCKED, WebhookRejected
from botplatform.channels.messages import (
    Button,
    Content,
    ListRow,
    ListSection,
    MessageType,
    OutboundMessage,
    Reaction,
)
from botplatform.channels.telegram.adapter import RedactBotTokens, TelegramAdapter
from botplatform.channels.telegram.errors import classify
from botplatform.channels.telegram.outbound import call_for
from botplatform.models import Channel
from tests.conftest import base_settings


def _adapter(tmp_path: Path) -> TelegramAdapter:
    channel = Channel(
        id=uuid.uuid4(),
        workspace_id=uuid.uuid4(),
        provider="telegram",
        name="bot",
        config={"bot_id": "7000000001", "bot_username": "acme_bot"},
        access_token="7000000001:secret",
        verify_token="the-secret-token",
        send_rate_per_second=30,
    )
    return TelegramAdapter(channel, base_settings(tmp_path), httpx.AsyncClient())


def _out(**fields: object) -> OutboundMessage:
    content = fields.pop("content", Content(MessageType.TEXT, text="hi"))
    return OutboundMessage(recipient_id="42", idempotency_key="k", content=content, **fields)  # type: ignore[arg-type]


def test_secret_token_header(tmp_path: Path) -> None:
    adapter = _adapter(tmp_path)
    adapter.verify({"x-telegram-bot-api-secret-token": "the-secret-token"}, b"{}")
    for headers in ({}, {"x-telegram-bot-api-secret-token": "the-secret-tokeN"}):
        with pytest.raises(WebhookRejected):
            adapter.verify(headers, b"{}")
    assert adapter.handshake({"hub.challenge": "1"}) is None


def test_dedupe_key_is_the_update_id(tmp_path: Path) -> None:
    adapter = _adapter(tmp_path)
    one = adapter.dedupe_key(b'{"update_id": 5, "message": {}}')
    assert one == adapter.dedupe_key(b'{"message": {"x": 1}, "update_id": 5}')
    assert one != adapter.dedupe_key(b'{"update_id": 6}')
    assert adapter.dedupe_key(b"not json") is None


def test_errors_are_classified() -> None:
    throttled = classify(
        429,
        {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests",
            "parameters": {"retry_after": 7},
        },
    )
    assert (throttled.retryable, throttled.retry_after) == (True, 7.0)
    blocked = classify(
        403,
        {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"},
    )
    assert (blocked.retryable, blocked.code) == (False, RECIPIENT_BLOCKED)
    bad = classify(
        400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
    )
    assert (bad.retryable, bad.code, bad.title) == (False, "400", "Bad Request: chat not found")
    assert classify(502, None).retryable is True
    assert classify(401, {"ok": False, "error_code": 401}).retryable is False


def test_text_is_escaped_and_buttons_and_lists_are_inline_keyboards() -> None:
    call = call_for(
        _out(
            content=Content(MessageType.INTERACTIVE, text="a<b>&c"),
            header="H<1>",
            buttons=(Button("yes", "Yes"), Button("no", "No")),
        )
    )
    assert call is not None and call.method == "sendMessage"
    assert call.params["text"] == "<b>H&lt;1&gt;</b>\n\na&lt;b&gt;&amp;c"
    assert call.params["reply_markup"]["inline_keyboard"] == [
        [{"text": "Yes", "callback_data": "yes"}],
        [{"text": "No", "callback_data": "no"}],
    ]
    listed = call_for(
        _out(
            content=Content(MessageType.INTERACTIVE, text="Pick"),
            sections=(ListSection("S", (ListRow("r1", "One", "first"),)),),
        )
    )
    assert listed is not None
    assert listed.params["reply_markup"]["inline_keyboard"] == [
        [{"text": "One · first", "callback_data": "r1"}]
    ]
    with pytest.raises(ValueError, match="64 bytes"):
        call_for(
            _out(
                content=Content(MessageType.INTERACTIVE, text="x"),
                buttons=(Button("x" * 65, "Long"),),
            )
        )


def test_replies_edits_reactions_typing_and_places() -> None:
    reply = call_for(_out(reply_to="42:7"))
    assert reply is not None and reply.params["reply_parameters"]["message_id"] == 7
    edit = call_for(_out(edit_of="42:9", content=Content(MessageType.TEXT, text="new")))
    assert edit is not None and edit.method == "editMessageText"
    assert (edit.params["chat_id"], edit.params["message_id"]) == ("42", 9)
    react = call_for(_out(content=Content(MessageType.REACTION, reaction=Reaction("42:7", "👍"))))
    assert react is not None and react.method == "setMessageReaction"
    assert react.params["reaction"] == [{"type": "emoji", "emoji": "👍"}]
    unreact = call_for(_out(content=Content(MessageType.REACTION, reaction=Reaction("42:7", ""))))
    assert unreact is not None and unreact.params["reaction"] == []
    typing = call_for(_out(sender_action="typing_on"))
    assert typing is not None and typing.params == {"chat_id": "42", "action": "typing"}
    assert call_for(_out(sender_action="typing_off")) is None
    assert call_for(_out(mark_read="42:7")) is None
    venue = call_for(
        _out(
            content=Content(
                MessageType.LOCATION,
                location={"latitude": 1, "longitude": 2, "name": "Cafe", "address": "Main St"},
            )
        )
    )
    assert venue is not None and venue.method == "sendVenue"
    contact = call_for(
        _out(
            content=Content(
                MessageType.CONTACTS,
                contacts=[
                    {
                        "name": {"formatted_name": "Ada L", "first_name": "Ada"},
                        "phones": [{"phone": "+1555"}],
                    }
                ],
            )
        )
    )
    assert contact is not None and contact.params["phone_number"] == "+1555"
    with pytest.raises(ValueError, match="cannot send a template"):
        call_for(_out(content=Content(MessageType.TEMPLATE)))


def test_bot_tokens_never_reach_the_logs() -> None:
    record = logging.LogRecord(
        "httpx",
        logging.INFO,
        __file__,
        1,
        'HTTP Request: %s %s "%s"',
        ("POST", "https://api.telegram.org/bot7000000001:AAE-x_y/sendMessage", "200 OK"),
        None,
    )
    RedactBotTokens().filter(record)
    assert "AAE" not in record.getMessage()
    assert "/bot<token>/sendMessage" in record.getMessage()
    download = logging.LogRecord(
        "httpx", logging.INFO, __file__, 1, "GET https://x/file/bot1:abc/photos/1.jpg", None, None
    )
    RedactBotTokens().filter(download)
    assert download.getMessage() == "GET https://x/file/bot<token>/photos/1.jpg"
