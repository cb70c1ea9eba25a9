"""Per recipient: the message with its variables filled in, and whether now falls in the
broadcast's quiet hours in the recipient's timezone."""

from __future__ import annotations

import html
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from botplatform.broadcast.schemas import PLACEHOLDER
from botplatform.message.schemas import MessageBody

#: The recipient's timezone when the contact has no valid `timezone` attribute: by the
#: phone number's country calling code (longest prefix wins). A country spanning several
#: zones gets its most populous one; anything unknown falls back to the workspace's zone.
CALLING_CODE_ZONES = {
    "1": "America/New_York",
    "7": "Europe/Moscow",
    "20": "Africa/Cairo",
    "27": "Africa/Johannesburg",
    "31": "Europe/Amsterdam",
    "33": "Europe/Paris",
    "34": "Europe/Madrid",
    "39": "Europe/Rome",
    "44": "Europe/London",
    "49": "Europe/Berlin",
    "52": "America/Mexico_City",
    "54": "America/Argentina/Buenos_Aires",
    "55": "America/Sao_Paulo",
    "57": "America/Bogota",
    "61": "Australia/Sydney",
    "62": "Asia/Jakarta",
    "65": "Asia/Singapore",
    "81": "Asia/Tokyo",
    "86": "Asia/Shanghai",
    "90": "Europe/Istanbul",
    "91": "Asia/Kolkata",
    "234": "Africa/Lagos",
    "351": "Europe/Lisbon",
    "966": "Asia/Riyadh",
    "971": "Asia/Dubai",
}
TIMEZONE_ATTRIBUTE = "timezone"


class MissingVariable(ValueError):
    """A variable with neither a value for this contact nor a default."""


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def recipient_zone(attributes: dict[str, Any], address: str | None, fallback: str) -> ZoneInfo:
    """The contact's `timezone` attribute (IANA name), else its number's country, else the
    workspace's timezone."""
    zone = _zone(str(attributes.get(TIMEZONE_ATTRIBUTE) or ""))
    if zone is not None:
        return zone
    digits = "".join(char for char in (address or "") if char.isdigit())
    for length in (3, 2, 1):
        zone = _zone(CALLING_CODE_ZONES.get(digits[:length]))
        if zone is not None:
            return zone
    return _zone(fallback) or ZoneInfo("UTC")


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def quiet_until(now: datetime, zone: ZoneInfo, start: str, end: str) -> datetime | None:
    """When the quiet hours around `now` end (UTC), or None if `now` is outside them. The
    window may wrap midnight (21:00 to 08:00)."""
    local = now.astimezone(zone)
    begin, finish, moment = _clock(start), _clock(end), local.time()
    if begin == finish:
        return None
    inside = begin <= moment < finish if begin < finish else moment >= begin or moment < finish
    if not inside:
        return None
    until = local.replace(hour=finish.hour, minute=finish.minute, second=0, microsecond=0)
    if until <= local:
        until += timedelta(days=1)
    # Built as a wall-clock time: normalise through UTC (a DST change in between is fine).
    return until.astimezone(ZoneInfo("UTC"))


def _values(message: dict[str, Any], name: str, attributes: dict[str, Any]) -> dict[str, str]:
    values: dict[str, str] = {}
    for variable, source in message.get("variables", {}).items():
        attribute = source.get("attribute")
        value = name if attribute == "name" else attributes.get(attribute) if attribute else None
        if value in (None, ""):
            value = source.get("default")
        if value in (None, ""):
            raise MissingVariable(variable)
        values[variable] = str(value)
    return values


def _fill(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return PLACEHOLDER.sub(lambda match: values.get(match[1], match[0]), value)
    if isinstance(value, list):
        return [_fill(item, values) for item in value]
    if isinstance(value, dict):
        return {key: _fill(item, values) for key, item in value.items()}
    return value


def render(message: dict[str, Any], name: str, attributes: dict[str, Any]) -> MessageBody:
    """The broadcast's message for one contact (`MissingVariable` when it cannot be)."""
    return _render(message, _values(message, name, attributes))


def _render(message: dict[str, Any], values: dict[str, str]) -> MessageBody:
    if message["type"] == "template":
        template = dict(message["template"])  # _fill copies what it fills
        template["components"] = _fill(template.get("components", []), values)
        return MessageBody(type="template", template=template)
    return MessageBody(type="text", text=_fill(message["text"], values))


class Renderer:
    """The broadcast's message for each recipient of a driver's batches: each distinct set
    of values rendered (validated, and dumped as the message row's request) once, however
    many recipients share it — a message without variables is rendered once in all."""

    LIMIT = 10_000  # distinct renderings kept (per-recipient names make most distinct)

    def __init__(self, message: dict[str, Any]) -> None:
        self.message = message
        self._done: dict[tuple[tuple[str, str], ...], tuple[MessageBody, dict[str, Any]]] = {}

    def __call__(self, name: str, attributes: dict[str, Any]) -> tuple[MessageBody, dict[str, Any]]:
        """The body and its request (`MissingVariable` when it cannot be rendered)."""
        values = _values(self.message, name, attributes)
        key = tuple(sorted(values.items()))
        found = self._done.get(key)
        if found is None:
            body = _render(self.message, values)
            fields = set(MessageBody.model_fields)
            found = (body, body.model_dump(mode="json", exclude_none=True, include=fields))
            if len(self._done) >= self.LIMIT:
                self._done.clear()
            self._done[key] = found
        return found


def render_email(
    message: dict[str, Any], name: str, attributes: dict[str, Any]
) -> tuple[str, str | None, str | None]:
    """An email broadcast's subject, text and HTML for one contact (`MissingVariable` when
    it cannot be). In the HTML the values are escaped: attributes are user input."""
    values = _values(message, name, attributes)
    escaped = {key: html.escape(value, quote=True) for key, value in values.items()}
    text, markup = message.get("text"), message.get("html")
    return (
        " ".join(str(_fill(message["subject"], values)).split()),  # one line: a header
        _fill(text, values) if text else None,
        _fill(markup, escaped) if markup else None,
    )
