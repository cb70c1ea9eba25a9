"""The channel's send window leaves room for sends that reach the provider a moment after
their slot was taken, so that the provider never counts more than the channel's rate in one of
its seconds (issue 15: 0 seconds over the cap)."""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest

from botplatform.channels import policy
from botplatform.config import Settings
from botplatform.kit.ratelimit import RateLimiter


@pytest.mark.parametrize(
    ("rate", "slots"),
    [(1_000, 970), (80, 78), (34, 33), (33, 33), (20, 20), (1, 1)],
)
def test_a_second_of_the_window_holds_the_rate_less_the_sends_that_may_arrive_late(
    rate: int, slots: int
) -> None:
    assert policy.slots_per_second(rate) == slots


async def test_the_window_gives_no_more_than_that_in_a_second() -> None:
    limiter = RateLimiter(Settings(redis_url=""))  # its memory storage: the same window
    channel = SimpleNamespace(
        id=uuid.uuid4(), config={"phone_number_id": "1122334455667"}, send_rate_per_second=1_000
    )
    assert not await policy.take_send_slots(limiter, channel, 971)  # type: ignore[arg-type]
    assert await policy.take_send_slots(limiter, channel, 970)  # type: ignore[arg-type]
    assert not await policy.take_send_slots(limiter, channel, 1)  # type: ignore[arg-type]
