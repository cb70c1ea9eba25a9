"""A fake Telegram Bot API on loopback (`botplatform sandbox telegram`).

It answers the methods the platform calls (`/bot<token>/<method>`, JSON, form or multipart,
as the real one takes them) with the Bot API's shapes and errors: an unknown token is 401,
a malformed call 400 with Telegram's description, a blocked chat 403, and failures or a 429
with `retry_after` can be injected. It plays the users too: `/_sandbox/telegram/inbound`
pushes an update (a text, a button tap, a block) to the bot's webhook with the secret token
header, as Telegram does. A user it plays has a profile photo (`getUserProfilePhotos`, then
`getFile` and the file download), as a user with an avatar does.
"""

from __future__ import annotations

import html.parser
import itertools
import json
import secrets
import struct
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
DEFAULT_TOKEN = "7000000001:sandbox-telegram-token"  # noqa: S105 - a fake's demo value
PARSE_MODES = frozenset({"HTML", "MarkdownV2", "Markdown"})
#: The tags Telegram's HTML parse mode accepts.
HTML_TAGS = frozenset({"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code",
                       "pre", "span", "tg-spoiler", "tg-emoji", "blockquote"})  # fmt: skip
SEND_FIELDS = {
    "sendPhoto": "photo",
    "sendVideo": "video",
    "sendAudio": "audio",
    "sendVoice": "voice",
    "sendDocument": "document",
    "sendSticker": "sticker",
}
CHAT_ACTIONS = frozenset({"typing", "upload_photo", "record_video", "upload_video",
                          "record_voice", "upload_voice", "upload_document", "choose_sticker",
                          "find_location"})  # fmt: skip
UPDATE_KINDS = frozenset({"message", "edited_message", "callback_query", "my_chat_member",
                          "message_reaction", "inline_query", "chosen_inline_result",
                          "channel_post", "chat_member", "poll"})  # fmt: skip


