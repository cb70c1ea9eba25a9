"""The Telegram adapter: a bot, by its token, through the Bot API
(`{TELEGRAM_API_BASE_URL}/bot<token>/<method>`).

Webhooks carry no signature: Telegram sends back the `secret_token` we gave `setWebhook` in
`X-Telegram-Bot-Api-Secret-Token` (the channel's verify token), compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import mimetypes
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import httpx
from limits import RateLimitItem, RateLimitItemPerMinute, RateLimitItemPerSecond

from botplatform.channels.base import (
    ChannelInfo,
    MalformedPayload,
    ProviderSendError,
    WebhookRejected,
    load_json,
    not_configured,
    post_json,
)
from botplatform.channels.messages import (
    Capability,
    InboundEvent,
    InboundMessage,
    Media,
    OutboundMessage,
    SendResult,
)
from botplatform.channels.telegram.errors import classify
from botplatform.channels.telegram.outbound import UPLOAD_PREFIX, Call, call_for
from botplatform.channels.telegram.parse import (
    BotIdentity,
    full_name,
    message_key,
    parse,
    update_id,
)
from botplatform.config import Settings
from botplatform.kit.logging import get_logger
from botplatform.media.storage import create_storage, media_key

SECRET_HEADER = "x-telegram-bot-api-secret-token"  # noqa: S105 - a header name
CALLBACK_PREFIX = "callback:"
#: Telegram's limits on a bot's sends: 1 message a second in one chat, 20 a minute in a group.
PRIVATE_CHAT_RATE = RateLimitItemPerSecond(1)
GROUP_CHAT_RATE = RateLimitItemPerMinute(20)
#: The avatar size asked for (px): Telegram keeps each photo in 160, 320 and 640.
AVATAR_SIDE = 160

log = get_logger("botplatform.channels")


#: A bot token where the Bot API puts it: in the URL path.
_TOKEN_IN_PATH = re.compile(r"/(file/)?bot[0-9]+:[A-Za-z0-9_-]+")


class RedactBotTokens(logging.Filter):
    """The Bot API carries the bot's token in every URL, and httpx logs each request's URL:
    the token is cut out of those lines before any handler writes them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "/bot" in message:
            record.msg, record.args = _TOKEN_IN_PATH.sub(r"/\1bot<token>", message), None
        return True


logging.getLogger("httpx").addFilter(RedactBotTokens())


def bot_api(settings: Settings, token: str, method: str) -> str:
    return f"{settings.telegram_api_base_url.rstrip('/')}/bot{token}/{method}"


def file_url(settings: Settings, token: str, file_path: str) -> str:
    return f"{settings.telegram_api_base_url.rstrip('/')}/file/bot{token}/{file_path}"


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def result_of(status: int, body: Any) -> Any:
    """The `result` of a successful call; the classified error of any other."""
    if status >= 400 or not isinstance(body, dict) or body.get("ok") is not True:
        raise classify(status, body)
    return body.get("result")


