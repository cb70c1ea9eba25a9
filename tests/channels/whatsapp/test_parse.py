"""The WhatsApp webhook parser against real payloads (pywa's samples, loaded from the shared
folder at run time), plus batching, malformed envelopes and tolerance of broken messages."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from botplatform.channels.messages import (
    DeliveryStatus,
    InboundEvent,
    InboundMessage,
    MessageDeleted,
    MessageEdited,
    MessageType,
    StatusUpdate,
    SystemEvent,
)
from botplatform.channels.whatsapp.parse import MalformedPayload, parse
from tests.conftest import PROVIDER_SAMPLES

SAMPLES = PROVIDER_SAMPLES / "whatsapp"
SAMPLE_FILES = sorted(SAMPLES.glob("*.json"))

Expected = dict[str, Any]


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / name).read_text(encoding="utf-8"))
    return data


def at(seconds: int) -> datetime:
    # Computed from the epoch rather than with fromtimestamp, so the parser is not its own oracle.
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)


def message(seconds: int, content_type: MessageType, fields: Expected) -> Expected:
    """An inbound message from the samples' usual contact; `fields` adds or overrides."""
    return {
        "class": InboundMessage,
        "provider_message_id": "wamid.xyzxyz",
        "sender_id": "972987654321",
        "sender_name": "Test Name",
        "timestamp": at(seconds),
        "content.type": content_type,
        "reply_to": None,
        "forwarded": False,
        "frequently_forwarded": False,
        "referral": None,
        **fields,
    }


def status(seconds: int, state: DeliveryStatus, fields: Expected | None = None) -> Expected:
    return {
        "class": StatusUpdate,
        "provider_message_id": "wamid.xyzxyz",
        "recipient_id": "972987654321",
        "status": state,
        "timestamp": at(seconds),
        "errors": (),
        **(fields or {}),
    }


def system(kind: str, seconds: int, sender: str | None, fields: Expected) -> Expected:
    return {
        "class": SystemEvent,
        "kind": kind,
        "timestamp": at(seconds),
        "sender_id": sender,
        **fields,
    }


FORWARDED = {"forwarded": True}
BUTTON = {"content.reply.kind": "button_reply", "content.text": None}
QUICK = {"content.reply.kind": "quick_reply", "content.reply.id": "callback_data"}
LIST = {"content.reply.kind": "list_reply", "content.reply.id": "callback_data"}
STICKER = {"content.media.provider_media_id": "1234567890987654321",
           "content.media.mime_type": "image/webp"}  # fmt: skip
IMAGE = {
    "content.media.provider_media_id": "65463453",
    "content.media.mime_type": "image/jpeg",
    "content.media.sha256": "4654+8g=",
}
UNREACTION = {"content.reaction.message_id": "wamid.yzxyzx=", "content.reaction.emoji": ""}
PREFERENCES = {"sender_id": "16505551234", "data.category": "marketing_messages"}

