"""Every channel provider in one place. A provider listed in PROVIDERS without an adapter
answers a clear "not available" error; none is faked."""

from __future__ import annotations

import httpx

from botplatform.channels.base import ChannelAdapter, ChannelInfo
from botplatform.channels.instagram.adapter import InstagramAdapter
from botplatform.channels.messages import Capability
from botplatform.channels.messenger.adapter import MessengerAdapter
from botplatform.channels.slack.adapter import SlackAdapter
from botplatform.channels.telegram.adapter import TelegramAdapter
from botplatform.channels.webchat.adapter import WebchatAdapter
from botplatform.channels.whatsapp.adapter import WhatsAppAdapter
from botplatform.config import Settings
from botplatform.kit.errors import NotAvailable

ADAPTERS: dict[str, type[ChannelAdapter]] = {
    "whatsapp": WhatsAppAdapter,
    "messenger": MessengerAdapter,
    "instagram": InstagramAdapter,
    "webchat": WebchatAdapter,
    "slack": SlackAdapter,
    "telegram": TelegramAdapter,
}
#: The channels of SPEC §3; those without an adapter yet are refused plainly.
PROVIDERS = ("whatsapp", "messenger", "instagram", "webchat", "telegram", "slack")


def not_available(provider: str) -> NotAvailable:
    return NotAvailable(
        f"The {provider} channel is not available yet.",
        code="channel_not_available",
        details={"provider": provider, "available": sorted(ADAPTERS)},
    )


def adapter_for(
    channel: ChannelInfo, settings: Settings, http: httpx.AsyncClient
) -> ChannelAdapter:
    adapter = ADAPTERS.get(channel.provider)
    if adapter is None:
        raise not_available(channel.provider)
    return adapter(channel, settings, http)


def threaded(provider: str) -> bool:
    """A channel whose people have several conversations, one a thread (Slack)."""
    return bool(getattr(ADAPTERS.get(provider), "threaded", False))


def capabilities_of(provider: str) -> frozenset[Capability]:
    """What a provider's channel can show besides text (nothing, for one without an adapter)."""
    adapter = ADAPTERS.get(provider)
    return adapter.capabilities if adapter is not None else frozenset()
