"""The one outbound gate every send passes: opt-out, the WhatsApp 24-hour customer-service
window, and the provider's send rate — checked when a message is accepted and again right
before it goes out (a queued message may outlive its window)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from limits import RateLimitItemPerSecond
from limits.aio.strategies import MovingWindowRateLimiter

from botplatform.channels.messages import MessageType
from botplatform.kit.clock import utcnow
from botplatform.kit.errors import Unprocessable
from botplatform.kit.ratelimit import RateLimiter
from botplatform.models import Channel, Contact, Conversation

WHATSAPP_WINDOW = timedelta(hours=24)
# What may be sent outside the window: approved templates (and marking as read).
OUTSIDE_WINDOW_TYPES = frozenset({MessageType.TEMPLATE.value})


class PolicyRefused(Unprocessable):
    """A send the platform refuses by rule; final, never retried."""


def check(
    channel: Channel, contact: Contact, conversation: Conversation, message_type: str
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


async def take_send_slots(limiter: RateLimiter, channel: Channel, wanted: int) -> bool:
    """Takes `wanted` send slots at once if the channel's window has room for all of them
    now (one round trip); False, and nothing taken, otherwise."""
    item = RateLimitItemPerSecond(channel.send_rate_per_second)
    strategy = MovingWindowRateLimiter(limiter.storage)
    key = str(channel.config.get("phone_number_id") or channel.id)
    return await strategy.hit(item, "send", key, cost=wanted)


async def take_send_slot(limiter: RateLimiter, channel: Channel, max_wait: float = 30.0) -> bool:
    """Waits for a send slot of this channel (e.g. 80 messages/s per WhatsApp number), shared
    by every worker through Redis. False if none came within `max_wait` seconds."""
    item = RateLimitItemPerSecond(channel.send_rate_per_second)
    strategy = MovingWindowRateLimiter(limiter.storage)
    key = str(channel.config.get("phone_number_id") or channel.id)
    waited, step = 0.0, 1.0 / channel.send_rate_per_second
    while not await strategy.hit(item, "send", key):
        if waited >= max_wait:
            return False
        await asyncio.sleep(step)
        waited += step
    return True