EXPECTED: dict[str, Expected] = {
    "callback_button__button.json": message(1698266730, MessageType.INTERACTIVE, {
        **BUTTON, "content.reply.id": "callback_data", "content.reply.title": "title",
        "content.reply.description": None, "reply_to": "wamid.xyzxyz",
    }),
    "callback_button__quick_reply.json": message(1698269027, MessageType.INTERACTIVE, {
        **QUICK, "provider_message_id": "wamid.xsidjw", "content.reply.title": "title",
        "reply_to": "wamid.xyzxyz==",
    }),
    "callback_button__quick_reply_without_context.json": message(
        1698269027, MessageType.INTERACTIVE,
        {**QUICK, "provider_message_id": "wamid.xsidjx", "content.reply.title": "title"},
    ),
    "callback_selection__callback.json": message(1698266905, MessageType.INTERACTIVE, {
        **LIST, "provider_message_id": "wamid.zyzxyz", "content.reply.title": "title",
        "content.reply.description": None, "reply_to": "wamid.xyzxyz",
    }),
    "callback_selection__description.json": message(1698266905, MessageType.INTERACTIVE, {
        **LIST, "provider_message_id": "wamid.zyzxyz",
        "content.reply.description": "description", "reply_to": "wamid.xyzxyz",
    }),
    "deleted_message__revoke.json": {
        "class": MessageDeleted,
        "provider_message_id": "<ORIGINAL_WHATSAPP_MESSAGE_ID>",
        "sender_id": "<WHATSAPP_USER_PHONE_NUMBER>",
        "timestamp": at(1697043223),
    },
    "edited_message__image.json": {
        "class": MessageEdited,
        "provider_message_id": "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=",
        "sender_id": "16505551234",
        "timestamp": at(1749854575),
        "content.type": MessageType.IMAGE,
        "content.media.provider_media_id": "1234567890",
        "content.media.url": "https://media.example.com/updated-image.jpg",
        "content.media.mime_type": "image/jpeg",
        "content.media.caption": "Updated image caption",
    },
    "message__animated_sticker.json": message(1697043785, MessageType.STICKER, {
        **STICKER, "content.media.animated": True,
    }),
    "message__audio.json": message(1697043509, MessageType.AUDIO, {
        **FORWARDED, "content.media.provider_media_id": "1234567890987654321",
        "content.media.mime_type": "audio/ogg; codecs=opus", "content.media.voice": False,
    }),
    "message__chosen_location.json": message(1697044557, MessageType.LOCATION, {
        **FORWARDED, "content.location": {
            "latitude": 37.4611978, "longitude": -122.2164385, "name": "Facebook HQ",
            "address": "1 Hacker Way, Menlo Park, CA 94025",
            "url": "https://maps.google.com/?cid=2000000000000000000",
        },
    }),
    "message__contacts.json": message(1697044621, MessageType.CONTACTS, {
        "content.contacts.0.name.formatted_name": "Chandler Bing",
        "content.contacts.2.phones.0.phone": "+1 777-777-7777",
    }),
    "message__current_location.json": message(1697044557, MessageType.LOCATION, {
        **FORWARDED, "content.location": {"latitude": 12.25089, "longitude": 43.90539},
    }),
    "message__document.json": message(1697043666, MessageType.DOCUMENT, {
        **FORWARDED, "content.media.provider_media_id": "1234567890987654321",
        "content.media.mime_type": "application/pdf", "content.media.filename": "filename.pdf",
        "content.media.caption": "caption",
    }),
    "message__forwarded.json": message(1697044815, MessageType.TEXT, {
        **FORWARDED, "content.text": "forwarded text",
    }),
    "message__forwarded_many_times.json": message(1697044968, MessageType.TEXT, {
        "frequently_forwarded": True, "content.text": "text forwarded many times",
    }),
    "message__image.json": message(1697043379, MessageType.IMAGE, {
        **IMAGE, "content.media.url": None, "content.media.caption": None,
    }),
    "message__interactive_message_with_err.json": message(1700505494, MessageType.UNSUPPORTED, {
        "provider_message_id": "wamid.wegrchytvwcggt=", "reply_to": "wamid.gvwegfretge==",
        "content.reply": None,
    }),
    "message__media_with_url.json": message(1697043379, MessageType.IMAGE, {
        **IMAGE, "content.media.url": "https://lookaside.fbsbx.com/whatsapp_business/attachments/"
        "?mid=65463453&source=webhook&ext=487r9re&hash=heiwchueowbcew-dnedcw",
    }),
    "message__order.json": message(1697044668, MessageType.UNSUPPORTED, {"content.text": None}),
    "message__reaction.json": message(1697044456, MessageType.REACTION, {
        "content.reaction.message_id": "wamid.yzxyzx=", "content.reaction.emoji": "\U0001f62e",
    }),
    "message__referral.json": message(1697045000, MessageType.TEXT, {
        "provider_message_id": "wamid.ID", "content.text": "BODY",
        "referral.source_id": "ADID", "referral.ctwa_clid": "CTWA_CLID",
    }),
    "message__reply.json": message(1697044746, MessageType.TEXT, {
        "content.text": "replied text", "reply_to": "wamid.xyzxyz==",
    }),
    "message__static_sticker.json": message(1697043760, MessageType.STICKER, {
        **STICKER, "content.media.animated": False,
    }),
    "message__text.json": message(1697043223, MessageType.TEXT, {"content.text": "Body Text"}),
    "message__unreaction_empty.json": message(1697044456, MessageType.REACTION, UNREACTION),
    "message__unreaction_no_emoji.json": message(1697044456, MessageType.REACTION, UNREACTION),
    "message__unsupported.json": message(1697044706, MessageType.UNSUPPORTED, {}),
    "message__unsupported_with_type.json": message(1697044706, MessageType.UNSUPPORTED, {}),
    "message__video.json": message(1697044362, MessageType.VIDEO, {
        **FORWARDED, "content.media.provider_media_id": "765756756",
        "content.media.mime_type": "video/mp4", "content.media.caption": "caption",
    }),
    "message__voice.json": message(1697043473, MessageType.AUDIO, {
        "content.media.provider_media_id": "1234567890987654321", "content.media.voice": True,
    }),
    "message_status__delivered.json": status(1698266945, DeliveryStatus.DELIVERED),
    "message_status__failed.json": status(1689380458, DeliveryStatus.FAILED, {
        "errors.0.code": 130472,
        "errors.0.title": "User's number is part of an experiment",
        "errors.0.message": "User's number is part of an experiment",
        "errors.0.details": "Failed to send message because this user's phone number is part "
        "of an experiment",
    }),
    "message_status__group.json": status(1698266945, DeliveryStatus.READ, {
        "provider_message_id": "<WHATSAPP_MESSAGE_ID>", "recipient_id": "fowefinoewcnw",
    }),
    "message_status__played.json": status(1689380458, DeliveryStatus.PLAYED),
    "message_status__read.json": status(1689380458, DeliveryStatus.READ),
    "message_status__sent.json": status(1698266945, DeliveryStatus.SENT),
    "message_status__with_tracker.json": status(1698266945, DeliveryStatus.SENT),
    "system__identity_change.json": system(
        "customer_identity_changed", 1697044706, "972987654321",
        {"data.system.body": "User identity changed"},
    ),
    "system__phone_number_change.json": system(
        "user_changed_number", 1753851315, "972987654321", {"data.system.wa_id": "972912345678"}
    ),
    "template_status_update__approved.json": system("template_status", 1751247548, None, {
        "data.event": "APPROVED", "data.message_template_name": "order_confirmation",
    }),
    "template_status_update__rejected.json": system("template_status", 1751247548, None, {
        "data.event": "REJECTED", "data.reason": "INVALID_FORMAT",
    }),
    "user_marketing_preferences__resume.json": system(
        "marketing_preferences", 1731705721, "16505551234", {**PREFERENCES, "data.value": "resume"}
    ),
    "user_marketing_preferences__signup.json": system(
        "marketing_preferences", 1731705721, "16505551234", {**PREFERENCES, "data.value": "signup"}
    ),
}  # fmt: skip


