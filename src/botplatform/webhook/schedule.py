"""When to try a failed delivery again: exponential backoff over about three days."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

#: Seconds to wait after the 1st, 2nd, … failed attempt. 14 attempts over ~3.15 days.
RETRY_DELAYS: tuple[int, ...] = (
    10,
    60,
    5 * 60,
    30 * 60,
    3600,
    2 * 3600,
    4 * 3600,
    8 * 3600,
    12 * 3600,
    12 * 3600,
    12 * 3600,
    12 * 3600,
    12 * 3600,
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
JITTER = 0.1  # ±10%, so endpoints that failed together do not retry together
MAX_RETRY_AFTER = 24 * 3600


def retry_after_seconds(value: str | None, now: datetime) -> int | None:
    """`Retry-After` as seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0, int((moment - now).total_seconds()))


def next_delay(
    attempt: int, retry_after: int | None = None, rng: random.Random | None = None
) -> timedelta | None:
    """The wait after failed attempt number `attempt` (1-based), or None when it was the
    last. A server's Retry-After is honoured (up to a day) when longer than the backoff."""
    if attempt >= MAX_ATTEMPTS:
        return None
    base = RETRY_DELAYS[attempt - 1]
    jitter = (rng or random).uniform(-JITTER, JITTER)
    seconds = base * (1 + jitter)
    if retry_after is not None:
        seconds = max(seconds, min(retry_after, MAX_RETRY_AFTER))
    return timedelta(seconds=seconds)


def is_retryable(status_code: int) -> bool:
    return status_code in (408, 429) or status_code >= 500
