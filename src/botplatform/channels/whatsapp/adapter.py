"""The WhatsApp Business Cloud API adapter."""

from __future__ import annotations

import re
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
    OutboundMessage,
    SendResult,
)
from botplatform.channels.whatsapp.errors import classify
from botplatform.channels.whatsapp.outbound import graph_body
from botplatform.channels.whatsapp.parse import parse
from botplatform.config import Settings

_STATUSES_KEY = re.compile(rb'"statuses"\s*:')
_MESSAGES_KEY = re.compile(rb'"messages"\s*:')


class WhatsAppAdapter:
    provider: ClassVar[str] = "whatsapp"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.BUTTONS, Capability.LISTS, Capability.MEDIA, Capability.TEMPLATES}
    )

    def __init__(self, channel: ChannelInfo, settings: Settings, http: httpx.AsyncClient) -> None:
        self.channel = channel
        self.http = http
        # Channels without their own Meta app use the platform-wide one.
        self.app_secret = channel.app_secret or settings.facebook_app_secret
        self.access_token = channel.access_token or settings.whatsapp_api_key
        self.base = f"{settings.whatsapp_api_base_url.rstrip('/')}/{settings.whatsapp_api_version}"
        self.phone_number_id = str(channel.config.get("phone_number_id", ""))

    def handshake(self, params: Mapping[str, str]) -> str | None:
        return hub.handshake(params, self.channel.verify_token)

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        hub.verify(headers, body, self.app_secret)

    def statuses_only(self, body: bytes) -> bool:
        # A `messages` change (its `field`) carries a `statuses` or a `messages` key (or
        # both) in its value; templates and account updates carry neither.
        return _STATUSES_KEY.search(body) is not None and _MESSAGES_KEY.search(body) is None

    def parse(self, body: bytes) -> list[InboundEvent]:
        return parse(load_json(body))

    def _auth(self) -> dict[str, str]:
        if not self.access_token:  # checked before any call: Meta's 401 would say less
            raise not_configured(
                "access token",
                "set access_token on the channel (PATCH /api/v1/workspaces/{ws}/channels/{id}) "
                "or WHATSAPP_API_KEY for the whole platform.",
            )
        return {"Authorization": f"Bearer {self.access_token}"}

    async def send(self, message: OutboundMessage) -> SendResult:
        url = f"{self.base}/{self.phone_number_id}/messages"
        status, body = await post_json(url, graph_body(message), self._auth())
        body = body if body is not None else {}
        if status >= 400:
            raise classify(status, body)
        if message.mark_read:
            return SendResult(provider_message_id=message.mark_read, raw=body)
        try:
            return SendResult(provider_message_id=str(body["messages"][0]["id"]), raw=body)
        except (KeyError, IndexError, TypeError) as exc:
            raise ProviderSendError(
                retryable=False,
                code="bad_response",
                title="the Graph API answered without a message id",
            ) from exc

    async def upload_media(self, data: bytes, mime_type: str, filename: str) -> str:
        url = f"{self.base}/{self.phone_number_id}/media"
        files = {"file": (filename, data, mime_type)}
        form = {"messaging_product": "whatsapp", "type": mime_type}
        try:
            response = await self.http.post(url, files=files, data=form, headers=self._auth())
        except httpx.HTTPError as exc:
            raise ProviderSendError(retryable=True, code="network", title=str(exc)) from exc
        body = _json(response)
        if response.status_code >= 400 or not isinstance(body, dict) or "id" not in body:
            raise classify(response.status_code, body)
        return str(body["id"])

    async def fetch_media(self, media: Media) -> tuple[bytes, str]:
        """Media id → its short-lived URL → the bytes, both calls with the channel's token."""
        if not media.provider_media_id:
            raise ProviderSendError(retryable=False, code="no_media_id", title="no media id")
        meta = await self.http.get(f"{self.base}/{media.provider_media_id}", headers=self._auth())
        if meta.status_code >= 400:
            raise classify(meta.status_code, _json(meta))
        info = _json(meta)
        download = await self.http.get(str(info.get("url", "")), headers=self._auth())
        if download.status_code >= 400:
            raise classify(download.status_code, _json(download))
        mime = str(info.get("mime_type") or download.headers.get("content-type", ""))
        return download.content, mime.split(";")[0].strip()


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {}