def resolve(obj: Any, path: str) -> Any:
    """`content.media.mime_type`, `errors.0.code`, `data.system.wa_id`: attributes, list
    indexes and dict keys alike."""
    for part in path.split("."):
        if isinstance(obj, dict):
            obj = obj[part]
        elif isinstance(obj, list | tuple):
            obj = obj[int(part)]
        else:
            obj = getattr(obj, part)
    return obj


def provider_object(payload: dict[str, Any]) -> dict[str, Any]:
    """The provider object a sample's single event must keep in `raw`/`data`."""
    change = payload["entry"][0]["changes"][0]
    value: dict[str, Any] = change["value"]
    if change["field"] == "message_template_status_update":
        return value
    keys = ("messages", "statuses", "user_preferences")
    items: list[dict[str, Any]] = [item for key in keys for item in value.get(key, [])]
    assert len(items) == 1
    return items[0]


def kept(event: InboundEvent) -> dict[str, Any]:
    return event.data if isinstance(event, SystemEvent) else event.raw


def test_samples_and_expectations_match() -> None:
    # Fails when the shared folder is missing (no sample would be parametrized at all), when a
    # sample is removed, and when one is added without an expectation.
    assert SAMPLE_FILES, f"no samples in {SAMPLES}"
    assert {path.name for path in SAMPLE_FILES} == set(EXPECTED)


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda path: path.stem)
def test_sample(path: Path) -> None:
    assert path.name in EXPECTED, f"{path.name} has no expectation in EXPECTED"
    payload = load(path.name)
    events = parse(payload)
    assert len(events) == 1
    [event] = events
    expected = dict(EXPECTED[path.name])
    assert type(event) is expected.pop("class")
    # A default such as `referral: None` gives way to the sample's own `referral.source_id`.
    for field_path, value in expected.items():
        if any(other.startswith(f"{field_path}.") for other in expected):
            continue
        assert resolve(event, field_path) == value, field_path
    assert kept(event) == provider_object(payload)


