"""The Messenger adapter (Send API with a Page access token); Instagram Direct is the same
API with its own object and a few shapes of its own (`channels/instagram`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx

from botplatform.channels import hub
from botplatform.channels.base import (
    ChannelInfo,
    ProviderSendError,
    load_json,
    not_configured,
    post_json,
)
from botplatform.channels.messages import (
    Capability,
    InboundEvent,
    Media,
    MessageType,
    OutboundMessage,
    SendResult,
)
from botplatform.channels.messenger.errors import classify
from botplatform.channels.messenger.outbound import ATTACHMENT_TYPES, send_body
from botplatform.channels.messenger.parse import parse
from botplatform.config import Settings

#: The profile fields Messenger gives for a PSID (Instagram's are in its adapter).
PROFILE_FIELDS = "first_name,last_name,profile_pic"


class MessengerAdapter:
    provider: ClassVar[str] = "messenger"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.BUTTONS, Capability.LISTS, Capability.MEDIA, Capability.TYPING}
    )
    instagram: ClassVar[bool] = False
    profile_fields: ClassVar[str] = PROFILE_FIELDS

    def __init__(self, channel: ChannelInfo, settings: Settings, http: httpx.AsyncClient) -> None:
        self.channel = channel
        self.http = http
        # Channels without their own Meta app use the platform-wide one.
        self.app_secret = channel.app_secret or settings.facebook_app_secret
        self.access_token = channel.access_token
        base = settings.messenger_api_base_url.rstrip("/")
        self.base = f"{base}/{settings.messenger_api_version}"

    def handshake(self, params: Mapping[str, str]) -> str | None:
        return hub.handshake(params, self.channel.verify_token)

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        hub.verify(headers, body, self.app_secret)

    def statuses_only(self, body: bytes) -> bool:
        return False  # delivery and read receipts are few here: the message lane takes them

    def parse(self, body: bytes) -> list[InboundEvent]:
        return parse(load_json(body))

    def _auth(self) -> dict[str, str]:
        if not self.access_token:  # checked before any call: Meta's answer would say less
            raise not_configured(
                "Page access token",
                "set access_token on the channel (PATCH /api/v1/workspaces/{ws}/channels/{id}).",
            )
        return {"Authorization": f"Bearer {self.access_token}"}

    async def send(self, message: OutboundMessage) -> SendResult:
        try:
            payload = send_body(message, instagram=self.instagram)
        except ValueError as exc:
            raise ProviderSendError(retryable=False, code="unsupported", title=str(exc)) from exc
        url = f"{self.base}/me/messages"
        status, body = await post_json(url, payload, self._auth())
        body = body if isinstance(body, dict) else {}
        if status >= 400:
            raise classify(status, body)
        if "message_id" in body:
            return SendResult(provider_message_id=str(body["message_id"]), raw=body)
        if message.mark_read:
            return SendResult(provider_message_id=message.mark_read, raw=body)
        if message.sender_action or message.content.type == MessageType.REACTION:
            # Sender actions (typing, reactions) create no message: an id of our own.
            return SendResult(provider_message_id=f"action:{message.idempotency_key}", raw=body)
        raise ProviderSendError(
            retryable=False, code="bad_response", title="the Send API gave no message id"
        )

    async def upload_media(self, data: bytes, mime_type: str, filename: str) -> str:
        """The Attachment Upload API: a reusable attachment id for later sends."""
        kind = _attachment_type(mime_type)
        form = {
            "message": json.dumps({"attachment": {"type": kind, "payload": {"is_reusable": True}}})
        }
        files = {"filedata": (filename, data, mime_type)}
        url = f"{self.base}/me/message_attachments"
        try:
            response = await self.http.post(url, data=form, files=files, headers=self._auth())
        except httpx.HTTPError as exc:
            raise ProviderSendError(retryable=True, code="network", title=str(exc)) from exc
        body = _json(response)
        if response.status_code >= 400 or "attachment_id" not in body:
            raise classify(response.status_code, body)
        return str(body["attachment_id"])

    async def fetch_media(self, media: Media) -> tuple[bytes, str]:
        """Meta's attachment URLs are signed CDN links: fetched as they are."""
        if not media.url:
            raise ProviderSendError(retryable=False, code="no_media_url", title="no media URL")
        try:
            response = await self.http.get(media.url)
        except httpx.HTTPError as exc:
            raise ProviderSendError(retryable=True, code="network", title=str(exc)) from exc
        if response.status_code >= 400:
            raise classify(response.status_code, _json(response))
        mime = response.headers.get("content-type", "application/octet-stream")
        return response.content, mime.split(";")[0].strip()

    async def profile(self, external_id: str) -> dict[str, str | None]:
        """The contact's name and picture from the Graph API."""
        url = f"{self.base}/{external_id}"
        try:
            response = await self.http.get(
                url, params={"fields": self.profile_fields}, headers=self._auth()
            )
        except httpx.HTTPError as exc:
            raise ProviderSendError(retryable=True, code="network", title=str(exc)) from exc
        body = _json(response)
        if response.status_code >= 400:
            raise classify(response.status_code, body)
        name = body.get("name") or " ".join(
            str(body[k]) for k in ("first_name", "last_name") if body.get(k)
        )
        return {"name": name or None, "picture": body.get("profile_pic")}


def _attachment_type(mime_type: str) -> str:
    head = mime_type.split("/")[0]
    return head if head in ("image", "video", "audio") else "file"


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


__all__ = ["ATTACHMENT_TYPES", "MessengerAdapter"]