class TelegramAdapter:
    provider: ClassVar[str] = "telegram"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.BUTTONS, Capability.LISTS, Capability.MEDIA, Capability.TYPING,
         Capability.EDITS}
    )  # fmt: skip

    def __init__(self, channel: ChannelInfo, settings: Settings, http: httpx.AsyncClient) -> None:
        self.channel = channel
        self.settings = settings
        self.http = http
        self.token = channel.access_token
        config = channel.config
        bot_id = str(config.get("bot_id") or "")
        self.bot = BotIdentity(
            id=int(bot_id) if bot_id.lstrip("-").isdigit() else None,
            username=config.get("bot_username") or None,
        )

    # -- inbound ----------------------------------------------------------------------------

    def handshake(self, params: Mapping[str, str]) -> str | None:
        return None  # Telegram makes no GET check: setWebhook is the whole handshake

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        expected = self.channel.verify_token or ""
        given = headers.get(SECRET_HEADER, "")
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            raise WebhookRejected(
                "The X-Telegram-Bot-Api-Secret-Token header is missing or wrong.",
                code="invalid_secret_token",
            )

    def dedupe_key(self, body: bytes) -> str | None:
        """An update is stored once per bot by its `update_id` (Telegram numbers each bot's
        updates): a redelivery is the same row even if its JSON was re-encoded."""
        try:
            number = update_id(load_json(body))
        except MalformedPayload:
            return None
        return None if number is None else hashlib.sha256(f"update:{number}".encode()).hexdigest()

    def statuses_only(self, body: bytes) -> bool:
        return False  # Telegram sends no delivery statuses to bots

    def parse(self, body: bytes) -> list[InboundEvent]:
        return parse(load_json(body), self.bot)

    async def acknowledge(self, events: Sequence[object]) -> None:
        """Answers the callback queries among `events` (`answerCallbackQuery`), so the
        client stops its spinner; best effort, after the events are stored."""
        for event in events:
            if isinstance(event, InboundMessage) and event.provider_message_id.startswith(
                CALLBACK_PREFIX
            ):
                query_id = event.provider_message_id.removeprefix(CALLBACK_PREFIX)
                try:
                    await self.call("answerCallbackQuery", {"callback_query_id": query_id})
                except ProviderSendError as exc:
                    log.info(
                        "callback_not_answered", channel_id=str(self.channel.id), code=exc.code
                    )

    # -- outbound ---------------------------------------------------------------------------

    def _url(self, method: str) -> str:
        if not self.token:
            raise not_configured(
                "bot token",
                "set access_token on the channel (PATCH /api/v1/workspaces/{ws}/channels/{id}).",
            )
        return bot_api(self.settings, self.token, method)

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        """One Bot API call on the message path; its `result`."""
        status, body = await post_json(self._url(method), params, {})
        return result_of(status, body)

    @staticmethod
    def recipient_rate(recipient_id: str) -> RateLimitItem:
        """The send rate of one chat: a group (negative id) takes 20 a minute, a person 1 a
        second (`channels.policy` keeps the shared bucket)."""
        return GROUP_CHAT_RATE if recipient_id.startswith("-") else PRIVATE_CHAT_RATE

    async def send(self, message: OutboundMessage) -> SendResult:
        try:
            request = call_for(message)
        except ValueError as exc:
            raise ProviderSendError(retryable=False, code="unsupported", title=str(exc)) from exc
        if request is None:
            # Nothing for Telegram to do (bots cannot mark messages read; typing ends alone).
            return SendResult(
                provider_message_id=message.mark_read or f"action:{message.idempotency_key}"
            )
        if request.upload_key is not None:
            result = await self._upload(request)
        else:
            result = await self.call(request.method, request.params)
        if isinstance(result, dict) and "message_id" in result:
            chat = result.get("chat")
            chat_id = chat.get("id") if isinstance(chat, dict) else None
            chat_id = chat_id if chat_id is not None else message.recipient_id
            return SendResult(
                provider_message_id=message_key(chat_id, result["message_id"]), raw=result
            )
        if result is True:  # reactions, chat actions, an edit of an inline message
            pid = message.edit_of or f"action:{message.idempotency_key}"
            return SendResult(provider_message_id=pid, raw={"result": True})
        raise ProviderSendError(
            retryable=False, code="bad_response", title="the Bot API gave no message id"
        )

    async def _upload(self, request: Call) -> Any:
        """A file from our storage, sent as multipart with the rest of the call's fields."""
        key = request.upload_key or ""
        if not key.startswith(f"ws/{self.channel.workspace_id}/"):
            raise ProviderSendError(
                retryable=False, code="media_not_found", title="no such uploaded media"
            )
        try:
            data, mime = await create_storage(self.settings).get(key)
        except Exception as exc:  # MediaNotFound, or storage unreachable (retried)
            retryable = type(exc).__name__ != "MediaNotFound"
            raise ProviderSendError(
                retryable=retryable, code="media_not_found", title=str(exc)
            ) from exc
        form = {k: v if isinstance(v, str) else _form_value(v) for k, v in request.params.items()}
        name = key.rsplit("/", 1)[-1]
        files = {request.upload_field or "document": (name, data, mime)}
        try:
            response = await self.http.post(self._url(request.method), data=form, files=files)
        except httpx.HTTPError as exc:
            raise ProviderSendError(retryable=True, code="network", title=str(exc)) from exc
        return result_of(response.status_code, _json(response))

    async def upload_media(self, data: bytes, mime_type: str, filename: str) -> str:
        """The Bot API takes files with the send itself, not ahead of it: the file waits in
        our storage, and its id (`upload:<key>`) sends it as multipart when it is used."""
        extension = (mimetypes.guess_extension(mime_type) or ".bin").lstrip(".")
        key = media_key(self.channel.workspace_id, hashlib.sha256(data).hexdigest(), extension)
        await create_storage(self.settings).put(key, data, mime_type)
        return f"{UPLOAD_PREFIX}{key}"

    async def fetch_media(self, media: Media) -> tuple[bytes, str]:
        """`getFile` names the file's path; its bytes come from the file endpoint."""
        if not media.provider_media_id:
            raise ProviderSendError(retryable=False, code="no_media_id", title="no media id")
        info = await self._get("getFile", {"file_id": media.provider_media_id})
        path = info.get("file_path") if isinstance(info, dict) else None
        if not path:
            raise ProviderSendError(
                retryable=False, code="no_file_path", title="getFile gave no path"
            )
        try:
            response = await self.http.get(file_url(self.settings, self._token(), str(path)))
        except httpx.HTTPError as exc:
            raise ProviderSendError(retryable=True, code="network", title=str(exc)) from exc
        if response.status_code >= 400:
            raise classify(response.status_code, _json(response))
        # Telegram's file server often says only octet-stream: then the update's own type.
        served = response.headers.get("content-type", "").split(";")[0].strip()
        generic = served in ("", "application/octet-stream")
        mime = (media.mime_type or served) if generic else served
        return response.content, mime or "application/octet-stream"

    async def profile(self, external_id: str) -> dict[str, str | None]:
        """The chat's name (`getChat`): a person's first and last name, a group's title.
        Telegram serves avatars only through URLs carrying the bot token, which must never
        reach a browser, so no picture URL is kept (see `avatar`)."""
        chat = await self._get("getChat", {"chat_id": external_id})
        return {"name": full_name(chat) if isinstance(chat, dict) else None, "picture": None}

    async def avatar(self, external_id: str) -> tuple[bytes, str] | None:
        """The person's current profile photo, downloaded here (`getUserProfilePhotos`, then
        `getFile` and the file endpoint), for the platform to store and serve itself: its
        URL carries the bot token. None when they show none; groups (negative ids) have
        none to ask for."""
        if not external_id.isdigit():
            return None
        found = await self._get("getUserProfilePhotos", {"user_id": int(external_id), "limit": 1})
        photos = found.get("photos") if isinstance(found, dict) else None
        if not isinstance(photos, list) or not photos or not isinstance(photos[0], list):
            return None
        sizes = sorted(
            (s for s in photos[0] if isinstance(s, dict) and s.get("file_id")),
            key=lambda s: int(s.get("width") or 0),
        )
        # The smallest that is still sharp as an avatar; the largest when all are smaller.
        pick = next((s for s in sizes if int(s.get("width") or 0) >= AVATAR_SIDE), None)
        pick = pick or (sizes[-1] if sizes else None)
        if pick is None:
            return None
        return await self.fetch_media(Media(provider_media_id=str(pick["file_id"])))

    def _token(self) -> str:
        self._url("getMe")  # raises when there is none
        return str(self.token)

    async def _get(self, method: str, params: dict[str, Any]) -> Any:
        try:
            response = await self.http.post(self._url(method), json=params)
        except httpx.HTTPError as exc:
            raise ProviderSendError(retryable=True, code="network", title=str(exc)) from exc
        return result_of(response.status_code, _json(response))


def _form_value(value: Any) -> str:
    """A multipart field: Telegram reads objects (reply_markup…) as JSON text."""
    return json.dumps(value)
