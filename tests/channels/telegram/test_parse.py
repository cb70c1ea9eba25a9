"""Every real Telegram update in the shared samples parses to what it says, plus the kinds
the samples lack (photos, stickers, locations, contacts, groups, blocks, reactions)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from botplatform.channels.base import MalformedPayload
from botplatform.channels.messages import (
    InboundMessage,
    MessageEdited,
    MessageType,
    SystemEvent,
)
from botplatform.channels.telegram.parse import BotIdentity, parse
from tests.conftest import PROVIDER_SAMPLES

SAMPLES = PROVIDER_SAMPLES / "telegram"
BOT = BotIdentity(id=7000000001, username="acme_bot")


def _sample(name: str) -> dict[str, Any]:
    return dict(json.loads((SAMPLES / f"{name}.json").read_text()))


def _one(payload: dict[str, Any]) -> Any:
    events = parse(payload, BOT)
    assert len(events) == 1, events
    return events[0]


def test_every_sample_is_there_and_parses() -> None:
    files = sorted(SAMPLES.glob("*.json"))
    assert len(files) >= 13, "the shared provider samples are missing"
    for path in files:
        assert parse(json.loads(path.read_text()), BOT), path.name


@pytest.mark.parametrize("name", ["message_text", "message_text_minimal"])
def test_text(name: str) -> None:
    event = _one(_sample(name))
    assert isinstance(event, InboundMessage)
    assert event.provider_message_id == "1111111:1365"
    assert event.sender_id == "1111111"
    assert event.content.type == MessageType.TEXT and event.content.text == "/start"
    assert event.timestamp.timestamp() == 1441645532
    assert event.reply_to is None and event.forwarded is False


def test_text_with_entities_keeps_them() -> None:
    event = _one(_sample("message_entities"))
    assert event.content.text == "Bold and italics"
    assert event.sender_name == "Test Firstname Test Lastname"
    assert [e["type"] for e in event.raw["message"]["entities"]] == ["italic", "bold"]


def test_reply_names_the_message_answered_in_the_same_chat() -> None:
    event = _one(_sample("message_reply"))
    assert event.reply_to == "1111111:1334"


@pytest.mark.parametrize("name", ["message_forwarded", "message_forwarded_channel"])
def test_forwards(name: str) -> None:
    event = _one(_sample(name))
    assert event.forwarded is True and event.content.text == "/start"


def test_edited_message() -> None:
    event = _one(_sample("edited_message"))
    assert isinstance(event, MessageEdited)
    assert event.provider_message_id == "1111111:1365"
    assert event.content.text == "Edited text"
    assert event.timestamp.timestamp() == 1441646600  # the edit's time, not the message's


def test_audio_voice_and_document() -> None:
    audio = _one(_sample("message_audio")).content
    assert audio.type == MessageType.AUDIO and audio.media.voice is False
    assert audio.media.provider_media_id == "AwADBAADbXXXXXXXXXXXGBdhD2l6_XX"
    assert audio.media.mime_type == "audio/mpeg"
    voice = _one(_sample("message_voice")).content
    assert voice.type == MessageType.AUDIO and voice.media.voice is True
    document = _one(_sample("message_document")).content
    assert document.type == MessageType.DOCUMENT
    assert (document.media.filename, document.media.mime_type) == (
        "Testfile.pdf",
        "application/pdf",
    )


def test_inline_callback_is_a_button_reply() -> None:
    event = _one(_sample("callback_query_inline"))
    assert isinstance(event, InboundMessage)
    assert event.provider_message_id == "callback:4382bfdwdsb323b2d9"
    assert event.sender_id == "1111111"  # no message: the user who tapped
    assert event.content.type == MessageType.INTERACTIVE
    assert event.content.reply.kind == "button_reply"
    assert event.content.reply.id == "Data from button callback"


@pytest.mark.parametrize("name", ["inline_query", "chosen_inline_result"])
def test_inline_mode_updates_are_system_events(name: str) -> None:
    event = _one(_sample(name))
    assert isinstance(event, SystemEvent) and event.kind == name
    assert event.sender_id == "1111111"


def _message(**content: Any) -> dict[str, Any]:
    base = _sample("message_text")
    message = {k: v for k, v in base["message"].items() if k != "text"}
    return {"update_id": 7, "message": {**message, **content}}


def test_photo_keeps_the_largest_size() -> None:
    sizes = [
        {"file_id": "small", "width": 90, "height": 60, "file_size": 1000},
        {"file_id": "large", "width": 1280, "height": 853, "file_size": 90000},
        {"file_id": "medium", "width": 320, "height": 213, "file_size": 9000},
    ]
    content = _one(_message(photo=sizes, caption="look")).content
    assert content.type == MessageType.IMAGE
    assert content.media.provider_media_id == "large" and content.media.caption == "look"


def test_video_sticker_location_venue_contact() -> None:
    video = _one(_message(video={"file_id": "v1", "mime_type": "video/mp4"})).content
    assert video.type == MessageType.VIDEO and video.media.provider_media_id == "v1"
    sticker = _one(_message(sticker={"file_id": "s1", "emoji": "😀", "is_animated": False}))
    assert sticker.content.type == MessageType.STICKER
    assert sticker.content.media.provider_media_id == "s1"
    location = _one(_message(location={"latitude": 52.5, "longitude": 13.4})).content
    assert location.type == MessageType.LOCATION
    assert location.location == {"latitude": 52.5, "longitude": 13.4}
    venue = _one(
        _message(
            location={"latitude": 1.0, "longitude": 2.0},
            venue={
                "location": {"latitude": 1.0, "longitude": 2.0},
                "title": "Cafe",
                "address": "Main St 1",
            },
        )
    ).content
    assert venue.location["name"] == "Cafe" and venue.location["address"] == "Main St 1"
    card = _one(
        _message(contact={"phone_number": "+15550001", "first_name": "Ada", "user_id": 42})
    ).content
    assert card.type == MessageType.CONTACTS
    assert card.contacts[0]["phones"][0]["phone"] == "+15550001"
    assert card.contacts[0]["name"]["first_name"] == "Ada"


def _group(text: str, **extra: Any) -> dict[str, Any]:
    return {
        "update_id": 9,
        "message": {
            "message_id": 55,
            "date": 1441645532,
            "chat": {"id": -100123, "type": "supergroup", "title": "Support group"},
            "from": {"id": 1111111, "first_name": "Ada"},
            "text": text,
            **extra,
        },
    }


def test_group_messages_only_when_the_bot_is_addressed() -> None:
    assert parse(_group("just chatting"), BOT) == []
    mention = _group("hi @acme_bot", entities=[{"type": "mention", "offset": 3, "length": 9}])
    event = _one(mention)
    assert event.sender_id == "-100123" and event.sender_name == "Support group"
    assert event.provider_message_id == "-100123:55"
    command = _group(
        "/help@acme_bot", entities=[{"type": "bot_command", "offset": 0, "length": 14}]
    )
    assert len(parse(command, BOT)) == 1
    other = _group("/help@other_bot", entities=[{"type": "bot_command", "offset": 0, "length": 15}])
    assert parse(other, BOT) == []
    reply = _group(
        "yes",
        reply_to_message={
            "message_id": 54,
            "from": {"id": BOT.id},
            "date": 1,
            "chat": {"id": -100123},
        },
    )
    assert _one(reply).reply_to == "-100123:54"


def test_blocking_the_bot_opts_out_and_unblocking_opts_in() -> None:
    def member(status: str, chat_type: str = "private") -> dict[str, Any]:
        return {
            "update_id": 11,
            "my_chat_member": {
                "chat": {"id": 1111111, "type": chat_type},
                "from": {"id": 1111111, "first_name": "Ada"},
                "date": 1441645600,
                "old_chat_member": {"status": "member", "user": {"id": BOT.id}},
                "new_chat_member": {"status": status, "user": {"id": BOT.id}},
            },
        }

    blocked = _one(member("kicked"))
    assert isinstance(blocked, SystemEvent)
    assert (blocked.kind, blocked.sender_id) == ("opted_out", "1111111")
    assert _one(member("member")).kind == "opted_in"
    assert _one(member("left", "group")).kind == "my_chat_member"  # a group: no consent


def test_reaction() -> None:
    update = {
        "update_id": 12,
        "message_reaction": {
            "chat": {"id": 1111111, "type": "private"},
            "message_id": 77,
            "user": {"id": 1111111},
            "date": 1441645700,
            "old_reaction": [],
            "new_reaction": [{"type": "emoji", "emoji": "👍"}],
        },
    }
    event = _one(update)
    assert event.content.type == MessageType.REACTION
    assert (event.content.reaction.message_id, event.content.reaction.emoji) == ("1111111:77", "👍")


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"message": {}},
        {"update_id": 1, "message": {"chat": {"id": 1}, "date": 1}},
        {"update_id": 1, "message": {"message_id": 1, "chat": {"id": 1}}},
    ],
)
def test_broken_updates_are_malformed(payload: Any) -> None:
    with pytest.raises(MalformedPayload):
        parse(payload, BOT)


def test_samples_dir_is_the_shared_one() -> None:
    assert isinstance(SAMPLES, Path) and SAMPLES.is_dir()
