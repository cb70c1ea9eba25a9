"""Connecting a bot: its token checked with `getMe`, our webhook registered with
`setWebhook` (our URL, the channel's secret token, the update kinds we handle, pending
updates kept), and removed with `deleteWebhook` when the channel goes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from botplatform.channels.base import ProviderSendError
from botplatform.channels.telegram.adapter import bot_api, result_of
from botplatform.channels.telegram.parse import ALLOWED_UPDATES
from botplatform.config import Settings
from botplatform.kit.logging import get_logger

log = get_logger("botplatform.channels")
TIMEOUT = httpx.Timeout(15.0, connect=5.0)


@dataclass(frozen=True)
class Bot:
    id: int
    username: str
    name: str


async def _call(
    http: httpx.AsyncClient, settings: Settings, token: str, method: str, params: dict[str, Any]
) -> Any:
    try:
        response = await http.post(bot_api(settings, token, method), json=params, timeout=TIMEOUT)
    except httpx.HTTPError as exc:
        raise ProviderSendError(retryable=True, code="network", title=str(exc)) from exc
    try:
        body = response.json()
    except ValueError:
        body = {}
    return result_of(response.status_code, body)


async def identify(http: httpx.AsyncClient, settings: Settings, token: str) -> Bot:
    """The bot behind `token` (`getMe`); `ProviderSendError` when Telegram refuses it."""
    me = await _call(http, settings, token, "getMe", {})
    if not isinstance(me, dict) or not me.get("is_bot") or not isinstance(me.get("id"), int):
        raise ProviderSendError(retryable=False, code="not_a_bot", title="getMe named no bot")
    username = str(me.get("username") or "")
    return Bot(id=me["id"], username=username, name=str(me.get("first_name") or username))


async def register(
    http: httpx.AsyncClient, settings: Settings, token: str, webhook_url: str, secret: str
) -> None:
    """Points the bot's webhook at us: Telegram sends `secret` back with every update, only
    the update kinds we handle, and keeps what is pending (nothing is lost on reconnect)."""
    params = {
        "url": webhook_url,
        "secret_token": secret,
        "allowed_updates": list(ALLOWED_UPDATES),
        "drop_pending_updates": False,
    }
    await _call(http, settings, token, "setWebhook", params)


async def disconnect(http: httpx.AsyncClient, settings: Settings, token: str) -> bool:
    """Removes the bot's webhook; False (logged) when Telegram cannot be told, so deleting
    a channel never hangs on a bot whose token was revoked meanwhile."""
    try:
        await _call(http, settings, token, "deleteWebhook", {"drop_pending_updates": False})
    except ProviderSendError as exc:
        log.warning("telegram_webhook_not_deleted", code=exc.code, error=exc.title[:200])
        return False
    return True
