"""A fake Slack Web API on loopback (`botplatform sandbox slack`): the methods the platform
calls, under `/api/<method>` as Slack serves them, checking the bot token and the request
shapes as Slack does (answering `{"ok": false, "error": ...}`), plus `/_sandbox/slack/`
controls to play a Slack user: their messages and button presses reach the platform as
signed Events API / interactivity requests. Errors and 429s with Retry-After can be injected.

Point the platform at it with SLACK_API_BASE_URL=http://127.0.0.1:3200/api.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from botplatform.channels.slack.adapter import sign

TEAM_ID = "T0SANDBOX1"
BOT_USER_ID = "U0SANDBOT1"
BOT_ID = "B0SANDBOT1"
JSON_METHODS = frozenset(
    {"chat.postMessage", "chat.update", "reactions.add", "files.completeUploadExternal"}
)
SECTION_LIMIT, BUTTON_TEXT_LIMIT, TEXT_LIMIT = 3000, 75, 40_000


class Invalid(ValueError):
    """A request Slack refuses: the `error` code it answers with."""


@dataclass
class Failure:
    status: int
    error: str
    retry_after: int | None = None


@dataclass
class FakeSlack:
    tokens: set[str]
    signing_secret: str
    webhook_url: str | None = None
    team_id: str = TEAM_ID
    team_name: str = "Sandbox"
    users: dict[str, str] = field(default_factory=lambda: {"U0CUSTOMER": "Ada Lovelace"})
    #: Every Web API call received: {"method", "token", "body"}.
    received: list[dict[str, Any]] = field(default_factory=list)
    #: Messages posted or updated, by "channel:ts".
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    reactions: list[dict[str, Any]] = field(default_factory=list)
    uploads: dict[str, dict[str, Any]] = field(default_factory=dict)
    shared_files: list[dict[str, Any]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    base_url: str = ""
    #: The app's OAuth credentials ("Add to Slack"): codes handed out by the authorize page.
    client_id: str = "sandbox-client-id"
    client_secret: str = "sandbox-client-secret"  # noqa: S105 - a fake's well-known value
    codes: dict[str, str] = field(default_factory=dict)  # code → redirect_uri
    #: How events reach the platform (tests pass one bound to the app under test).
    webhook_client: httpx.AsyncClient | None = None
    _clock: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def fail_next(self, status: int, error: str, retry_after: int | None = None) -> None:
        self.failures.append(Failure(status, error, retry_after))

    def next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._clock):06d}"

    def dm_of(self, user: str) -> str:
        return "D" + user[1:] if user.startswith(("U", "W")) else user

    def sent(self, method: str) -> list[dict[str, Any]]:
        return [call["body"] for call in self.received if call["method"] == method]

    # -- the platform's side: Slack → platform ---------------------------------------------

    async def push(self, body: bytes, content_type: str) -> httpx.Response:
        if not self.webhook_url:
            raise Invalid("no_webhook_url")
        headers = {
            "content-type": content_type,
            **sign(body, self.signing_secret, int(time.time())),
        }
        if self.webhook_client is not None:
            return await self.webhook_client.post(self.webhook_url, content=body, headers=headers)
        async with httpx.AsyncClient(timeout=10.0) as client:
            return await client.post(self.webhook_url, content=body, headers=headers)

    def reset(self) -> None:
        self.received.clear()
        self.messages.clear()
        self.reactions.clear()
        self.uploads.clear()
        self.shared_files.clear()
        self.failures.clear()
        self.webhook_url = None

    def message_event(
        self, user: str, text: str, channel: str | None = None, thread_ts: str | None = None
    ) -> dict[str, Any]:
        """An event_callback as Slack sends it for a user's message: a DM with the app
        unless a channel is named (then it mentions the app, as an app_mention)."""
        ts = self.next_ts()
        event: dict[str, Any] = {"user": user, "text": text, "ts": ts, "event_ts": ts,
                                 "team": self.team_id}  # fmt: skip
        if channel is None:
            event.update(type="message", channel=self.dm_of(user), channel_type="im")
        else:
            event.update(type="app_mention", channel=channel)
            event["text"] = f"<@{BOT_USER_ID}> {text}"
        if thread_ts:
            event["thread_ts"] = thread_ts
        return self.envelope(event)

    def envelope(self, event: dict[str, Any]) -> dict[str, Any]:
        return {
            "token": "sandbox-verification-token",
            "team_id": self.team_id,
            "api_app_id": "A0SANDBOX1",
            "event": event,
            "type": "event_callback",
            "event_id": f"Ev{secrets.token_hex(5).upper()}",
            "event_time": int(time.time()),
        }

    def press(self, user: str, message_key: str, value: str) -> bytes:
        """The interactivity request of `user` pressing the button or picking the option
        of value `value` in the message `message_key` ("channel:ts")."""
        message = self.messages.get(message_key)
        if message is None:
            raise Invalid("message_not_found")
        action = _find_action(message, value)
        if action is None:
            raise Invalid("no_such_button")
        channel, _, ts = message_key.partition(":")
        container = {"type": "message", "message_ts": ts, "channel_id": channel}
        if message.get("thread_ts"):  # as Slack names a message in a thread
            container["thread_ts"] = message["thread_ts"]
        payload = {
            "type": "block_actions",
            "user": {"id": user, "name": self.users.get(user, user), "team_id": self.team_id},
            "team": {"id": self.team_id, "domain": "sandbox"},
            "container": container,
            "message": message,
            "channel": {"id": channel},
            "trigger_id": secrets.token_hex(8),
            "actions": [{**action, "block_id": "b", "action_ts": f"{time.time():.6f}"}],
        }
        return urlencode({"payload": json.dumps(payload)}).encode()


def _find_action(message: dict[str, Any], value: str) -> dict[str, Any] | None:
    for block in message.get("blocks") or []:
        for element in block.get("elements", []) if block.get("type") == "actions" else []:
            if element.get("type") == "button" and element.get("value") == value:
                return dict(element)
            for option in element.get("options", []):
                if option.get("value") == value:
                    return {"type": "static_select", "action_id": element.get("action_id"),
                            "selected_option": option}  # fmt: skip
    return None


# -- shape checks ----------------------------------------------------------------------------


def _plain(obj: object, limit: int) -> None:
    if not isinstance(obj, dict) or obj.get("type") != "plain_text":
        raise Invalid("invalid_blocks")
    text = obj.get("text")
    if not isinstance(text, str) or not text or len(text) > limit:
        raise Invalid("invalid_blocks")


def _check_element(element: object, action_ids: set[str]) -> None:
    if not isinstance(element, dict):
        raise Invalid("invalid_blocks")
    action_id = element.get("action_id")
    if not isinstance(action_id, str) or action_id in action_ids:
        raise Invalid("invalid_blocks")  # action ids are unique within a message
    action_ids.add(action_id)
    if element.get("type") == "button":
        _plain(element.get("text"), BUTTON_TEXT_LIMIT)
        if not isinstance(element.get("value"), str) or len(element["value"]) > 2000:
            raise Invalid("invalid_blocks")
    elif element.get("type") == "static_select":
        options = element.get("options")
        if not isinstance(options, list) or not 1 <= len(options) <= 100:
            raise Invalid("invalid_blocks")
        for option in options:
            _plain(option.get("text") if isinstance(option, dict) else None, 75)
    else:
        raise Invalid("invalid_blocks")


def _check_blocks(blocks: object) -> None:
    if not isinstance(blocks, list) or len(blocks) > 50:
        raise Invalid("invalid_blocks")
    action_ids: set[str] = set()
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "section":
            text = block.get("text") or {}
            if text.get("type") != "mrkdwn" or not 0 < len(text.get("text", "")) <= SECTION_LIMIT:
                raise Invalid("invalid_blocks")
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
                raise Invalid("invalid_blocks")
            for element in elements:
                _check_element(element, action_ids)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                raise Invalid("invalid_blocks")
        elif kind == "image":
            if not str(block.get("image_url", "")).startswith(("http://", "https://")):
                raise Invalid("invalid_blocks")
        else:
            raise Invalid("invalid_blocks")


def _check_text(body: dict[str, Any]) -> None:
    text = body.get("text")
    if not body.get("blocks") and (not isinstance(text, str) or not text.strip()):
        raise Invalid("no_text")
    if isinstance(text, str) and len(text) > TEXT_LIMIT:
        raise Invalid("msg_too_long")


# -- the Web API -----------------------------------------------------------------------------


def _fake(request: Request) -> FakeSlack:
    fake: FakeSlack = request.app.state.slack
    return fake


def _ok(**data: Any) -> JSONResponse:
    return JSONResponse({"ok": True, **data})


def _error(error: str, status: int = 200) -> JSONResponse:
    return JSONResponse({"ok": False, "error": error}, status_code=status)


async def _arguments(request: Request, method: str) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "")
    if method in JSON_METHODS:
        if not content_type.startswith("application/json"):
            raise Invalid("invalid_arguments")
        try:
            body = json.loads(await request.body())
        except ValueError as exc:
            raise Invalid("invalid_json") from exc
        if not isinstance(body, dict):
            raise Invalid("invalid_json")
        return body
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


def _post_message(fake: FakeSlack, body: dict[str, Any]) -> JSONResponse:
    channel = body.get("channel")
    if not isinstance(channel, str) or not channel:
        raise Invalid("channel_not_found")
    _check_text(body)
    if "blocks" in body:
        _check_blocks(body["blocks"])
    thread = body.get("thread_ts")
    channel = fake.dm_of(channel)
    ts = fake.next_ts()
    message = {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID, "ts": ts,
               "text": body.get("text"), "blocks": body.get("blocks"),
               "thread_ts": thread}  # fmt: skip
    fake.messages[f"{channel}:{ts}"] = message
    return _ok(channel=channel, ts=ts, message=message)


def _update(fake: FakeSlack, body: dict[str, Any]) -> JSONResponse:
    key = f"{body.get('channel')}:{body.get('ts')}"
    if key not in fake.messages:
        raise Invalid("message_not_found")
    _check_text(body)
    if "blocks" in body:
        _check_blocks(body["blocks"])
    fake.messages[key].update(text=body.get("text"), blocks=body.get("blocks"), edited=True)
    return _ok(channel=body["channel"], ts=body["ts"], text=body.get("text"))


def _react(fake: FakeSlack, body: dict[str, Any]) -> JSONResponse:
    name, channel, ts = body.get("name"), body.get("channel"), body.get("timestamp")
    if not isinstance(name, str) or not name or ":" in name or not channel or not ts:
        raise Invalid("invalid_name" if not name or ":" in str(name) else "no_item_specified")
    if any(r == body for r in fake.reactions):
        raise Invalid("already_reacted")
    fake.reactions.append(dict(body))
    return _ok()


def _upload_url(fake: FakeSlack, body: dict[str, Any]) -> JSONResponse:
    filename, length = body.get("filename"), body.get("length", "")
    if not filename or not str(length).isdigit() or int(length) <= 0:
        raise Invalid("invalid_arguments")
    file_id = f"F{secrets.token_hex(5).upper()}"
    fake.uploads[file_id] = {"filename": filename, "length": int(length), "data": None}
    return _ok(upload_url=f"{fake.base_url}/_upload/{file_id}", file_id=file_id)


def _complete_upload(fake: FakeSlack, body: dict[str, Any]) -> JSONResponse:
    files = body.get("files")
    if not isinstance(files, list) or not files:
        raise Invalid("invalid_arguments")
    done = []
    for item in files:
        upload = fake.uploads.get(str(item.get("id")) if isinstance(item, dict) else "")
        if upload is None or upload["data"] is None:
            raise Invalid("file_not_found")
        done.append({"id": item["id"], "title": item.get("title") or upload["filename"]})
    channel = body.get("channel_id")
    if channel is not None and not str(channel).startswith(("C", "D", "G")):
        raise Invalid("invalid_channel")  # a user id is no channel: conversations.open first
    fake.shared_files.append({"files": done, "channel_id": channel,
                              "initial_comment": body.get("initial_comment"),
                              "thread_ts": body.get("thread_ts")})  # fmt: skip
    return _ok(files=done)


def _users_info(fake: FakeSlack, body: dict[str, Any]) -> JSONResponse:
    user = str(body.get("user", ""))
    if user not in fake.users:
        raise Invalid("user_not_found")
    name = fake.users[user]
    avatar = f"{fake.base_url}/_avatars/{user}.png"
    profile = {"real_name": name, "display_name": name, "image_72": avatar, "image_192": avatar}
    return _ok(user={"id": user, "team_id": fake.team_id, "name": name.lower().replace(" ", "."),
                     "real_name": name, "profile": profile})  # fmt: skip


def _open(fake: FakeSlack, body: dict[str, Any]) -> JSONResponse:
    users = str(body.get("users", ""))
    if not users or "," in users:
        raise Invalid("users_list_not_supplied" if not users else "not_supported")
    return _ok(channel={"id": fake.dm_of(users)})


def _auth_test(fake: FakeSlack, body: dict[str, Any]) -> JSONResponse:
    return _ok(url=f"{fake.base_url}/", team=fake.team_name, user="botplatform",
               team_id=fake.team_id, user_id=BOT_USER_ID, bot_id=BOT_ID)  # fmt: skip


def _oauth_access(fake: FakeSlack, body: dict[str, Any]) -> JSONResponse:
    """Trades an authorize code for a new bot token, as Slack's OAuth v2 does."""
    if body.get("client_id") != fake.client_id or body.get("client_secret") != fake.client_secret:
        raise Invalid("invalid_client_id" if body.get("client_id") != fake.client_id
                      else "bad_client_secret")  # fmt: skip
    redirect = fake.codes.pop(str(body.get("code", "")), None)
    if redirect is None:
        raise Invalid("invalid_code")
    if body.get("redirect_uri") and body["redirect_uri"] != redirect:
        raise Invalid("bad_redirect_uri")
    token = f"xoxb-sandbox-{secrets.token_hex(8)}"
    fake.tokens.add(token)
    return _ok(access_token=token, token_type="bot",  # noqa: S106 - the kind of token, not one
               scope="chat:write",
               bot_user_id=BOT_USER_ID, app_id="A0SANDBOX1",
               team={"id": fake.team_id, "name": fake.team_name})  # fmt: skip


