"""Checks a ``POST /{phone_number_id}/messages`` body the way the Cloud API does, so a
payload the platform gets away with here is one Meta would accept too."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

MEDIA_TYPES = ("image", "video", "audio", "document", "sticker")
CAPTIONED = frozenset({"image", "video", "document"})
HEADER_TYPES = frozenset({"text", "image", "video", "document"})


class InvalidParameter(Exception):
    """The body breaks a rule; ``details`` is what Meta puts in ``error_data.details``."""

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self.details = details


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidParameter(f"Param {path} must be a JSON object.")
    return value


def _list(value: Any, path: str, *, low: int, high: int | None = None) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidParameter(f"Param {path} must be an array.")
    if len(value) < low:
        raise InvalidParameter(f"Param {path} must have at least {low} element(s).")
    if high is not None and len(value) > high:
        raise InvalidParameter(f"Param {path} must have at most {high} element(s).")
    return value


def _text(value: Any, path: str, *, high: int, low: int = 1) -> str:
    if not isinstance(value, str):
        raise InvalidParameter(f"Param {path} is required and must be a string.")
    if len(value) < low:
        raise InvalidParameter(f"Param {path} must be non-empty.")
    if len(value) > high:
        raise InvalidParameter(f"Param {path} must be at most {high} characters long.")
    return value


def _optional_text(obj: dict[str, Any], key: str, path: str, *, high: int) -> None:
    if key in obj:
        _text(obj[key], f"{path}['{key}']", high=high)


def _text_message(text: Any) -> None:
    obj = _object(text, "text")
    _text(obj.get("body"), "text['body']", high=4096)
    if "preview_url" in obj and not isinstance(obj["preview_url"], bool):
        raise InvalidParameter("Param text['preview_url'] must be a boolean.")


def _media_message(kind: str) -> Callable[[Any], None]:
    def check(media: Any) -> None:
        obj = _object(media, kind)
        sources = [key for key in ("id", "link") if obj.get(key)]
        if len(sources) != 1:
            raise InvalidParameter(f"Param {kind} must have exactly one of 'id' or 'link'.")
        if "link" in sources:
            link = _text(obj["link"], f"{kind}['link']", high=2048)
            if not link.startswith(("https://", "http://")):
                raise InvalidParameter(f"Param {kind}['link'] must be a valid URL.")
        else:
            _text(obj["id"], f"{kind}['id']", high=64)
        _media_extras(kind, obj)

    return check


def _media_extras(kind: str, obj: dict[str, Any]) -> None:
    if "caption" in obj:
        if kind not in CAPTIONED:
            raise InvalidParameter(f"Param {kind}['caption'] is not allowed for {kind} messages.")
        _text(obj["caption"], f"{kind}['caption']", high=1024)
    if "filename" in obj:
        if kind != "document":
            raise InvalidParameter(f"Param {kind}['filename'] is only allowed for documents.")
        _text(obj["filename"], "document['filename']", high=240)


def _coordinate(obj: dict[str, Any], key: str, bound: float) -> None:
    value = obj.get(key)
    number: float | None = None
    # Meta takes coordinates as JSON numbers or numeric strings.
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not -bound <= number <= bound:
        raise InvalidParameter(f"Param location['{key}'] must be a number in [-{bound}, {bound}].")


def _location_message(location: Any) -> None:
    obj = _object(location, "location")
    _coordinate(obj, "latitude", 90.0)
    _coordinate(obj, "longitude", 180.0)
    _optional_text(obj, "name", "location", high=1000)
    _optional_text(obj, "address", "location", high=1000)


def _contacts_message(contacts: Any) -> None:
    for index, contact in enumerate(_list(contacts, "contacts", low=1)):
        path = f"contacts[{index}]"
        name = _object(_object(contact, path).get("name"), f"{path}.name")
        _text(name.get("formatted_name"), f"{path}.name['formatted_name']", high=1024)


def _template_message(template: Any) -> None:
    obj = _object(template, "template")
    _text(obj.get("name"), "template['name']", high=512)
    language = _object(obj.get("language"), "template['language']")
    _text(language.get("code"), "template['language']['code']", high=16)
    components = _list(obj.get("components", []), "template['components']", low=0)
    for index, component in enumerate(components):
        path = f"template['components'][{index}]"
        _text(_object(component, path).get("type"), f"{path}['type']", high=32)


def _reply_buttons(action: dict[str, Any]) -> None:
    buttons = _list(action.get("buttons"), "interactive.action['buttons']", low=1, high=3)
    ids, titles = set(), set()
    for index, button in enumerate(buttons):
        path = f"interactive.action['buttons'][{index}]"
        if _object(button, path).get("type") != "reply":
            raise InvalidParameter(f"Param {path}['type'] must be 'reply'.")
        reply = _object(button.get("reply"), f"{path}['reply']")
        ids.add(_text(reply.get("id"), f"{path}['reply']['id']", high=256))
        titles.add(_text(reply.get("title"), f"{path}['reply']['title']", high=20))
    if len(ids) != len(buttons) or len(titles) != len(buttons):
        raise InvalidParameter("Buttons must have unique ids and titles.")


def _list_sections(action: dict[str, Any]) -> None:
    _text(action.get("button"), "interactive.action['button']", high=20)
    sections = _list(action.get("sections"), "interactive.action['sections']", low=1, high=10)
    row_ids: list[str] = []
    for index, section in enumerate(sections):
        path = f"interactive.action['sections'][{index}]"
        obj = _object(section, path)
        # A title is optional only when there is a single section to title.
        if len(sections) > 1 or "title" in obj:
            _text(obj.get("title"), f"{path}['title']", high=24)
        for row_index, row in enumerate(_list(obj.get("rows"), f"{path}['rows']", low=1)):
            row_path = f"{path}['rows'][{row_index}]"
            row_obj = _object(row, row_path)
            row_ids.append(_text(row_obj.get("id"), f"{row_path}['id']", high=200))
            _text(row_obj.get("title"), f"{row_path}['title']", high=24)
            _optional_text(row_obj, "description", row_path, high=72)
    if len(row_ids) > 10:
        raise InvalidParameter("Param interactive.action['sections'] can have at most 10 rows.")
    if len(set(row_ids)) != len(row_ids):
        raise InvalidParameter("Row ids must be unique across all sections.")


_INTERACTIVE: dict[str, tuple[int, Callable[[dict[str, Any]], None]]] = {
    "button": (1024, _reply_buttons),
    "list": (4096, _list_sections),
}


def _interactive_message(interactive: Any) -> None:
    obj = _object(interactive, "interactive")
    kind = obj.get("type")
    if kind not in _INTERACTIVE:
        raise InvalidParameter("Param interactive['type'] must be one of {button, list}.")
    body_limit, check_action = _INTERACTIVE[kind]
    body = _object(obj.get("body"), "interactive['body']")
    _text(body.get("text"), "interactive['body']['text']", high=body_limit)
    if "header" in obj:
        header = _object(obj["header"], "interactive['header']")
        if header.get("type") not in HEADER_TYPES:
            raise InvalidParameter("Param interactive['header']['type'] is invalid.")
        if header["type"] == "text":
            _text(header.get("text"), "interactive['header']['text']", high=60)
    if "footer" in obj:
        footer = _object(obj["footer"], "interactive['footer']")
        _text(footer.get("text"), "interactive['footer']['text']", high=60)
    check_action(_object(obj.get("action"), "interactive['action']"))


def _reaction_message(reaction: Any) -> None:
    obj = _object(reaction, "reaction")
    _text(obj.get("message_id"), "reaction['message_id']", high=256)
    # An empty emoji is how a reaction is removed.
    _text(obj.get("emoji"), "reaction['emoji']", high=16, low=0)


VALIDATORS: dict[str, Callable[[Any], None]] = {
    "text": _text_message,
    **{kind: _media_message(kind) for kind in MEDIA_TYPES},
    "location": _location_message,
    "contacts": _contacts_message,
    "template": _template_message,
    "interactive": _interactive_message,
    "reaction": _reaction_message,
}


def _mark_read(body: dict[str, Any]) -> None:
    if body["status"] != "read":
        raise InvalidParameter("Param status must be 'read'.")
    _text(body.get("message_id"), "message_id", high=256)


def _message(body: dict[str, Any]) -> str:
    to = _text(body.get("to"), "to", high=64)
    if not any(char.isdigit() for char in to):
        raise InvalidParameter("Param to must be a phone number or WhatsApp ID.")
    if body.get("recipient_type", "individual") != "individual":
        raise InvalidParameter("Param recipient_type must be 'individual'.")
    # Meta defaults a missing type to text.
    kind = body.get("type", "text")
    if kind not in VALIDATORS:
        raise InvalidParameter(f"Param type must be one of {{{', '.join(VALIDATORS)}}}.")
    if kind not in body:
        raise InvalidParameter(f"Param {kind} is required for a {kind} message.")
    VALIDATORS[kind](body[kind])
    if "context" in body:
        context = _object(body["context"], "context")
        _text(context.get("message_id"), "context['message_id']", high=256)
    return str(kind)


def validate(body: Any) -> tuple[Literal["read", "message"], str]:
    """Return ``("read", "")`` for a mark-as-read, else ``("message", type)``.

    Raises :class:`InvalidParameter` with Meta-style details when the body is wrong."""
    obj = _object(body, "body")
    if obj.get("messaging_product") != "whatsapp":
        raise InvalidParameter("Param messaging_product is required and must be 'whatsapp'.")
    if "status" in obj:
        _mark_read(obj)
        return "read", ""
    return "message", _message(obj)


_MB = 1024 * 1024
#: The mime types the Cloud API takes for upload, and the largest file it takes of each.
MEDIA_LIMITS: dict[str, int] = {
    **dict.fromkeys(("audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"), 16 * _MB),
    **dict.fromkeys(("image/jpeg", "image/png"), 5 * _MB),
    "image/webp": 500 * 1024,  # stickers
    **dict.fromkeys(("video/3gpp", "video/mp4"), 16 * _MB),
    **dict.fromkeys(
        (
            "text/plain",
            "application/pdf",
            "application/msword",
            "application/vnd.ms-excel",
            "application/vnd.ms-powerpoint",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        100 * _MB,
    ),
}
