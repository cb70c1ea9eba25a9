"""Validating a customer's answer to a question before it is stored on the contact."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from botplatform.kit.phone import normalize_phone

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[A-Za-z]{2,63}$")
DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y", "%d %B %Y", "%d %b %Y", "%B %d, %Y")


class InvalidAnswer(ValueError):
    pass


def _email(text: str) -> str:
    if not EMAIL.match(text) or len(text) > 254:
        raise InvalidAnswer("email")
    return text.lower()


def _number(text: str) -> int | float:
    cleaned = text.replace(",", ".") if text.count(",") == 1 and "." not in text else text
    try:
        value = float(cleaned)
    except ValueError as exc:
        raise InvalidAnswer("number") from exc
    if value != value or value in (float("inf"), float("-inf")):
        raise InvalidAnswer("number")
    return int(value) if value.is_integer() and "." not in cleaned else value


def _phone(text: str) -> str:
    try:
        return normalize_phone(text)  # the same reading as every phone field of the API
    except ValueError as exc:
        raise InvalidAnswer("phone") from exc


def _date(text: str) -> str:
    for fmt in DATE_FORMATS:
        try:
            parsed: date = datetime.strptime(text, fmt).date()
        except ValueError:
            continue
        return parsed.isoformat()
    raise InvalidAnswer("date")


def _choice(text: str, choices: list[str]) -> str:
    folded = text.casefold()
    for choice in choices:
        if choice.casefold() == folded:
            return choice
    if text.isdigit() and 1 <= int(text) <= len(choices):  # "2" picks the second
        return choices[int(text) - 1]
    raise InvalidAnswer("choice")


def validate_answer(kind: str, text: str | None, choices: list[str] | None = None) -> Any:
    """The value to store, or InvalidAnswer."""
    text = (text or "").strip()
    if not text:
        raise InvalidAnswer(kind)
    if kind == "email":
        return _email(text)
    if kind == "number":
        return _number(text)
    if kind == "phone":
        return _phone(text)
    if kind == "date":
        return _date(text)
    if kind == "choice":
        return _choice(text, choices or [])
    return text[:1000]