#: Methods called without a bearer token.
UNAUTHENTICATED = frozenset({"oauth.v2.access"})

METHODS = {
    "oauth.v2.access": _oauth_access,
    "auth.test": _auth_test,
    "chat.postMessage": _post_message,
    "chat.update": _update,
    "reactions.add": _react,
    "files.getUploadURLExternal": _upload_url,
    "files.completeUploadExternal": _complete_upload,
    "users.info": _users_info,
    "conversations.open": _open,
}


async def web_api(request: Request) -> Response:
    fake, method = _fake(request), request.path_params["method"]
    handler = METHODS.get(method)
    if handler is None:
        return _error("unknown_method", 404)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    try:
        body = await _arguments(request, method)
    except Invalid as exc:
        return _error(str(exc))
    fake.received.append({"method": method, "token": token, "body": body})
    if fake.failures:
        failure = fake.failures.pop(0)
        headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after else {}
        answer = {"ok": False, "error": failure.error}
        return JSONResponse(answer, status_code=failure.status, headers=headers)
    if method not in UNAUTHENTICATED:
        if scheme.lower() != "bearer" or not token:
            return _error("not_authed")
        if token not in fake.tokens:
            return _error("invalid_auth")
    try:
        return handler(fake, body)
    except Invalid as exc:
        return _error(str(exc))


