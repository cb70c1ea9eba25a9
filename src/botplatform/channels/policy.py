"""The one outbound gate every send passes: opt-out, the WhatsApp 24-hour customer-service
window, and the provider's send rate — checked when a message is accepted and again right
before it goes out (a queued message may outlive its window)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from limits import RateLimitItemPerSecond
from limits.aio.strategies import MovingWindowRateLimiter

from botplatform.channels.base import ChannelInfo
from botplatform.channels.messages import MessageType
from botplatform.kit.clock import utcnow
from botplatform.kit.errors import Unprocessable
from botplatform.kit.ratelimit import RateLimiter
from botplatform.models import Contact, Conversation

WHATSAPP_WINDOW = timedelta(hours=24)
# What may be sent outside the window: approved templates (and marking as read).
OUTSIDE_WINDOW_TYPES = frozenset({MessageType.TEMPLATE.value})


class PolicyRefused(Unprocessable):
    """A send the platform refuses by rule; final, never retried."""


def check(
    channel: ChannelInfo, contact: Contact, conversation: Conversation, message_type: str
) -> None:
    if contact.opted_out and message_type != MessageType.REACTION.value:
        raise PolicyRefused("The contact has opted out of messages.", code="opted_out")
    if channel.provider == "whatsapp" and message_type not in OUTSIDE_WINDOW_TYPES:
        last = conversation.last_inbound_at
        if last is None or utcnow() - last > WHATSAPP_WINDOW:
            raise PolicyRefused(
                "The 24-hour customer-service window is closed: only an approved template can "
                "be sent until the customer writes again.",
                code="window_closed",
                details={"last_inbound_at": last.isoformat() if last else None},
            )


async def take_send_slots(limiter: RateLimiter, channel: ChannelInfo, wanted: int) -> bool:
    """Takes `wanted` send slots at once if the channel's window has room for all of them
    now (one round trip); False, and nothing taken, otherwise."""
    return await _hit_send_window(limiter, channel, wanted)


def _send_window(channel: ChannelInfo) -> tuple[RateLimitItemPerSecond, str]:
    """The channel's send rate and the key its slots are counted under (the WhatsApp number,
    shared by every channel on it)."""
    key = str(channel.config.get("phone_number_id") or channel.id)
    return RateLimitItemPerSecond(channel.send_rate_per_second), key


async def _hit_send_window(limiter: RateLimiter, channel: ChannelInfo, cost: int = 1) -> bool:
    item, key = _send_window(channel)
    return await MovingWindowRateLimiter(limiter.storage).hit(item, "send", key, cost=cost)


async def take_send_slot(
    limiter: RateLimiter, channel: ChannelInfo, max_wait: float = 30.0
) -> bool:
    """Waits for a send slot of this channel (e.g. 80 messages/s per WhatsApp number), shared
    by every worker through Redis. False if none came within `max_wait` seconds."""
    waited, step = 0.0, 1.0 / channel.send_rate_per_second
    while not await _hit_send_window(limiter, channel):
        if waited >= max_wait:
            return False
        await asyncio.sleep(step)
        waited += step
    return True
