"""The one source of "now": aware UTC datetimes everywhere, easy to move in tests."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)
