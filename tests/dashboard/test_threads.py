"""Bubbles per message type, without a database: media by signed link, ticks, replies quoted,
reactions attached to their message, notes, failures."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from botplatform.dashboard.threads import bubbles
from botplatform.kit.clock import utcnow
from botplatform.media.storage import SignedMediaUrls
from botplatform.models import Message

URLS = SignedMediaUrls("test-secret-key-not-for-production", "")
START = utcnow()


def _message(index: int, direction: str, kind: str, **fields: Any) -> Message:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "workspace_id": uuid.uuid4(),
        "conversation_id": uuid.uuid4(),
        "channel_id": uuid.uuid4(),
        "direction": direction,
        "type": kind,
        "text": None,
        "content": {},
        "is_note": False,
        "status": "received" if direction == "inbound" else "sent",
        "provider_message_id": f"wamid.{index}",
        "reply_to_provider_id": None,
        "media_key": None,
        "media_mime": None,
        "media_status": None,
        "edited": False,
        "deleted": False,
        "error_code": None,
        "error_title": None,
        "created_at": START + timedelta(seconds=index),
    }
    values.update(fields)
    return Message(**values)


def test_every_type_reads_as_a_bubble() -> None:
    rows = [
        _message(1, "inbound", "text", text="Hi"),
        _message(
            2,
            "inbound",
            "image",
            text="look",
            media_key="ws/abc/photo.jpg",
            media_mime="image/jpeg",
            media_status="stored",
        ),
        _message(
            3,
            "inbound",
            "document",
            media_status="pending",
            content={"media": {"filename": "invoice.pdf"}},
        ),
        _message(
            4,
            "inbound",
            "location",
            content={"location": {"latitude": 38.7, "longitude": -9.1, "name": "Shop"}},
        ),
        _message(
            5,
            "inbound",
            "contacts",
            content={
                "contacts": [{"name": {"formatted_name": "Bo"}, "phones": [{"phone": "+1555"}]}]
            },
        ),
        _message(
            6,
            "inbound",
            "interactive",
            text="Yes",
            content={"reply": {"kind": "button_reply", "id": "y", "title": "Yes"}},
        ),
        _message(
            7, "outbound", "text", text="Thanks", status="read", reply_to_provider_id="wamid.1"
        ),
        _message(
            8,
            "outbound",
            "template",
            status="failed",
            error_title="Re-engagement",
            content={
                "request": {"type": "template", "template": {"name": "hello", "language": "en"}}
            },
        ),
        _message(
            9, "inbound", "reaction", content={"reaction": {"message_id": "wamid.7", "emoji": "👍"}}
        ),
        _message(
            10,
            "outbound",
            "text",
            text="internal",
            is_note=True,
            status="note",
            provider_message_id=None,
        ),
        _message(11, "inbound", "unsupported"),
    ]
    shown = {b.kind: b for b in bubbles(rows, URLS)}
    assert "reaction" not in shown  # attached, not a bubble of its own
    image = shown["image"]
    assert image.media_url and image.media_url.startswith("/media/ws/abc/photo.jpg?token=")
    assert URLS.key_from("ws/abc/photo.jpg", image.media_url.split("token=")[1])
    assert shown["document"].media_pending and shown["document"].filename == "invoice.pdf"
    assert shown["location"].details == ["📍 Shop (38.7, -9.1)"]
    assert shown["contacts"].details == ["Bo +1555"]
    assert shown["interactive"].details == ["↩ Yes"]
    thanks = bubbles(rows, URLS)[6]
    assert thanks.quoted == "Hi" and thanks.tick == "✓✓" and thanks.tick_label == "Read"
    assert thanks.reactions == ["👍"]
    failed = shown["template"]
    assert failed.error == "Re-engagement" and failed.tick_label == "Failed"
    assert failed.details == ["Template: hello (en)"]
    note = bubbles(rows, URLS)[8]
    assert note.is_note and note.tick == ""
    assert shown["text"].tick == ""  # inbound messages carry no ticks


def test_a_removed_reaction_disappears() -> None:
    rows = [
        _message(1, "outbound", "text", text="Deal?"),
        _message(
            2, "inbound", "reaction", content={"reaction": {"message_id": "wamid.1", "emoji": "❤"}}
        ),
        _message(
            3, "inbound", "reaction", content={"reaction": {"message_id": "wamid.1", "emoji": ""}}
        ),
    ]
    assert bubbles(rows, URLS)[0].reactions == []
