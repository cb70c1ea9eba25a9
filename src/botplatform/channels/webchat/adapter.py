"""The website chat widget's adapter. Sending is ours end to end: a reply is pushed to the
visitor's open sockets and long-polls through the visitor hub (any process may hold them),
and stays readable from the history, so a visitor who is away sees it on their next visit.
Nothing arrives on the provider webhook route: visitors write through the visitor API
(`channels.webchat.endpoints`), which stores their events as this adapter parses them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import httpx

from botplatform.channels.base import ChannelInfo, ProviderSendError, WebhookRejected
from botplatform.channels.messages import (
    Capability,
    InboundEvent,
    Media,
    MessageType,
    OutboundMessage,
    SendResult,
)
from botplatform.channels.webchat import wire
from botplatform.channels.webchat.hub import VisitorHub, hub_for
from botplatform.channels.webchat.parse import OUTBOUND_PREFIX, parse
from botplatform.config import Settings
from botplatform.kit.clock import utcnow
from botplatform.media.storage import MediaNotFound, MediaStorage, create_storage


class WebchatAdapter:
    provider: ClassVar[str] = "webchat"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.BUTTONS, Capability.LISTS, Capability.MEDIA, Capability.TYPING}
    )

    def __init__(self, channel: ChannelInfo, settings: Settings, http: httpx.AsyncClient) -> None:
        self.channel = channel
        self.settings = settings
        self.hub: VisitorHub = hub_for(settings.redis_url)

    def handshake(self, params: Mapping[str, str]) -> str | None:
        return None  # no provider subscribes to this channel

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        # The webhook route is not a door into this channel: visitors use the visitor API.
        raise WebhookRejected("The website chat widget takes messages through /widget/ only.")

    def statuses_only(self, body: bytes) -> bool:
        return False  # a visitor sends messages, never delivery statuses

    def parse(self, body: bytes) -> list[InboundEvent]:
        return parse(body)

    async def send(self, message: OutboundMessage) -> SendResult:
        channel_id = str(self.channel.id)
        visitor = message.recipient_id
        if message.mark_read:  # the agent has seen the visitor's messages
            await self.hub.publish(channel_id, visitor, {"type": "seen", "upto": message.mark_read})
            return SendResult(provider_message_id=message.mark_read)
        if message.sender_action:
            typing = message.sender_action == "typing_on"
            await self.hub.publish(channel_id, visitor, {"type": "typing", "on": typing})
            return SendResult(provider_message_id=f"action:{message.idempotency_key}")
        if message.content.type in (MessageType.TEMPLATE, MessageType.REACTION):
            raise ProviderSendError(
                retryable=False,
                code="unsupported",
                title=f"The chat widget shows no {message.content.type.value} messages.",
            )
        shown = wire.of_outbound(message, utcnow())
        await self.hub.publish(channel_id, visitor, {"type": "message", "message": shown})
        return SendResult(provider_message_id=f"{OUTBOUND_PREFIX}{shown['id']}")

    async def fetch_media(self, media: Media) -> tuple[bytes, str]:
        """A visitor's upload: already in our storage, under the key the upload gave it."""
        if not media.provider_media_id:
            raise ProviderSendError(retryable=False, code="no_media", title="no upload key")
        storage: MediaStorage = create_storage(self.settings)
        try:
            return await storage.get(media.provider_media_id)
        except (MediaNotFound, ValueError) as exc:
            raise ProviderSendError(
                retryable=False, code="media_missing", title="the upload is gone"
            ) from exc

    async def upload_media(self, data: bytes, mime_type: str, filename: str) -> str:
        raise ProviderSendError(
            retryable=False,
            code="unsupported",
            title="The chat widget takes files by link: send media with a https link.",
        )
