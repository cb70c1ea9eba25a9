"""The one outbound gate every send passes: opt-out, the 24-hour customer-service windows
(WhatsApp: a template outside it; Messenger and Instagram: a message tag outside it), and the
provider's send rate — checked when a message is accepted and again right
before it goes out (a queued message may outlive its window)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.strategies import MovingWindowRateLimiter

from botplatform.channels.base import ChannelInfo
from botplatform.channels.messages import MessageType
from botplatform.channels.registry import ADAPTERS
from botplatform.kit.clock import utcnow
from botplatform.kit.errors import Unprocessable
from botplatform.kit.ratelimit import RateLimiter
from botplatform.models import Contact, Conversation

WHATSAPP_WINDOW = timedelta(hours=24)
# What may be sent outside the window: approved templates (and marking as read).
OUTSIDE_WINDOW_TYPES = frozenset({MessageType.TEMPLATE.value})
#: Channels with Meta's 24-hour standard messaging window, by provider.
WINDOWS = {
    "whatsapp": WHATSAPP_WINDOW,
    "messenger": WHATSAPP_WINDOW,
    "instagram": WHATSAPP_WINDOW,
}
#: Messenger's message tags: a send outside the window, for these purposes only. A tag's
#: window (None: any time) — HUMAN_AGENT lets a person answer within 7 days.
HUMAN_AGENT = "HUMAN_AGENT"
MESSAGE_TAGS: dict[str, timedelta | None] = {
    HUMAN_AGENT: timedelta(days=7),
    "ACCOUNT_UPDATE": None,
    "CONFIRMED_EVENT_UPDATE": None,
    "POST_PURCHASE_UPDATE": None,
}
#: Which channels take which tags (Instagram knows only HUMAN_AGENT).
TAGS_BY_PROVIDER = {
    "messenger": frozenset(MESSAGE_TAGS),
    "instagram": frozenset({HUMAN_AGENT}),
}


class PolicyRefused(Unprocessable):
    """A send the platform refuses by rule; final, never retried."""


def window_open(provider: str, last_inbound_at: datetime | None) -> bool:
    """Whether a free-form message may go to a contact who last wrote at `last_inbound_at`."""
    window = WINDOWS.get(provider)
    if window is None:
        return True
    return last_inbound_at is not None and utcnow() - last_inbound_at <= window


def _check_tag(provider: str, tag: str, last: datetime | None) -> None:
    if tag not in TAGS_BY_PROVIDER.get(provider, frozenset()):
        raise PolicyRefused(
            f"The message tag {tag} cannot be used on this channel.",
            code="invalid_message_tag",
            details={"allowed": sorted(TAGS_BY_PROVIDER.get(provider, ()))},
        )
    limit = MESSAGE_TAGS[tag]
    if limit is not None and (last is None or utcnow() - last > limit):
        raise PolicyRefused(
            f"The {tag} tag only answers a customer who wrote within {limit.days} days.",
            code="window_closed",
            details={"last_inbound_at": last.isoformat() if last else None, "tag": tag},
        )


def needs_agent_tag(channel: ChannelInfo, conversation: Conversation) -> bool:
    """A person's reply on Messenger/Instagram after the 24-hour window: it goes out with the
    HUMAN_AGENT tag (which `check` then allows within 7 days)."""
    return HUMAN_AGENT in TAGS_BY_PROVIDER.get(channel.provider, frozenset()) and not window_open(
        channel.provider, conversation.last_inbound_at
    )


def check(
    channel: ChannelInfo,
    contact: Contact,
    conversation: Conversation,
    message_type: str,
    tag: str | None = None,
) -> None:
    if contact.opted_out and message_type != MessageType.REACTION.value:
        raise PolicyRefused("The contact has opted out of messages.", code="opted_out")
    last = conversation.last_inbound_at
    if tag is not None:
        _check_tag(channel.provider, tag, last)
        return
    if channel.provider == "whatsapp" and message_type in OUTSIDE_WINDOW_TYPES:
        return
    if not window_open(channel.provider, last):
        how = (
            "only an approved template can be sent"
            if channel.provider == "whatsapp"
            else "only a message with an allowed message tag (e.g. HUMAN_AGENT) can be sent"
        )
        raise PolicyRefused(
            f"The 24-hour customer-service window is closed: {how} until the customer writes "
            "again.",
            code="window_closed",
            details={"last_inbound_at": last.isoformat() if last else None},
        )


async def take_send_slots(limiter: RateLimiter, channel: ChannelInfo, wanted: int) -> bool:
    """Takes `wanted` send slots at once if the channel's window has room for all of them
    now (one round trip); False, and nothing taken, otherwise."""
    return await _hit_send_window(limiter, channel, wanted)


async def take_send_slots_upto(
    limiter: RateLimiter, channel: ChannelInfo, wanted: int, max_wait: float = 30.0
) -> int:
    """Takes as many of `wanted` send slots as the channel's window has room for now (one
    round trip when it has room for all), waiting up to `max_wait` seconds for at least one;
    how many were taken (0: none came in time)."""
    item, key = _send_window(channel)
    strategy = MovingWindowRateLimiter(limiter.storage)
    waited, step = 0.0, 1.0 / channel.send_rate_per_second
    while True:
        if await strategy.hit(item, "send", key, cost=wanted):
            return wanted
        _, remaining = await strategy.get_window_stats(item, "send", key)
        if remaining > 0 and await strategy.hit(item, "send", key, cost=min(remaining, wanted)):
            return min(remaining, wanted)
        if waited >= max_wait:
            return 0
        pause = step * min(wanted, 8)  # a few slots' worth: the window frees as it moves
        await asyncio.sleep(pause)
        waited += pause


#: How late a send may reach the provider after its slot was taken (the request being built,
#: waiting for the loop, crossing the network), which the window leaves room for
#: (`slots_per_second`).
SEND_LAG_SECONDS = 0.03


def slots_per_second(rate: int) -> int:
    """The slots the channel's moving window gives in any one second: its rate, less what may
    still arrive from the second before. The window counts when a slot is taken, the
    provider when the request arrives; requests arriving up to SEND_LAG_SECONDS late could
    otherwise put `rate * SEND_LAG_SECONDS` more into one of the provider's seconds (a
    broadcast at 1,000 msg/s saw 1,011 and 1,032 in a second). Rates under about 34 a second
    keep every slot (less than one send of lag)."""
    return max(1, rate - int(rate * SEND_LAG_SECONDS))


def _send_window(channel: ChannelInfo) -> tuple[RateLimitItemPerSecond, str]:
    """The channel's send window and the key its slots are counted under (the WhatsApp
    number, the Facebook Page or the Telegram bot, shared by every channel on it)."""
    config = channel.config
    account = config.get("phone_number_id") or config.get("page_id") or config.get("bot_id")
    window = RateLimitItemPerSecond(slots_per_second(channel.send_rate_per_second))
    return window, str(account or channel.id)


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


def _recipient_window(channel: ChannelInfo, recipient_id: str) -> tuple[RateLimitItem, str] | None:
    """The send rate of one recipient, where the provider limits it (Telegram: a chat), and
    the key its slots are counted under (the bot's, so every channel on it shares them)."""
    rate_of = getattr(ADAPTERS.get(channel.provider), "recipient_rate", None)
    if rate_of is None:
        return None
    config = channel.config
    account = config.get("bot_id") or config.get("page_id") or channel.id
    return rate_of(recipient_id), f"{account}:{recipient_id}"


async def take_recipient_slot(
    limiter: RateLimiter, channel: ChannelInfo, recipient_id: str, max_wait: float = 30.0
) -> bool:
    """Waits for a send slot of one recipient (Telegram: 1 a second in a chat, 20 a minute
    in a group; Slack: 1 a second in a conversation), shared by every worker; True at once
    where the provider sets no such limit. False if none came within `max_wait` seconds."""
    window = _recipient_window(channel, recipient_id)
    if window is None:
        return True
    item, key = window
    strategy = MovingWindowRateLimiter(limiter.storage)
    step = item.get_expiry() / item.amount
    waited = 0.0
    while not await strategy.hit(item, "send-to", key):
        if waited >= max_wait:
            return False
        await asyncio.sleep(step)
        waited += step
    return True
