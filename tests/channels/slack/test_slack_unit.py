"""Slack's adapter without a server: the shared real payloads and signature vectors (loaded
from the provider samples, never copied), the normalizations of parse.py, the Web API bodies
of outbound.py and the error classification."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from botplatform.channels.base import MalformedPayload, WebhookRejected
from botplatform.channels.messages import (
    Button,
    Content,
    InboundMessage,
    ListRow,
    ListSection,
    Media,
    MessageDeleted,
    MessageEdited,
    MessageType,
    OutboundMessage,
    Reaction,
)
from botplatform.channels.slack import outbound
from botplatform.channels.slack.adapter import sign, verify_signature
from botplatform.channels.slack.errors import classify
from botplatform.channels.slack.parse import App, challenge, event_id, parse
from tests.conftest import PROVIDER_SAMPLES

SLACK = PROVIDER_SAMPLES / "slack"
VECTOR = json.loads((PROVIDER_SAMPLES / "signatures" / "slack_v0_official.json").read_text())
APP = App(bot_user_id="UBOT", bot_id="BBOT", team_id="T123ABC456")


def _callback(event: dict[str, Any], team: str = "T123ABC456") -> bytes:
    envelope = {"type": "event_callback", "team_id": team, "event_id": "Ev1", "event": event}
    return json.dumps(envelope).encode()


# -- the shared samples and vectors ----------------------------------------------------------


def test_official_signature_vector_verifies_at_its_time() -> None:
    body = VECTOR["raw_body"].encode()
    now = int(VECTOR["headers"]["X-Slack-Request-Timestamp"])
    verify_signature(VECTOR["headers"], body, VECTOR["signing_secret"], now)
    assert (
        sign(body, VECTOR["signing_secret"], now)["X-Slack-Signature"]
        == (VECTOR["expected_signature"])
    )


@pytest.mark.parametrize("drift", [VECTOR["replay_window_seconds"] + 1, -301, 10**6])
def test_a_replay_outside_five_minutes_is_refused_even_when_signed(drift: int) -> None:
    now = int(VECTOR["headers"]["X-Slack-Request-Timestamp"]) + drift
    with pytest.raises(WebhookRejected):
        verify_signature(
            VECTOR["headers"], VECTOR["raw_body"].encode(), VECTOR["signing_secret"], now
        )


def test_tampered_body_wrong_secret_and_missing_headers_are_refused() -> None:
    now = int(VECTOR["headers"]["X-Slack-Request-Timestamp"])
    body = VECTOR["raw_body"].encode()
    for headers, raw, secret in [
        (VECTOR["headers"], body + b"&x=1", VECTOR["signing_secret"]),
        (VECTOR["headers"], body, "another-secret"),
        ({}, body, VECTOR["signing_secret"]),
        ({**VECTOR["headers"], "X-Slack-Signature": "v1=abc"}, body, VECTOR["signing_secret"]),
        (VECTOR["headers"], body, None),
    ]:
        with pytest.raises(WebhookRejected):
            verify_signature(headers, raw, secret, now)


def test_url_verification_sample_is_answered_with_its_challenge() -> None:
    body = (SLACK / "url_verification.json").read_bytes()
    expected = (SLACK / "url_verification.expected_response.txt").read_text()
    found = challenge(body)
    assert found == json.loads(body)["challenge"]
    assert f"text/plain -> {found}" in expected
    assert parse(body) == []  # answered at the door; nothing to process


def test_channel_message_sample_parses_to_a_message() -> None:
    body = (SLACK / "event_callback_message_channels.json").read_bytes()
    [message] = parse(body)
    assert isinstance(message, InboundMessage)
    assert message.provider_message_id == "C123ABC456:1355517523.000005"
    assert message.sender_id == "U123ABC456"
    assert message.content.type == MessageType.TEXT
    assert message.content.text == "Live long and prospect."
    assert message.timestamp.timestamp() == pytest.approx(1355517523.000005)
    assert message.reply_to is None
    assert event_id(body) == "T123ABC456:Ev123ABC456"
    # Once the app knows its bot user, channel chatter that does not address it is left out.
    assert parse(body, APP) == []


# -- normalizations --------------------------------------------------------------------------


def test_dm_mention_and_thread_reply_are_messages_bots_and_our_own_are_not() -> None:
    dm = {"type": "message", "channel": "D1", "channel_type": "im", "user": "U1", "text": "hi",
          "ts": "1700000000.000100"}  # fmt: skip
    assert len(parse(_callback(dm), APP)) == 1
    mention = {"type": "app_mention", "channel": "C1", "user": "U1", "text": "<@UBOT> help",
               "ts": "1700000000.000200"}  # fmt: skip
    [mentioned] = parse(_callback(mention), APP)
    assert mentioned.provider_message_id == "C1:1700000000.000200"
    root = "1700000000.000200"
    reply = {"type": "message", "channel": "C1", "channel_type": "channel", "user": "U1",
             "text": "more", "ts": "1700000000.000300", "thread_ts": root}  # fmt: skip
    [threaded] = parse(_callback(reply), APP)
    assert isinstance(threaded, InboundMessage)
    assert threaded.reply_to == "C1:1700000000.000200"  # the thread's root
    # A thread is a conversation, keyed by its root: a channel mention starts one (we answer
    # in its thread), a reply is in its root's; a DM's top level is the DM's own (None), a
    # thread in the DM is a conversation of its own again.
    assert mentioned.thread == threaded.thread == "C1:1700000000.000200"
    [direct] = parse(_callback(dm), APP)
    assert isinstance(direct, InboundMessage) and direct.thread is None
    [dm_thread] = parse(_callback({**dm, "ts": "1700000000.000900", "thread_ts": dm["ts"]}), APP)
    assert isinstance(dm_thread, InboundMessage)
    assert dm_thread.thread == "D1:1700000000.000100"
    ignored_ones = [{**dm, "bot_id": "B9"}, {**dm, "user": "UBOT"},
                    {**dm, "subtype": "bot_message"},
                    {**dm, "subtype": "channel_join"}]  # fmt: skip
    for ignored in ignored_ones:
        assert parse(_callback(ignored), APP) == []
    assert parse(_callback(dm, team="TOTHER"), APP) == []  # another workspace's install


def test_files_edits_deletes_and_reactions() -> None:
    shared = {"type": "message", "subtype": "file_share", "channel": "D1", "channel_type": "im",
              "user": "U1", "text": "the invoice", "ts": "1700000000.000400",
              "files": [{"id": "F1", "name": "a.pdf", "mimetype": "application/pdf",
                         "url_private_download": "https://files.test/F1/a.pdf"}]}  # fmt: skip
    [file_message] = parse(_callback(shared), APP)
    assert isinstance(file_message, InboundMessage)
    assert file_message.content.type == MessageType.DOCUMENT
    assert file_message.content.media == Media(
        provider_media_id="F1", url="https://files.test/F1/a.pdf",
        mime_type="application/pdf", caption="the invoice", filename="a.pdf",
    )  # fmt: skip
    edit = {"type": "message", "subtype": "message_changed", "channel": "D1",
            "event_ts": "1700000001.000000",
            "message": {"user": "U1", "text": "fixed", "ts": "1700000000.000400"}}  # fmt: skip
    [edited] = parse(_callback(edit), APP)
    assert isinstance(edited, MessageEdited)
    assert (edited.provider_message_id, edited.content.text) == ("D1:1700000000.000400", "fixed")
    delete = {"type": "message", "subtype": "message_deleted", "channel": "D1",
              "deleted_ts": "1700000000.000400", "event_ts": "1700000002.000000",
              "previous_message": {"user": "U1"}}  # fmt: skip
    [deleted] = parse(_callback(delete), APP)
    assert isinstance(deleted, MessageDeleted)
    assert deleted.provider_message_id == "D1:1700000000.000400"
    reaction = {"type": "reaction_added", "user": "U1", "reaction": "thumbsup",
                "item": {"type": "message", "channel": "D1", "ts": "1700000000.000400"},
                "event_ts": "1700000003.000000"}  # fmt: skip
    [reacted] = parse(_callback(reaction), APP)
    assert isinstance(reacted, InboundMessage)
    assert reacted.content.reaction == Reaction("D1:1700000000.000400", "👍")
    [removed] = parse(_callback({**reaction, "type": "reaction_removed"}), APP)
    assert isinstance(removed, InboundMessage) and removed.content.reaction
    assert removed.content.reaction.emoji == ""


def test_block_actions_become_button_and_list_replies() -> None:
    payload = {
        "type": "block_actions",
        "user": {"id": "U1", "name": "ada"},
        "team": {"id": "T123ABC456"},
        "container": {"type": "message", "channel_id": "D1", "message_ts": "1700000000.000500"},
        "actions": [
            {"type": "button", "action_id": "button:0", "value": "yes",
             "text": {"type": "plain_text", "text": "Yes"}, "action_ts": "1700000004.1"},
            {"type": "static_select", "action_id": "list", "action_ts": "1700000004.2",
             "selected_option": {"value": "row-2", "text": {"type": "plain_text", "text": "Two"}}},
        ],
    }  # fmt: skip
    body = urlencode({"payload": json.dumps(payload)}).encode()
    button, row = parse(body, APP)
    assert isinstance(button, InboundMessage) and isinstance(row, InboundMessage)
    assert button.content.reply and row.content.reply
    assert (button.content.reply.kind, button.content.reply.id) == ("button_reply", "yes")
    assert (row.content.reply.kind, row.content.reply.id) == ("list_reply", "row-2")
    assert button.reply_to == "D1:1700000000.000500"
    assert button.thread is None  # an offer at the DM's top level: the DM's conversation
    payload["container"] = {**payload["container"], "channel_id": "C1",
                            "thread_ts": "1700000000.000100"}  # fmt: skip
    threaded, _ = parse(urlencode({"payload": json.dumps(payload)}).encode(), APP)
    assert isinstance(threaded, InboundMessage)
    assert threaded.thread == "C1:1700000000.000100"  # the offer's thread
    with pytest.raises(MalformedPayload):
        parse(b"payload=not-json", APP)


def test_malformed_bodies_are_refused() -> None:
    for body in (b"[]", b'{"type": "nope"}', b'{"type": "event_callback"}', b"\x00"):
        with pytest.raises(MalformedPayload):
            parse(body, APP)


# -- outbound --------------------------------------------------------------------------------


def _out(**fields: Any) -> OutboundMessage:
    fields.setdefault("content", Content(type=MessageType.TEXT, text="a & <b> <!channel>"))
    return OutboundMessage(recipient_id="U1", idempotency_key="k", **fields)


def test_text_is_escaped_for_mrkdwn_and_threads_follow_reply_to() -> None:
    body = outbound.post_body(_out(reply_to="C1:1700000000.000200"), "U1")
    assert body["text"] == "a &amp; &lt;b&gt; &lt;!channel&gt;"
    assert body["thread_ts"] == "1700000000.000200"
    assert body["channel"] == "C1"  # the replied message's Slack channel


def test_buttons_and_lists_become_block_kit() -> None:
    content = Content(type=MessageType.INTERACTIVE, text="Pick")
    buttons = outbound.post_body(
        _out(content=content, buttons=(Button("y", "Yes"), Button("n", "No"))), "U1"
    )
    section, actions = buttons["blocks"]
    assert section["text"] == {"type": "mrkdwn", "text": "Pick"}
    assert [(e["type"], e["value"], e["text"]["text"]) for e in actions["elements"]] == [
        ("button", "y", "Yes"), ("button", "n", "No")]  # fmt: skip
    rows = (ListSection("S", (ListRow("r1", "One", "first"),)),)
    listed = outbound.post_body(_out(content=content, sections=rows, list_button="See"), "U1")
    select = listed["blocks"][1]["elements"][0]
    assert select["type"] == "static_select"
    assert select["options"][0]["value"] == "r1"


def test_reactions_use_slack_names() -> None:
    message = _out(content=Content(type=MessageType.REACTION, reaction=Reaction("C1:1.2", "👍")))
    assert outbound.reaction_body(message) == {"channel": "C1", "timestamp": "1.2", "name": "+1"}
    assert outbound.emoji_name(":tada:") == "tada"
    with pytest.raises(ValueError, match="emoji names"):
        outbound.emoji_name("🦄")


def test_429_carries_retry_after_and_errors_are_classified() -> None:
    throttled = classify(429, {"ok": False, "error": "ratelimited"}, {"retry-after": "7"})
    assert (throttled.retryable, throttled.retry_after) == (True, 7.0)
    assert classify(200, {"ok": False, "error": "internal_error"}).retryable is True
    assert classify(503, {}).retryable is True
    for code in ("channel_not_found", "invalid_auth", "not_in_channel", "invalid_blocks"):
        refused = classify(200, {"ok": False, "error": code})
        assert (refused.retryable, refused.code) == (False, code)


def test_signed_now_verifies() -> None:
    body = b'{"type":"event_callback"}'
    verify_signature(sign(body, "s", int(time.time())), body, "s", time.time())


def test_the_shipped_manifest_asks_for_the_scopes_we_use() -> None:
    import yaml

    from botplatform.channels.slack.adapter import BOT_SCOPES

    manifest = yaml.safe_load(
        (Path(__file__).parents[3] / "deploy" / "slack" / "manifest.yml").read_text()
    )
    assert sorted(manifest["oauth_config"]["scopes"]["bot"]) == sorted(BOT_SCOPES)
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert {"app_mention", "message.im", "reaction_added", "reaction_removed"} <= events
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
