"""The one way a phone number is read from a person: separators people type (spaces, dashes,
brackets, dots), a leading `+` or `00` are accepted and dropped; what is left must be the
country code and number, digits only. Stored and sent as `+` and digits (E.164)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

PHONE_HINT = "Enter the number with its country code, digits only, e.g. +15551234567"
# Separators people type or paste: spaces (also non-breaking), dashes (also typographic ones),
# brackets and dots.
_SEPARATORS = re.compile(r"[\s\u00a0\-\u2010-\u2015\u2212().\[\]/]")
_DIGITS = re.compile(r"[0-9]{6,15}")  # E.164 allows at most 15 digits


def normalize_phone(raw: str) -> str:
    """`+` and 6 to 15 digits, or ValueError with the sentence to show the person."""
    compact = _SEPARATORS.sub("", raw)
    if compact.startswith("00"):
        compact = compact[2:]
    elif compact.startswith("+"):
        compact = compact[1:]
    if not _DIGITS.fullmatch(compact):
        raise ValueError(PHONE_HINT)
    return f"+{compact}"


def phone_digits(raw: str) -> str | None:
    """The digits of `raw` when it reads as a phone number, else None (for searches)."""
    try:
        return normalize_phone(raw)[1:]
    except ValueError:
        return None


#: A request field holding a phone number; normalised before it is checked.
PhoneNumber = Annotated[
    str,
    StringConstraints(max_length=40),
    AfterValidator(normalize_phone),
    Field(description=f"A phone number with its country code. {PHONE_HINT}."),
]