def square_png(rgb: bytes, side: int = 8) -> bytes:
    """A plain square PNG: the avatar the sandbox gives the users it plays."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)  # 8-bit RGB
    rows = b"".join(b"\x00" + rgb[:3] * side for _ in range(side))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


class BadRequest(ValueError):
    """A call Telegram answers 400 "Bad Request: …"."""


@dataclass
class Bot:
    token: str
    id: int
    username: str
    first_name: str
    webhook_url: str | None = None
    secret_token: str | None = None
    allowed_updates: list[str] | None = None
    blocked_by: set[int] = field(default_factory=set)
    #: Users who wrote to it: id → first name (getChat answers them).
    users: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Failure:
    status: int
    description: str
    retry_after: int | None = None


class FakeBotApi:
    """The state behind the fake: its bots, what they sent, files, injected failures."""

    def __init__(
        self,
        *,
        tokens: tuple[str, ...] = (DEFAULT_TOKEN,),
        webhook_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.bots: dict[str, Bot] = {}
        self._injected_client = webhook_client
        self._client: httpx.AsyncClient | None = None
        self.reset()
        for token in tokens:
            self.add_bot(token)

    def reset(self) -> None:
        self.sent: list[dict[str, Any]] = []  # every call a bot made, in order
        self.answered: list[str] = []  # callback query ids answered
        self.files: dict[str, tuple[bytes, str]] = {}  # file_id → bytes, mime type
        self.avatars: dict[int, str] = {}  # user id → file_id of their profile photo
        self.photo_lookups: list[int] = []  # user ids getUserProfilePhotos was asked about
        self.downloads: list[str] = []  # file paths downloaded
        self.failures: deque[Failure] = deque()
        self.deliveries: list[tuple[str, int]] = []  # (webhook URL, status) of pushed updates
        self._ids = itertools.count(1000)
        self._updates = itertools.count(500_000)
        for bot in self.bots.values():
            bot.blocked_by.clear()

    def add_bot(self, token: str, username: str | None = None) -> Bot:
        bot_id = int(token.split(":", 1)[0]) if token.split(":", 1)[0].isdigit() else 0
        if not bot_id or ":" not in token:
            raise ValueError("a bot token looks like <bot id>:<secret>")
        bot = Bot(token, bot_id, username or f"sandbox{bot_id}_bot", "Sandbox bot")
        self.bots[token] = bot
        return bot

    def new_bot(self) -> Bot:
        return self.add_bot(f"{secrets.randbelow(9 * 10**9) + 10**9}:{secrets.token_urlsafe(24)}")

    def bot_by_id(self, bot_id: int) -> Bot | None:
        return next((b for b in self.bots.values() if b.id == bot_id), None)

    def fail_next(self, status: int, description: str, *, retry_after: int | None = None) -> None:
        self.failures.append(Failure(status, description, retry_after))

    def add_file(self, data: bytes, mime_type: str) -> str:
        file_id = "BQAC" + secrets.token_urlsafe(24)
        self.files[file_id] = (data, mime_type)
        return file_id

    def set_avatar(self, user_id: int, data: bytes, mime_type: str = "image/png") -> str:
        """Gives a user a profile photo; its file_id."""
        self.avatars[user_id] = self.add_file(data, mime_type)
        return self.avatars[user_id]

    # -- pushing updates -------------------------------------------------------------------

    async def push(self, bot: Bot, update: dict[str, Any]) -> int:
        """Posts one update to the bot's webhook with its secret token; the HTTP status."""
        if not bot.webhook_url:
            raise BadRequest("the bot has no webhook: setWebhook first")
        kind = next(k for k in update if k != "update_id")
        if bot.allowed_updates is not None and kind not in bot.allowed_updates:
            return 0  # Telegram drops what the bot did not ask for
        headers = {SECRET_HEADER: bot.secret_token} if bot.secret_token else {}
        client = self._injected_client or self._http()
        response = await client.post(bot.webhook_url, json=update, headers=headers)
        self.deliveries.append((bot.webhook_url, response.status_code))
        return response.status_code

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=10.0)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    def user_message(
        self, bot: Bot, user_id: int, first_name: str, text: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        bot.users[user_id] = first_name
        person = {"id": user_id, "is_bot": False, "first_name": first_name}
        message: dict[str, Any] = {
            "message_id": next(self._ids),
            "from": person,
            "chat": {"id": user_id, "type": "private", "first_name": first_name},
            "date": int(time.time()),
            **extra,
        }
        if text is not None:
            message["text"] = text
        bot.blocked_by.discard(user_id)  # writing to the bot again (/start) unblocks it
        return {"update_id": next(self._updates), "message": message}

    def button_tap(self, bot: Bot, user_id: int, data: str) -> dict[str, Any]:
        """A tap on the inline button with `data` of the bot's latest keyboard to this user."""
        first_name = bot.users.get(user_id, "Sandbox user")
        keyboard = next(
            (s for s in reversed(self.sent) if s["bot_id"] == bot.id
             and str(s["params"].get("chat_id")) == str(user_id)
             and "reply_markup" in s["params"]),
            None,
        )  # fmt: skip
        message = dict(keyboard["result"]) if keyboard else {}
        return {
            "update_id": next(self._updates),
            "callback_query": {
                "id": str(secrets.randbelow(10**18)),
                "from": {"id": user_id, "is_bot": False, "first_name": first_name},
                "chat_instance": str(user_id),
                "data": data,
                **({"message": message} if message else {}),
            },
        }

    def block(self, bot: Bot, user_id: int) -> dict[str, Any]:
        bot.blocked_by.add(user_id)
        chat = {"id": user_id, "type": "private", "first_name": bot.users.get(user_id, "")}
        me = {"id": bot.id, "is_bot": True, "first_name": bot.first_name, "username": bot.username}
        return {
            "update_id": next(self._updates),
            "my_chat_member": {
                "chat": chat,
                "from": {"id": user_id, "is_bot": False, "first_name": chat["first_name"]},
                "date": int(time.time()),
                "old_chat_member": {"user": me, "status": "member"},
                "new_chat_member": {"user": me, "status": "kicked", "until_date": 0},
            },
        }

    # -- answering the Bot API -------------------------------------------------------------

    def record(self, bot: Bot, method: str, params: dict[str, Any], result: Any) -> None:
        self.sent.append({"bot_id": bot.id, "method": method, "params": params, "result": result})

    def new_message(self, bot: Bot, chat_id: Any, **content: Any) -> dict[str, Any]:
        chat_id = int(chat_id)
        chat_type = "private" if chat_id > 0 else "supergroup"
        me = {"id": bot.id, "is_bot": True, "first_name": bot.first_name, "username": bot.username}
        return {
            "message_id": next(self._ids),
            "from": me,
            "chat": {"id": chat_id, "type": chat_type},
            "date": int(time.time()),
            **content,
        }


# -- checking shapes ---------------------------------------------------------------------------


class _HtmlCheck(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in HTML_TAGS:
            raise BadRequest(f'can\'t parse entities: Unsupported start tag "{tag}"')
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open.pop() != tag:
            raise BadRequest(f'can\'t parse entities: Unmatched end tag "{tag}"')


def _check_text(text: object, parse_mode: object, limit: int, what: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise BadRequest(f"{what} must be non-empty")
    if parse_mode is not None and parse_mode not in PARSE_MODES:
        raise BadRequest(f"unsupported parse_mode {parse_mode}")
    if parse_mode == "HTML":
        checker = _HtmlCheck()
        checker.feed(text)
        checker.close()
        if checker.open:
            raise BadRequest(f"can't parse entities: Can't find end tag \"{checker.open[-1]}\"")
        visible = html.unescape(text)
    else:
        visible = text
    if len(visible) > limit:
        raise BadRequest(f"{what} is too long")
    return visible


def _check_markup(markup: object) -> None:
    if markup is None:
        return
    if isinstance(markup, str):
        try:
            markup = json.loads(markup)
        except ValueError as exc:
            raise BadRequest("can't parse reply keyboard markup JSON object") from exc
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if not isinstance(rows, list) or not rows:
        raise BadRequest("inline keyboard expected")
    for row in rows:
        if not isinstance(row, list) or not row:
            raise BadRequest("inline keyboard row must be a non-empty array")
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise BadRequest("inline keyboard button must have text")
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= 64:
                raise BadRequest("BUTTON_DATA_INVALID")


def _chat_id(params: dict[str, Any]) -> int:
    value = params.get("chat_id")
    try:
        return int(str(value))
    except ValueError as exc:
        raise BadRequest("chat not found") from exc


def _message_ref(params: dict[str, Any]) -> int:
    try:
        return int(str(params.get("message_id")))
    except ValueError as exc:
        raise BadRequest("message identifier is not specified") from exc


async def _params(request: Request) -> tuple[dict[str, Any], dict[str, UploadFile]]:
    """A call's parameters, however they came: query string, JSON, form or multipart."""
    params: dict[str, Any] = dict(request.query_params)
    files: dict[str, UploadFile] = {}
    kind = request.headers.get("content-type", "")
    if kind.startswith("application/json"):
        body = await request.body()
        if body:
            try:
                loaded = json.loads(body)
            except ValueError as exc:
                raise BadRequest("can't parse JSON") from exc
            if not isinstance(loaded, dict):
                raise BadRequest("parameters must be an object")
            params.update(loaded)
    elif kind.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        form = await request.form()
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                files[key] = value
            else:
                params[key] = value
    return params, files


def _ok(result: Any) -> JSONResponse:
    return JSONResponse({"ok": True, "result": result})


def _error(status: int, description: str, retry_after: int | None = None) -> JSONResponse:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return JSONResponse(body, status_code=status)


# -- the methods -------------------------------------------------------------------------------


def _me(fake: FakeBotApi, bot: Bot, params: dict[str, Any]) -> Any:
    return {"id": bot.id, "is_bot": True, "first_name": bot.first_name, "username": bot.username,
            "can_join_groups": True, "can_read_all_group_messages": False,
            "supports_inline_queries": False}  # fmt: skip


def _set_webhook(fake: FakeBotApi, bot: Bot, params: dict[str, Any]) -> Any:
    url = params.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise BadRequest("bad webhook: An HTTPS URL must be provided for webhook")
    secret = params.get("secret_token")
    if secret is not None and (
        not isinstance(secret, str)
        or not 1 <= len(secret) <= 256
        or not all(c.isascii() and (c.isalnum() or c in "_-") for c in secret)
    ):
        raise BadRequest("bad webhook: secret token contains unallowed characters")
    allowed = params.get("allowed_updates")
    if isinstance(allowed, str):
        allowed = json.loads(allowed)
    if allowed is not None and (
        not isinstance(allowed, list) or any(kind not in UPDATE_KINDS for kind in allowed)
    ):
        raise BadRequest("allowed_updates must list update kinds")
    bot.webhook_url, bot.secret_token = url, secret
    bot.allowed_updates = allowed or None
    return True


def _delete_webhook(fake: FakeBotApi, bot: Bot, params: dict[str, Any]) -> Any:
    bot.webhook_url = bot.secret_token = bot.allowed_updates = None
    return True


def _webhook_info(fake: FakeBotApi, bot: Bot, params: dict[str, Any]) -> Any:
    return {"url": bot.webhook_url or "", "has_custom_certificate": False,
            "pending_update_count": 0, "allowed_updates": bot.allowed_updates or []}  # fmt: skip


def _reachable(bot: Bot, chat_id: int) -> None:
    if chat_id in bot.blocked_by:
        raise PermissionError("Forbidden: bot was blocked by the user")


def _send_message(fake: FakeBotApi, bot: Bot, params: dict[str, Any]) -> Any:
    chat_id = _chat_id(params)
    _reachable(bot, chat_id)
    text = _check_text(params.get("text"), params.get("parse_mode"), 4096, "message text")
    _check_markup(params.get("reply_markup"))
    extra = {"reply_markup": params["reply_markup"]} if params.get("reply_markup") else {}
    return fake.new_message(bot, chat_id, text=text, **extra)


def _send_media(method: str) -> Any:
    field_name = SEND_FIELDS[method]

    async def send(
        fake: FakeBotApi, bot: Bot, params: dict[str, Any], files: dict[str, UploadFile]
    ) -> Any:
        chat_id = _chat_id(params)
        _reachable(bot, chat_id)
        if params.get("caption") is not None:
            _check_text(params["caption"], params.get("parse_mode"), 1024, "message caption")
        source = params.get(field_name)
        upload = files.get(field_name)
        if upload is None and not isinstance(source, str):
            raise BadRequest(f"there is no {field_name} in the request")
        if isinstance(source, str) and not (
            source.startswith(("http://", "https://")) or source in fake.files
        ):
            raise BadRequest("wrong file identifier/HTTP URL specified")
        file_id = source if isinstance(source, str) and source in fake.files else None
        if upload is not None:  # kept, so getFile serves back exactly what was uploaded
            data = await upload.read()
            if not data:
                raise BadRequest("file must be non-empty")
            file_id = fake.add_file(data, upload.content_type or "application/octet-stream")
        elif file_id is None:  # a URL: Telegram fetches it; the fake keeps the URL itself
            file_id = fake.add_file(str(source).encode(), "text/uri-list")
        media = {"file_id": file_id, "file_unique_id": file_id[-8:]}
        content = [media] if field_name == "photo" else media
        return fake.new_message(bot, chat_id, **{field_name: content})

    return send


def _send_location(fake: FakeBotApi, bot: Bot, params: dict[str, Any]) -> Any:
    chat_id = _chat_id(params)
    _reachable(bot, chat_id)
    try:
        where = {"latitude": float(params["latitude"]), "longitude": float(params["longitude"])}
    except (KeyError, TypeError, ValueError) as exc:
        raise BadRequest("latitude and longitude are required") from exc
    if "title" in params:
        venue = {"location": where, "title": params["title"], "address": params.get("address", "")}
        return fake.new_message(bot, chat_id, venue=venue, location=where)
    return fake.new_message(bot, chat_id, location=where)


def _send_contact(fake: FakeBotApi, bot: Bot, params: dict[str, Any]) -> Any:
    chat_id = _chat_id(params)
    _reachable(bot, chat_id)
    if not params.get("phone_number") or not params.get("first_name"):
        raise BadRequest("phone_number and first_name are required")
    card = {"phone_number": params["phone_number"], "first_name": params["first_name"]}
    return fake.new_message(bot, chat_id, contact=card)


def _sent_to(fake: FakeBotApi, bot: Bot, chat_id: int, message_id: int) -> dict[str, Any]:
    for call in reversed(fake.sent):
        result = call["result"]
        if (
            call["bot_id"] == bot.id
            and isinstance(result, dict)
            and result.get("message_id") == message_id
            and result.get("chat", {}).get("id") == chat_id
        ):
            return result
    raise BadRequest("message to edit not found")


def _edit_text(fake: FakeBotApi, bot: Bot, params: dict[str, Any]) -> Any:
    chat_id, message_id = _chat_id(params), _message_ref(params)
    original = _sent_to(fake, bot, chat_id, message_id)
    text = _check_text(params.get("text"), params.get("parse_mode"), 4096, "message text")
    _check_markup(params.get("reply_markup"))
    if original.get("text") == text and not params.get("reply_markup"):
        raise BadRequest("message is not modified")
    return {**original, "text": text, "edit_date": int(time.time())}


def _react(fake: FakeBotApi, bot: Bot, params: dict[str, Any]) -> Any:
    _chat_id(params)
    _message_ref(params)
    reaction = params.get("reaction", [])
    if isinstance(reaction, str):
        reaction = json.loads(reaction)
    if not isinstance(reaction, list) or any(
        not isinstance(r, dict) or r.get("type") != "emoji" or not r.get("emoji") for r in reaction
    ):
        raise BadRequest("REACTION_INVALID")
    return True


def _chat_action(fake: FakeBotApi, bot: Bot, params: dict[str, Any]) -> Any:
    _reachable(bot, _chat_id(params))
    if params.get("action") not in CHAT_ACTIONS:
        raise BadRequest("wrong parameter action in request")
    return True


def _answer_callback(fake: FakeBotApi, bot: Bot, params: dict[str, Any]) -> Any:
    query_id = params.get("callback_query_id")
    if not isinstance(query_id, str) or not query_id:
        raise BadRequest("query is too old and response timeout expired or query ID is invalid")
    fake.answered.append(query_id)
    return True


def _get_file(fake: FakeBotApi, bot: Bot, params: dict[str, Any]) -> Any:
    file_id = params.get("file_id")
    if file_id not in fake.files:
        raise BadRequest("invalid file_id")
    data, _mime = fake.files[file_id]
    return {"file_id": file_id, "file_unique_id": file_id[-8:], "file_size": len(data),
            "file_path": f"documents/{file_id}"}  # fmt: skip


def _profile_photos(fake: FakeBotApi, bot: Bot, params: dict[str, Any]) -> Any:
    """A user's profile photos, newest first, each in several sizes (here the same file)."""
    try:
        user_id = int(params["user_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise BadRequest("user_id is required and must be a number") from exc
    fake.photo_lookups.append(user_id)
    file_id = fake.avatars.get(user_id)
    if file_id is None:
        return {"total_count": 0, "photos": []}
    size = len(fake.files[file_id][0])
    sizes = [{"file_id": file_id, "file_unique_id": file_id[-8:], "width": side,
              "height": side, "file_size": size} for side in (160, 320, 640)]  # fmt: skip
    return {"total_count": 1, "photos": [sizes]}


def _get_chat(fake: FakeBotApi, bot: Bot, params: dict[str, Any]) -> Any:
    chat_id = _chat_id(params)
    name = bot.users.get(chat_id)
    if name is None:
        raise BadRequest("chat not found")
    return {"id": chat_id, "type": "private", "first_name": name}


JSON_METHODS = {
    "getMe": _me,
    "setWebhook": _set_webhook,
    "deleteWebhook": _delete_webhook,
    "getWebhookInfo": _webhook_info,
    "sendMessage": _send_message,
    "sendLocation": _send_location,
    "sendVenue": _send_location,
    "sendContact": _send_contact,
    "editMessageText": _edit_text,
    "setMessageReaction": _react,
    "sendChatAction": _chat_action,
    "answerCallbackQuery": _answer_callback,
    "getFile": _get_file,
    "getChat": _get_chat,
    "getUserProfilePhotos": _profile_photos,
}
#: Calls that are not sends: never failed by an injected failure.
NOT_SENDS = frozenset({"getMe", "setWebhook", "deleteWebhook", "getWebhookInfo", "getFile",
                       "getChat", "getUserProfilePhotos", "answerCallbackQuery"})  # fmt: skip
#: Reads, not kept in `sent`.
READS = frozenset({"getMe", "getWebhookInfo", "getFile", "getChat", "getUserProfilePhotos"})


async def bot_method(request: Request) -> Response:
    fake: FakeBotApi = request.app.state.fake
    bot = fake.bots.get(request.path_params["token"])
    if bot is None:
        return _error(401, "Unauthorized")
    method = request.path_params["method"]
    try:
        params, files = await _params(request)
        if method not in NOT_SENDS and fake.failures:
            failure = fake.failures.popleft()
            return _error(failure.status, failure.description, failure.retry_after)
        if method in SEND_FIELDS:
            result = await _send_media(method)(fake, bot, params, files)
        elif method in JSON_METHODS:
            result = JSON_METHODS[method](fake, bot, params)
        else:
            return _error(404, "Not Found")
    except BadRequest as exc:
        return _error(400, f"Bad Request: {exc}")
    except PermissionError as exc:
        return _error(403, str(exc))
    if method not in READS:
        fake.record(bot, method, params, result)
    return _ok(result)


async def download(request: Request) -> Response:
    fake: FakeBotApi = request.app.state.fake
    if request.path_params["token"] not in fake.bots:
        return _error(401, "Unauthorized")
    file_id = request.path_params["path"].rsplit("/", 1)[-1]
    if file_id not in fake.files:
        return _error(404, "Not Found")
    fake.downloads.append(request.path_params["path"])
    data, mime = fake.files[file_id]
    return Response(data, media_type=mime)


# -- the sandbox's own controls ------------------------------------------------------------------


async def _control(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _bot_of(fake: FakeBotApi, body: dict[str, Any]) -> Bot | None:
    token = body.get("token")
    if isinstance(token, str):
        return fake.bots.get(token)
    return next(iter(fake.bots.values()), None) if len(fake.bots) == 1 else None


async def control_bots(request: Request) -> Response:
    fake: FakeBotApi = request.app.state.fake
    if request.method == "POST":
        bot = fake.new_bot()
        return JSONResponse({"token": bot.token, "username": bot.username}, status_code=201)
    bots = [{"token": b.token, "username": b.username, "webhook_url": b.webhook_url}
            for b in fake.bots.values()]  # fmt: skip
    return JSONResponse({"bots": bots})


async def control_inbound(request: Request) -> Response:
    """Plays a user: `{"text": …}` writes, `{"callback_data": …}` taps a button, `{"block":
    true}` blocks the bot; `"from"` (a user id) and `"name"` choose who."""
    fake: FakeBotApi = request.app.state.fake
    body = await _control(request)
    bot = _bot_of(fake, body)
    if bot is None:
        return JSONResponse({"error": 'name the bot with "token"'}, status_code=400)
    user_id = int(body.get("from") or 100_000_001)
    name = str(body.get("name") or "Sandbox user")
    if user_id not in fake.avatars:  # a colour of their own, from their id
        fake.set_avatar(user_id, square_png(user_id.to_bytes(8, "big")[-3:]))
    if body.get("block"):
        update = fake.block(bot, user_id)
    elif body.get("callback_data"):
        update = fake.button_tap(bot, user_id, str(body["callback_data"]))
    elif isinstance(body.get("text"), str):
        update = fake.user_message(bot, user_id, name, body["text"])
    else:
        return JSONResponse({"error": "give text, callback_data or block"}, status_code=400)
    try:
        status = await fake.push(bot, update)
    except BadRequest as exc:
        return JSONResponse({"error": str(exc)}, status_code=409)
    return JSONResponse({"update": update, "webhook_status": status})


async def control_sent(request: Request) -> Response:
    fake: FakeBotApi = request.app.state.fake
    return JSONResponse({"sent": fake.sent, "answered_callbacks": fake.answered})


async def control_fail(request: Request) -> Response:
    fake: FakeBotApi = request.app.state.fake
    body = await _control(request)
    retry = body.get("retry_after")
    fake.fail_next(
        int(body.get("status") or 429),
        str(body.get("description") or "Too Many Requests: retry later"),
        retry_after=int(retry) if retry is not None else None,
    )
    return JSONResponse({"queued_failures": len(fake.failures)})


def create_app(fake: FakeBotApi) -> Starlette:
    app = Starlette(
        routes=[
            Route("/_sandbox/telegram/bots", control_bots, methods=["GET", "POST"]),
            Route("/_sandbox/telegram/inbound", control_inbound, methods=["POST"]),
            Route("/_sandbox/telegram/sent", control_sent, methods=["GET"]),
            Route("/_sandbox/telegram/fail", control_fail, methods=["POST"]),
            Route("/file/bot{token}/{path:path}", download, methods=["GET"]),
            Route("/bot{token}/{method}", bot_method, methods=["GET", "POST"]),
        ]
    )
    app.state.fake = fake
    return app


def run(host: str, port: int, fake: FakeBotApi) -> None:
    """Serve the fake Bot API with uvicorn until interrupted (for a CLI command)."""
    uvicorn.run(create_app(fake), host=host, port=port, log_level="info")