async def authorize(request: Request) -> Response:
    """Slack's authorize page, with the user approving at once: back to `redirect_uri` with
    a code and the `state` unchanged (`?deny=1` plays a user who cancels)."""
    fake, query = _fake(request), request.query_params
    redirect, state = query.get("redirect_uri", ""), query.get("state", "")
    if query.get("client_id") != fake.client_id or not redirect:
        return PlainTextResponse("invalid_client_id or redirect_uri", status_code=400)
    if query.get("deny"):
        return RedirectResponse(
            f"{redirect}?{urlencode({'error': 'access_denied', 'state': state})}"
        )
    code = secrets.token_hex(12)
    fake.codes[code] = redirect
    return RedirectResponse(f"{redirect}?{urlencode({'code': code, 'state': state})}")


async def upload(request: Request) -> Response:
    fake = _fake(request)
    upload = fake.uploads.get(request.path_params["file_id"])
    if upload is None:
        return PlainTextResponse("file not found", status_code=404)
    form = await request.form()
    file = form.get("file")
    data = (
        await file.read()
        if file is not None and not isinstance(file, str)
        else await request.body()
    )
    if len(data) != upload["length"]:
        return PlainTextResponse("length mismatch", status_code=400)
    upload["data"] = data
    return PlainTextResponse(f"OK - {len(data)}")


