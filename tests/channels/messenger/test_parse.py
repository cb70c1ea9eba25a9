"""The Messenger/Instagram webhook parser against Meta's documented payloads (loaded from the
shared folder at run time): one expectation per sample file, every file covered."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from botplatform.channels.base import MalformedPayload
from botplatform.channels.messages import (
    DeliveryStatus,
    InboundEvent,
    InboundMessage,
    MessageDeleted,
    MessageEcho,
    MessageEdited,
    MessageType,
    SystemEvent,
    Watermark,
)
from botplatform.channels.messenger.parse import parse
from tests.conftest import PROVIDER_SAMPLES

FOLDERS = ("messenger", "instagram")
SAMPLE_FILES = sorted(p for folder in FOLDERS for p in (PROVIDER_SAMPLES / folder).glob("*.json"))


def at_ms(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def only(events: list[InboundEvent]) -> InboundEvent:
    assert len(events) == 1, events
    return events[0]


def _text_quick_reply(events: list[InboundEvent]) -> None:
    message = only(events)
    assert isinstance(message, InboundMessage)
    assert message.provider_message_id == "mid.1457764197618:41d102a3e1ae206a38"
    assert message.sender_id == "<PSID>"
    assert message.timestamp == at_ms(1458692752478)
    assert message.content.type == MessageType.INTERACTIVE
    assert message.content.reply is not None
    assert message.content.reply.id == "<DEVELOPER_DEFINED_PAYLOAD>"
    assert message.content.reply.title == "hello, world!"


def _image(events: list[InboundEvent]) -> None:
    message = only(events)
    assert isinstance(message, InboundMessage)
    assert message.content.type == MessageType.IMAGE
    assert message.content.media is not None and message.content.media.url == "<ATTACHMENT_URL>"


def _reply_to(events: list[InboundEvent]) -> None:
    message = only(events)
    assert isinstance(message, InboundMessage)
    assert message.content.text == "hello, world!"
    assert message.reply_to == "m_1fTq8oLumEyIp3Q2MR-aY7IfLZDamVrALniheU"


def _echo(page: str, customer: str, text: str) -> Callable[[list[InboundEvent]], None]:
    def check(events: list[InboundEvent]) -> None:
        echo = only(events)
        assert isinstance(echo, MessageEcho)
        assert echo.recipient_id == customer
        assert echo.content.type == MessageType.TEXT and echo.content.text == text
        assert echo.raw["sender"]["id"] == page

    return check


def _reaction(events: list[InboundEvent]) -> None:
    message = only(events)
    assert isinstance(message, InboundMessage)
    assert message.content.type == MessageType.REACTION
    assert message.content.reaction is not None
    assert message.content.reaction.message_id == "<MID_OF_ReactedTo_Message>"
    assert message.content.reaction.emoji == "\u2764\ufe0f"
    # No id of its own: one derived from what it carries, the same on a redelivery.
    assert (
        message.provider_message_id
        == only(parse(load("messenger/message_reaction.json"))).provider_message_id
    )  # type: ignore[union-attr]


def _watermark(
    status: DeliveryStatus, mids: tuple[str, ...]
) -> Callable[[list[InboundEvent]], None]:
    def check(events: list[InboundEvent]) -> None:
        mark = only(events)
        assert isinstance(mark, Watermark)
        assert mark.status == status and mark.recipient_id == "<PSID>"
        assert mark.watermark == at_ms(1458668856253)
        assert mark.provider_message_ids == mids

    return check


def _postback(payload: str, title: str, sender: str) -> Callable[[list[InboundEvent]], None]:
    def check(events: list[InboundEvent]) -> None:
        message = only(events)
        assert isinstance(message, InboundMessage)
        assert message.sender_id == sender
        assert message.content.type == MessageType.INTERACTIVE
        assert message.content.reply is not None
        assert (message.content.reply.kind, message.content.reply.id) == ("postback", payload)
        assert message.content.reply.title == title
        assert message.referral is not None and message.referral["type"] == "OPEN_THREAD"

    return check


def _referral(events: list[InboundEvent]) -> None:
    event = only(events)  # no message: kept in the conversation, the referral with it
    assert isinstance(event, InboundMessage) and event.content.type == MessageType.UNSUPPORTED
    assert event.sender_id == "<PSID>" and event.referral is not None
    assert event.referral["ref"] == "<REF_DATA_PASSED_IN_M.ME_PARAM>"
    assert event.raw["referral"] == event.referral


def _batch(events: list[InboundEvent]) -> None:
    kinds = [e.content.type for e in events if isinstance(e, InboundMessage)]
    assert kinds == [MessageType.INTERACTIVE, MessageType.TEXT, MessageType.IMAGE]


def _ig_text(events: list[InboundEvent]) -> None:
    message = only(events)
    assert isinstance(message, InboundMessage)
    assert message.sender_id == "<INSTAGRAM_SCOPED_USER_ID>"
    assert message.content.text == "<MESSAGE_TEXT>"
    assert message.timestamp == at_ms(1700000000000)


def _ig_share(events: list[InboundEvent]) -> None:
    message = only(events)
    assert isinstance(message, InboundMessage)
    assert message.content.type == MessageType.TEXT
    assert message.content.text is not None
    assert message.content.text.startswith("Shared a post\nBuild a workspace")
    assert "lookaside.fbsbx.com" in message.content.text


def _ig_comment(events: list[InboundEvent]) -> None:
    event = only(events)
    assert isinstance(event, SystemEvent) and event.kind == "comments"
    assert event.data["text"] == "<COMMENT_TEXT>"


EXPECTED: dict[str, Callable[[list[InboundEvent]], None]] = {
    "messenger/batched_multi_entry_SYNTHETIC.json": _batch,
    "messenger/delivery.json": _watermark(
        DeliveryStatus.DELIVERED, ("mid.1458668856218:ed81099e15d3f4f233",)
    ),
    "messenger/message_attachment_image.json": _image,
    "messenger/message_echo.json": _echo("<PAGE_ID>", "<PSID>", "hello, world!"),
    "messenger/message_reaction.json": _reaction,
    "messenger/message_reply_to.json": _reply_to,
    "messenger/message_text_quick_reply.json": _text_quick_reply,
    "messenger/postback_field_value_shape.json": _postback(
        "USER-DEFINED-PAYLOAD", "TITLE-FOR-THE-CTA", "USER-REF-ID"
    ),
    "messenger/postback_messaging_shape.json": _postback(
        "<USER_DEFINED_PAYLOAD>", "<TITLE_FOR_THE_CTA>", "<PSID>"
    ),
    "messenger/read.json": _watermark(DeliveryStatus.READ, ()),
    "messenger/referral_mme_link.json": _referral,
    "instagram/comment_changes_shape.json": _ig_comment,
    "instagram/message_echo_doc_shape.json": _echo(
        "<YOUR_APP_USERS_INSTAGRAM_ACCOUNT_ID>", "<INSTAGRAM_SCOPED_USER_ID>", "<MESSAGE_TEXT>"
    ),
    "instagram/message_share_attachment_legacy.json": _ig_share,
    "instagram/message_text_doc_shape.json": _ig_text,
}


def load(name: str) -> object:
    return json.loads((PROVIDER_SAMPLES / name).read_text(encoding="utf-8"))


def _name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def test_every_sample_has_an_expectation() -> None:
    assert len(SAMPLE_FILES) >= 15, "the shared provider samples are missing"
    assert {_name(p) for p in SAMPLE_FILES} == set(EXPECTED)


@pytest.mark.parametrize("sample", SAMPLE_FILES, ids=_name)
def test_sample(sample: Path) -> None:
    EXPECTED[_name(sample)](parse(load(_name(sample))))


def _item(**extra: object) -> dict[str, object]:
    item = {"sender": {"id": "123"}, "recipient": {"id": "999"}, "timestamp": 1700000000000}
    return {"object": "page", "entry": [{"id": "999", "messaging": [{**item, **extra}]}]}


def test_edit_unsend_unreact_and_unknown_items() -> None:
    edited = only(parse(_item(message_edit={"mid": "m_1", "text": "fixed", "num_edit": 1})))
    assert isinstance(edited, MessageEdited) and edited.content.text == "fixed"
    deleted = only(parse(_item(message={"mid": "m_2", "is_deleted": True})))
    assert isinstance(deleted, MessageDeleted) and deleted.provider_message_id == "m_2"
    unreact = only(parse(_item(reaction={"mid": "m_3", "action": "unreact"})))
    assert isinstance(unreact, InboundMessage) and unreact.content.reaction is not None
    assert unreact.content.reaction.emoji == ""
    story = only(
        parse(
            _item(
                message={
                    "mid": "m_4",
                    "attachments": [{"type": "story_mention", "payload": {"url": "https://x"}}],
                }
            )
        )
    )
    assert isinstance(story, InboundMessage) and "story" in (story.content.text or "")
    odd = only(
        parse(_item(message={"mid": "m_5", "attachments": [{"type": "fallback", "payload": {}}]}))
    )
    assert isinstance(odd, InboundMessage) and odd.content.type == MessageType.UNSUPPORTED
    optin = only(parse(_item(optin={"ref": "x"})))  # an unknown kind: kept as unsupported
    assert isinstance(optin, InboundMessage) and optin.content.type == MessageType.UNSUPPORTED
    assert optin.raw["optin"] == {"ref": "x"} and optin.sender_id == "123"
    assert optin.provider_message_id == only(parse(_item(optin={"ref": "x"}))).provider_message_id
    with_mid = only(parse(_item(new_kind={"mid": "m_6"})))
    assert isinstance(with_mid, InboundMessage) and with_mid.provider_message_id == "m_6"
    handover = only(parse(_item(pass_thread_control={"new_owner_app_id": "1"})))
    assert isinstance(handover, SystemEvent) and handover.kind == "pass_thread_control"


def test_items_without_a_time_stay_system_events() -> None:
    bare = {"sender": {"id": "123"}, "recipient": {"id": "999"}}
    for extra in ({"optin": {"ref": "x"}}, {"referral": {"ref": "r"}}):
        payload = {"object": "page", "entry": [{"id": "999", "messaging": [{**bare, **extra}]}]}
        event = only(parse(payload))
        assert isinstance(event, SystemEvent) and event.sender_id == "123"


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"object": "whatsapp_business_account", "entry": []},
        {"object": "page"},
        {"object": "page", "entry": [{"messaging": [{"recipient": {"id": "1"}}]}]},
        {
            "object": "page",
            "entry": [{"messaging": [{"sender": {"id": "1"}, "message": {"mid": "m"}}]}],
        },
        {
            "object": "page",
            "entry": [{"messaging": [{"sender": {"id": "1"}, "timestamp": 1, "message": {}}]}],
        },
    ],
)
def test_broken_envelopes_are_malformed(payload: object) -> None:
    with pytest.raises(MalformedPayload):
        parse(payload)