def test_timestamps_are_aware_utc() -> None:
    [event] = parse(load("message__text.json"))
    assert event.timestamp == datetime(2023, 10, 11, 16, 53, 43, tzinfo=UTC)
    assert event.timestamp is not None
    assert event.timestamp.utcoffset() == timedelta(0)


def test_batched_payload_yields_every_event_in_order() -> None:
    text, reply = load("message__text.json"), load("message__reply.json")
    delivered = load("message_status__delivered.json")
    value = text["entry"][0]["changes"][0]["value"]
    value["messages"].append(reply["entry"][0]["changes"][0]["value"]["messages"][0])
    # A second entry with two changes: a status, then a template status update.
    template_change = load("template_status_update__approved.json")["entry"][0]["changes"][0]
    second = delivered["entry"][0]
    second["changes"].append(template_change)
    payload = {"object": "whatsapp_business_account", "entry": [text["entry"][0], second]}

    events = parse(payload)

    assert [type(event) for event in events] == [
        InboundMessage, InboundMessage, StatusUpdate, SystemEvent
    ]  # fmt: skip
    first, answer, state, template = events
    assert isinstance(first, InboundMessage) and isinstance(answer, InboundMessage)
    assert first.content.text == "Body Text"
    assert answer.content.text == "replied text"
    assert answer.sender_name == "Test Name"
    assert isinstance(state, StatusUpdate) and state.status == DeliveryStatus.DELIVERED
    assert isinstance(template, SystemEvent) and template.kind == "template_status"


Mutation = Callable[[dict[str, Any]], object]


