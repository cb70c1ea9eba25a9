"""The Slack adapter: a Slack app's bot token (`xoxb-…`, the channel's access token) and its
signing secret (the channel's app secret), on the Web API at SLACK_API_BASE_URL.

One channel is one Slack workspace where the app is installed. Its webhook URL serves as both
the Events API request URL and the interactivity request URL (docs/channels-slack.md)."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
from limits import RateLimitItem, RateLimitItemPerSecond

from botplatform.channels.base import (
    ChannelInfo,
    ProviderSendError,
    WebhookRejected,
    not_configured,
)
from botplatform.channels.messages import (
    Capability,
    InboundEvent,
    Media,
    MessageType,
    OutboundMessage,
    SendResult,
)
from botplatform.channels.slack import outbound
from botplatform.channels.slack.errors import classify
from botplatform.channels.slack.parse import (
    App,
    challenge,
    event_id,
    message_id,
    parse,
    split_message_id,
)
from botplatform.config import Settings

#: Slack's replay window: a request signed longer ago than this is refused.
REPLAY_WINDOW_SECONDS = 300
#: Methods that take a JSON body; the rest are sent form-encoded, as every method accepts.
JSON_METHODS = frozenset(
    {"chat.postMessage", "chat.update", "reactions.add", "files.completeUploadExternal"}
)


def verify_signature(
    headers: Mapping[str, str], body: bytes, signing_secret: str | None, now: float
) -> None:
    """Slack's v0 scheme: `v0=` HMAC-SHA256 of `v0:{timestamp}:{raw body}` with the signing
    secret, compared in constant time; a timestamp over 5 minutes from `now` is refused even
    with a valid HMAC (a replayed request)."""
    stamp = _header(headers, "x-slack-request-timestamp")
    signature = _header(headers, "x-slack-signature")
    if not signing_secret or not stamp.isdigit() or not signature.startswith("v0="):
        raise WebhookRejected()
    if abs(now - int(stamp)) > REPLAY_WINDOW_SECONDS:
        raise WebhookRejected()
    base = b"v0:" + stamp.encode() + b":" + body
    expected = "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        raise WebhookRejected()


def _header(headers: Mapping[str, str], name: str) -> str:
    """A header by name whatever its case (request headers are; a plain mapping may not be)."""
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), "")
    return value


def sign(body: bytes, signing_secret: str, stamp: int) -> dict[str, str]:
    """The headers Slack sends with `body` (the sandbox and the tests sign with them)."""
    base = b"v0:" + str(stamp).encode() + b":" + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(stamp), "X-Slack-Signature": f"v0={digest}"}


async def call(
    http: httpx.AsyncClient,
    base: str,
    method: str,
    token: str | None,
    data: Mapping[str, Any],
    *,
    sending: bool = False,
) -> dict[str, Any]:
    """One Web API call; its answer when `ok`, else the classified `ProviderSendError`.
    `sending`: a failure after the request left is ambiguous (the message may be posted)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{base}/{method}"
    try:
        if method in JSON_METHODS:
            response = await http.post(url, json=dict(data), headers=headers)
        else:
            response = await http.post(url, data=dict(data), headers=headers)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        raise ProviderSendError(retryable=True, code="network", title=str(exc)) from exc
    except httpx.HTTPError as exc:
        raise ProviderSendError(
            retryable=True, code="network", title=str(exc) or type(exc).__name__, ambiguous=sending
        ) from exc
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    if response.status_code >= 400 or body.get("ok") is not True:
        raise classify(response.status_code, body, response.headers)
    return body


async def auth_test(http: httpx.AsyncClient, settings: Settings, token: str) -> dict[str, Any]:
    """Who the bot token belongs to: team_id, team, user_id (the bot user), bot_id, url."""
    return await call(http, api_base(settings), "auth.test", token, {})


#: The bot scopes the platform uses (deploy/slack/manifest.yml lists the same).
BOT_SCOPES = (
    "app_mentions:read", "channels:history", "groups:history", "im:history", "im:read",
    "im:write", "chat:write", "reactions:read", "reactions:write", "files:read", "files:write",
    "users:read",
)  # fmt: skip