async def download(request: Request) -> Response:
    """A file's url_private_download: only with a bot token, as Slack's."""
    fake = _fake(request)
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or token not in fake.tokens:
        return PlainTextResponse("login required", status_code=302)
    upload = fake.uploads.get(request.path_params["file_id"])
    if upload is None or upload["data"] is None:
        return PlainTextResponse("file not found", status_code=404)
    return Response(upload["data"], media_type=upload.get("mimetype", "application/octet-stream"))


# -- controls --------------------------------------------------------------------------------


async def _json(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


async def control_connect(request: Request) -> Response:
    body = await _json(request)
    fake = _fake(request)
    fake.webhook_url = str(body.get("webhook_url") or "") or None
    return _ok(webhook_url=fake.webhook_url, team_id=fake.team_id)


async def control_message(request: Request) -> Response:
    """Writes as a Slack user: {"user", "name", "text", "channel"?, "thread_ts"?, "file"?}."""
    fake, body = _fake(request), await _json(request)
    user = str(body.get("user") or "U0CUSTOMER")
    fake.users.setdefault(user, str(body.get("name") or user))
    payload = fake.message_event(user, str(body.get("text") or ""), body.get("channel"),
                                 body.get("thread_ts"))  # fmt: skip
    file = body.get("file")
    if isinstance(file, dict):
        payload["event"]["files"] = [shared_file(fake, file)]
        payload["event"]["subtype"] = "file_share"
    try:
        answer = await fake.push(json.dumps(payload).encode(), "application/json")
    except (Invalid, httpx.HTTPError) as exc:
        return _error(str(exc) or type(exc).__name__, 409)
    return _ok(event=payload, platform_status=answer.status_code)


def shared_file(fake: FakeSlack, file: dict[str, Any]) -> dict[str, Any]:
    """A file a Slack user shares ({name, mimetype, content}), as a message event lists it;
    its private URL serves the bytes to a bot token."""
    data = str(file.get("content") or "hello").encode()
    file_id = f"F{secrets.token_hex(5).upper()}"
    mime = str(file.get("mimetype") or "text/plain")
    name = str(file.get("name") or "file.txt")
    fake.uploads[file_id] = {"filename": name, "length": len(data), "data": data, "mimetype": mime}
    url = f"{fake.base_url}/_files/{file_id}/{name}"
    return {"id": file_id, "name": name, "mimetype": mime, "size": len(data),
            "url_private": url, "url_private_download": url}  # fmt: skip


async def control_press(request: Request) -> Response:
    """Presses a button the platform sent: {"user", "message": "channel:ts", "value"}."""
    fake, body = _fake(request), await _json(request)
    try:
        form = fake.press(str(body.get("user") or "U0CUSTOMER"), str(body.get("message")),
                          str(body.get("value")))  # fmt: skip
        answer = await fake.push(form, "application/x-www-form-urlencoded")
    except (Invalid, httpx.HTTPError) as exc:
        return _error(str(exc) or type(exc).__name__, 409)
    return _ok(platform_status=answer.status_code)


async def control_fail(request: Request) -> Response:
    """The next Web API call fails: {"status": 429, "error": "ratelimited", "retry_after": 3}."""
    body = await _json(request)
    retry_after = body.get("retry_after")
    _fake(request).fail_next(
        int(body.get("status") or 200),
        str(body.get("error") or "internal_error"),
        int(retry_after) if isinstance(retry_after, int) else None,
    )
    return _ok()


async def control_sent(request: Request) -> Response:
    fake = _fake(request)
    return _ok(messages=fake.messages, reactions=fake.reactions, files=fake.shared_files)


def create_app(fake: FakeSlack) -> Starlette:
    app = Starlette(
        routes=[
            Route("/api/{method}", web_api, methods=["POST", "GET"]),
            Route("/oauth/v2/authorize", authorize, methods=["GET"]),
            Route("/_upload/{file_id}", upload, methods=["POST"]),
            Route("/_files/{file_id}/{name}", download, methods=["GET"]),
            Route("/_sandbox/slack/connect", control_connect, methods=["POST"]),
            Route("/_sandbox/slack/message", control_message, methods=["POST"]),
            Route("/_sandbox/slack/press", control_press, methods=["POST"]),
            Route("/_sandbox/slack/fail", control_fail, methods=["POST"]),
            Route("/_sandbox/slack/sent", control_sent, methods=["GET"]),
        ]
    )
    app.state.slack = fake
    return app


def run(host: str, port: int, fake: FakeSlack) -> None:
    fake.base_url = fake.base_url or f"http://{host}:{port}"
    uvicorn.run(create_app(fake), host=host, port=port, log_level="warning")