def first_message(payload: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    return found


MALFORMED: dict[str, object] = {
    "none": None,
    "list": [],
    "string": "whatsapp_business_account",
    "wrong object": {"object": "page", "entry": []},
    "no object": {"entry": []},
    "no entry": {"object": "whatsapp_business_account"},
    "entry not a list": {"object": "whatsapp_business_account", "entry": {}},
    "entry item not a dict": {"object": "whatsapp_business_account", "entry": ["x"]},
    "entry without changes": {"object": "whatsapp_business_account", "entry": [{"id": "1"}]},
}

MUTATIONS: dict[str, Mutation] = {
    "change not a dict": lambda p: p["entry"][0].update(changes=[1]),
    "change without value": lambda p: p["entry"][0]["changes"][0].pop("value"),
    "value not a dict": lambda p: p["entry"][0]["changes"][0].update(value=[]),
    "change without field": lambda p: p["entry"][0]["changes"][0].pop("field"),
    "messages not a list": lambda p: p["entry"][0]["changes"][0]["value"].update(messages={}),
    "message not a dict": lambda p: p["entry"][0]["changes"][0]["value"].update(messages=[1]),
    "message without id": lambda p: first_message(p).pop("id"),
    "message without from": lambda p: first_message(p).pop("from"),
    "message id not a string": lambda p: first_message(p).update(id=42),
    "message without timestamp": lambda p: first_message(p).pop("timestamp"),
    "message with a broken timestamp": lambda p: first_message(p).update(timestamp="soon"),
}


@pytest.mark.parametrize("payload", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_envelope_is_rejected(payload: object) -> None:
    with pytest.raises(MalformedPayload):
        parse(payload)


@pytest.mark.parametrize("mutate", MUTATIONS.values(), ids=MUTATIONS.keys())
def test_broken_sample_envelope_is_rejected(mutate: Mutation) -> None:
    payload = load("message__text.json")
    mutate(payload)
    with pytest.raises(MalformedPayload):
        parse(payload)


def test_status_without_id_is_rejected() -> None:
    payload = load("message_status__sent.json")
    payload["entry"][0]["changes"][0]["value"]["statuses"][0].pop("id")
    with pytest.raises(MalformedPayload):
        parse(payload)


def test_malformed_payload_is_a_value_error() -> None:
    assert issubclass(MalformedPayload, ValueError)


def test_unknown_message_type_is_unsupported_and_kept() -> None:
    payload = load("message__text.json")
    item = first_message(payload)
    item.pop("text")
    item.update(type="hologram", hologram={"depth": 3})
    [event] = parse(payload)
    assert isinstance(event, InboundMessage)
    assert event.content.type == MessageType.UNSUPPORTED
    assert event.raw == item
    assert event.raw["hologram"] == {"depth": 3}
    assert (event.provider_message_id, event.sender_id) == ("wamid.xyzxyz", "972987654321")


BROKEN: dict[str, tuple[str, Mutation]] = {
    "text without body": ("message__text.json", lambda m: m["text"].pop("body")),
    "text body not a string": ("message__text.json", lambda m: m["text"].update(body=1)),
    "image without body": ("message__image.json", lambda m: m.pop("image")),
    "image without id or url": ("message__image.json", lambda m: m["image"].pop("id")),
    "location without longitude": (
        "message__current_location.json", lambda m: m["location"].pop("longitude")
    ),
    "contacts not a list": ("message__contacts.json", lambda m: m.update(contacts={})),
    "reaction without target": ("message__reaction.json", lambda m: m["reaction"].clear()),
    "flow reply": (
        "callback_button__button.json",
        lambda m: m.update(interactive={"type": "nfm_reply", "nfm_reply": {"body": "Sent"}}),
    ),
    "button reply without id": (
        "callback_button__button.json", lambda m: m["interactive"]["button_reply"].pop("id")
    ),
    "quick reply without payload": (
        "callback_button__quick_reply.json", lambda m: m["button"].pop("payload")
    ),
    "no type at all": ("message__text.json", lambda m: m.pop("type")),
    "edit of nothing": ("edited_message__image.json", lambda m: m["edit"].clear()),
    "revoke of nothing": ("deleted_message__revoke.json", lambda m: m.pop("revoke")),
}  # fmt: skip


@pytest.mark.parametrize(("sample", "mutate"), BROKEN.values(), ids=BROKEN.keys())
def test_broken_message_body_is_unsupported(sample: str, mutate: Mutation) -> None:
    payload = load(sample)
    mutate(first_message(payload))
    [event] = parse(payload)
    assert isinstance(event, InboundMessage)
    assert event.content.type == MessageType.UNSUPPORTED
    assert event.raw == first_message(payload)


def test_edit_with_broken_content_keeps_the_edit() -> None:
    payload = load("edited_message__image.json")
    first_message(payload)["edit"]["message"] = {"type": "image"}
    [event] = parse(payload)
    assert isinstance(event, MessageEdited)
    assert event.content.type == MessageType.UNSUPPORTED


def test_missing_contacts_leave_the_name_empty() -> None:
    payload = load("message__text.json")
    payload["entry"][0]["changes"][0]["value"]["contacts"] = "broken"
    [event] = parse(payload)
    assert isinstance(event, InboundMessage)
    assert (event.sender_id, event.sender_name) == ("972987654321", None)


def test_unknown_status_is_a_system_event() -> None:
    payload = load("message_status__sent.json")
    item = payload["entry"][0]["changes"][0]["value"]["statuses"][0]
    item["status"] = "deleted"
    [event] = parse(payload)
    assert isinstance(event, SystemEvent)
    assert (event.kind, event.sender_id, event.data) == ("status_deleted", "972987654321", item)
    assert event.timestamp == at(1698266945)


def test_unknown_field_is_a_system_event() -> None:
    value = {"phone_number": "15550783881", "event": "VERIFIED_ACCOUNT"}
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "account_update", "value": value}]}],
    }
    [event] = parse(payload)
    assert isinstance(event, SystemEvent)
    assert (event.kind, event.timestamp, event.data) == ("account_update", None, value)


def test_empty_entry_list_is_no_events() -> None:
    assert parse({"object": "whatsapp_business_account", "entry": []}) == []


def test_parse_does_not_mutate_its_input() -> None:
    payload = load("edited_message__image.json")
    before = copy.deepcopy(payload)
    parse(payload)
    assert payload == before