async def oauth_access(
    http: httpx.AsyncClient, settings: Settings, code: str, redirect_uri: str
) -> dict[str, Any]:
    """ "Add to Slack": the code Slack redirected the browser with → the bot token, the bot
    user and the Slack workspace it was installed in."""
    data = {
        "client_id": settings.slack_client_id,
        "client_secret": settings.slack_client_secret,
        "code": code,
        "redirect_uri": redirect_uri,
    }
    return await call(http, api_base(settings), "oauth.v2.access", None, data)


def api_base(settings: Settings) -> str:
    return settings.slack_api_base_url.rstrip("/")


#: Slack's rate for posting into one conversation.
CONVERSATION_RATE = RateLimitItemPerSecond(1)


class SlackAdapter:
    provider: ClassVar[str] = "slack"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.BUTTONS, Capability.LISTS, Capability.MEDIA, Capability.EDITS}
    )
    #: A thread is a conversation (`InboundMessage.thread`, `Conversation.thread_key`).
    threaded: ClassVar[bool] = True

    def __init__(self, channel: ChannelInfo, settings: Settings, http: httpx.AsyncClient) -> None:
        self.channel = channel
        self.http = http
        # Channels installed through the platform's own app use its signing secret.
        self.signing_secret = channel.app_secret or settings.slack_signing_secret
        self.token = channel.access_token
        self.base = api_base(settings)
        config = channel.config
        self.app = App(
            bot_user_id=config.get("bot_user_id"),
            bot_id=config.get("bot_id"),
            team_id=config.get("team_id"),
        )

    # -- inbound --------------------------------------------------------------------------

    def handshake(self, params: Mapping[str, str]) -> str | None:
        return None  # Slack verifies the URL by POST (`immediate_answer`), never by GET

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        verify_signature(headers, body, self.signing_secret, time.time())

    def immediate_answer(self, body: bytes) -> str | None:
        """Slack's `url_verification`: its challenge, answered at once, nothing stored."""
        return challenge(body)

    def dedupe_key(self, body: bytes) -> str:
        """Slack retries an event (X-Slack-Retry-Num) with the same `event_id`: that is the
        key. Interactivity requests have none: their body's hash."""
        found = event_id(body)
        subject = f"slack-event:{found}".encode() if found else body
        return hashlib.sha256(subject).hexdigest()

    @staticmethod
    def recipient_rate(recipient_id: str) -> RateLimitItem:
        """Slack posts at most one message a second into a conversation (`channels.policy`
        keeps the bucket, shared by every worker)."""
        return CONVERSATION_RATE

    def statuses_only(self, body: bytes) -> bool:
        return False  # Slack sends no delivery statuses

    def parse(self, body: bytes) -> list[InboundEvent]:
        return parse(body, self.app)

    # -- outbound -------------------------------------------------------------------------

    def _token(self) -> str:
        if not self.token:
            raise not_configured(
                "bot token",
                "set access_token to the app's xoxb- token "
                "(PATCH /api/v1/workspaces/{ws}/channels/{id}).",
            )
        return self.token

    async def _call(self, method: str, data: Mapping[str, Any], sending: bool = False) -> Any:
        return await call(self.http, self.base, method, self._token(), data, sending=sending)

    async def send(self, message: OutboundMessage) -> SendResult:
        if message.mark_read or message.sender_action:
            # Slack has no read receipts or typing indicator for apps: nothing to tell it.
            return SendResult(
                provider_message_id=message.mark_read or f"action:{message.idempotency_key}"
            )
        try:
            if message.edit_of:
                return await self._edit(message, message.edit_of)
            if message.content.type == MessageType.REACTION:
                return await self._react(message)
            media = message.content.media
            if media is not None and media.provider_media_id and not media.url:
                return await self._share_file(message, media)
            request = outbound.post_body(message, message.recipient_id)
        except ValueError as exc:
            raise ProviderSendError(retryable=False, code="unsupported", title=str(exc)) from exc
        body = await self._call("chat.postMessage", request, sending=True)
        try:
            return SendResult(
                provider_message_id=message_id(str(body["channel"]), str(body["ts"])), raw=body
            )
        except KeyError as exc:
            raise ProviderSendError(
                retryable=False, code="bad_response", title="chat.postMessage gave no ts"
            ) from exc

    async def show_choice(self, offer_id: str, offer_text: str, chosen: str) -> None:
        """The message that offered buttons now shows the customer's choice instead of them
        (chat.update), so it reads as it happened and cannot be pressed twice."""
        channel, ts = split_message_id(offer_id)
        text = outbound.escape(offer_text)
        choice = f"✅ {outbound.escape(chosen)}"
        blocks = [outbound.section(text or " "), outbound.context(choice)]
        data = {"channel": channel, "ts": ts, "text": f"{text}\n{choice}", "blocks": blocks}
        await self._call("chat.update", data)

    async def _edit(self, message: OutboundMessage, provider_id: str) -> SendResult:
        """One of our messages with new text (chat.update), escaped as a new one would be."""
        channel, ts = split_message_id(provider_id)
        text = outbound.escape(message.content.text or "")
        body = await self._call("chat.update", {"channel": channel, "ts": ts, "text": text})
        return SendResult(provider_message_id=provider_id, raw=body)

    async def _react(self, message: OutboundMessage) -> SendResult:
        body = await self._call("reactions.add", outbound.reaction_body(message), sending=True)
        return SendResult(provider_message_id=f"action:{message.idempotency_key}", raw=body)

    async def _dm_channel(self, recipient: str) -> str:
        """A user id's DM channel with the app (files are shared to channels, not users)."""
        if not recipient.startswith(("U", "W")):
            return recipient
        body = await self._call("conversations.open", {"users": recipient})
        return str(body.get("channel", {}).get("id") or recipient)

    async def _share_file(self, message: OutboundMessage, media: Media) -> SendResult:
        """Second half of the upload: files.completeUploadExternal shares the uploaded file
        (upload_media) in the conversation, with its caption as the message."""
        channel = await self._dm_channel(message.recipient_id)
        data: dict[str, Any] = {
            "files": [
                {"id": media.provider_media_id, "title": media.filename or media.caption or "file"}
            ],
            "channel_id": channel,
        }
        if media.caption:
            data["initial_comment"] = media.caption
        if message.reply_to:
            data["thread_ts"] = message.reply_to.partition(":")[2]
        body = await self._call("files.completeUploadExternal", data, sending=True)
        return SendResult(provider_message_id=f"file:{media.provider_media_id}", raw=body)

    async def upload_media(self, data: bytes, mime_type: str, filename: str) -> str:
        """First half: files.getUploadURLExternal, then the bytes to the URL it gives. The
        file id is shared by a later send (`_share_file`)."""
        ticket = await self._call(
            "files.getUploadURLExternal", {"filename": filename, "length": str(len(data))}
        )
        upload_url, file_id = ticket.get("upload_url"), ticket.get("file_id")
        if not upload_url or not file_id:
            raise ProviderSendError(retryable=False, code="bad_response", title="no upload_url")
        try:
            response = await self.http.post(
                str(upload_url), files={"file": (filename, data, mime_type)}
            )
        except httpx.HTTPError as exc:
            raise ProviderSendError(retryable=True, code="network", title=str(exc)) from exc
        if response.status_code >= 400:
            raise classify(response.status_code, {}, response.headers)
        return str(file_id)

    async def fetch_media(self, media: Media) -> tuple[bytes, str]:
        """A file shared with the app: its private URL, read with the bot token."""
        if not media.url:
            raise ProviderSendError(retryable=False, code="no_media_url", title="no media URL")
        try:
            response = await self.http.get(
                media.url, headers={"Authorization": f"Bearer {self._token()}"}
            )
        except httpx.HTTPError as exc:
            raise ProviderSendError(retryable=True, code="network", title=str(exc)) from exc
        if response.status_code >= 400:
            raise classify(response.status_code, {}, response.headers)
        mime = media.mime_type or response.headers.get("content-type", "application/octet-stream")
        return response.content, mime.split(";")[0].strip()

    async def profile(self, external_id: str) -> dict[str, str | None]:
        """The user's name and avatar from users.info."""
        body = await self._call("users.info", {"user": external_id})
        user: dict[str, Any] = body["user"] if isinstance(body.get("user"), dict) else {}
        profile: dict[str, Any] = user["profile"] if isinstance(user.get("profile"), dict) else {}
        name = (
            profile.get("display_name")
            or profile.get("real_name")
            or user.get("real_name")
            or user.get("name")
        )
        picture = profile.get("image_192") or profile.get("image_72")
        return {"name": name or None, "picture": picture or None}
