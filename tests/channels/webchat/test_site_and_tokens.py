"""The widget's rules without a database: origins, visitor tokens, user_hash, parsing, hours."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from botplatform.business_hours.schemas import BusinessHours
from botplatform.business_hours.service import minutes_until_open
from botplatform.channels.base import MalformedPayload
from botplatform.channels.messages import InboundMessage, MessageType, StatusUpdate
from botplatform.channels.policy import window_open
from botplatform.channels.webchat.parse import parse
from botplatform.channels.webchat.site import (
    identity_valid,
    normalize_origin,
    origin_allowed,
    user_hash,
)
from botplatform.channels.webchat.tokens import VisitorTokenInvalid, VisitorTokens


def test_origins_match_exactly_or_by_subdomain_wildcard() -> None:
    allowed = (normalize_origin("https://Shop.example.com/"), normalize_origin("https://*.acme.io"))
    assert origin_allowed("https://shop.example.com", allowed)
    assert origin_allowed("https://eu.acme.io", allowed)
    assert not origin_allowed("https://acme.io", allowed)
    assert not origin_allowed("http://shop.example.com", allowed)
    assert not origin_allowed("https://shop.example.com.evil.net", allowed)
    assert not origin_allowed("https://evilacme.io", allowed)
    assert not origin_allowed(None, allowed)
    for bad in ("shop.example.com", "https://a.com/path", "https://u@a.com", "https://a.*.com"):
        with pytest.raises(ValueError, match=r"origin|wildcard"):
            normalize_origin(bad)


def test_tokens_are_bound_to_their_channel_and_signature() -> None:
    tokens = VisitorTokens("secret-key", 3600)
    channel = uuid.uuid4()
    token, _ = tokens.issue(channel, "v:abc")
    assert tokens.read(token, channel).external_id == "v:abc"
    with pytest.raises(VisitorTokenInvalid):
        tokens.read(token, uuid.uuid4())
    with pytest.raises(VisitorTokenInvalid):
        VisitorTokens("another-key", 3600).read(token, channel)
    expired, _ = VisitorTokens("secret-key", -10).issue(channel, "v:abc")
    with pytest.raises(VisitorTokenInvalid):
        tokens.read(expired, channel)


def test_user_hash_is_hmac_sha256_and_compared_safely() -> None:
    good = user_hash("s3cret", "user-42")
    assert len(good) == 64
    assert identity_valid("s3cret", "user-42", good.upper())
    assert not identity_valid("s3cret", "user-43", good)
    assert not identity_valid(None, "user-42", good)
    assert not identity_valid("s3cret", "user-42", "")


def _body(**fields: object) -> bytes:
    at = datetime(2026, 1, 1, tzinfo=UTC).isoformat()
    return json.dumps({"visitor": "v:1", "at": at, **fields}).encode()


def test_parse_messages_replies_and_read_receipts() -> None:
    [text] = parse(_body(kind="message", client_id="c1", text="<b>hi</b>"))
    assert isinstance(text, InboundMessage)
    assert text.provider_message_id == "v:1:c1" and text.content.text == "<b>hi</b>"
    [reply] = parse(_body(kind="message", client_id="c2", reply={"id": "sales", "title": "Sales"}))
    assert isinstance(reply, InboundMessage) and reply.content.type == MessageType.INTERACTIVE
    assert reply.content.reply is not None and reply.content.reply.id == "sales"
    reads = parse(_body(kind="read", ids=["wc:1", "not-ours"]))
    assert [r.provider_message_id for r in reads if isinstance(r, StatusUpdate)] == ["wc:1"]
    for bad in (_body(kind="message"), _body(kind="other"), b"[]", b"{"):
        with pytest.raises(MalformedPayload):
            parse(bad)


def test_minutes_until_the_workspace_opens() -> None:
    hours = BusinessHours.model_validate(
        {"timezone": "UTC", "days": {"mon": [{"start": "09:00", "end": "17:00"}]}}
    )
    monday_morning = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    assert minutes_until_open(hours, monday_morning) == 60
    assert minutes_until_open(hours, datetime(2026, 1, 5, 10, 0, tzinfo=UTC)) == 0
    assert (
        minutes_until_open(hours, datetime(2026, 1, 5, 18, 0, tzinfo=UTC)) == 6 * 24 * 60 + 15 * 60
    )
    assert minutes_until_open(BusinessHours(), monday_morning) is None


def test_no_24_hour_window_on_the_widget() -> None:
    assert window_open("webchat", None)
    assert not window_open("whatsapp", None)
