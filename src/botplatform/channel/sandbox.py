"""Connecting a channel to the WhatsApp sandbox (`botplatform sandbox whatsapp`): the platform
tells the sandbox the channel's phone number id and webhook URL, and the sandbox answers the
credentials to use, so a newcomer never copies an id or a secret by hand."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from botplatform.config import Settings
from botplatform.kit.errors import AppError

#: Meta's own API: never asked to play the sandbox.
META_HOSTS = ("graph.facebook.com", "graph.facebook.net")
SANDBOX_COMMAND = "botplatform sandbox whatsapp"


class SandboxUnavailable(AppError):
    """No sandbox answers where the platform sends WhatsApp calls."""

    status_code = 409
    code = "sandbox_unavailable"
    message = "No WhatsApp sandbox answers."


@dataclass(frozen=True)
class SandboxNumber:
    phone_number_id: str
    business_account_id: str
    display_phone_number: str
    access_token: str
    app_secret: str


def is_configured(settings: Settings) -> bool:
    """Does WHATSAPP_API_BASE_URL point somewhere other than Meta (i.e. at a sandbox)?"""
    host = (urlsplit(settings.whatsapp_api_base_url).hostname or "").lower()
    return bool(host) and host not in META_HOSTS


def new_phone_number_id() -> str:
    """A fresh 15-digit id, like Meta's, so several sandbox channels never collide."""
    return str(10**14 + secrets.randbelow(9 * 10**14))


def _unavailable(settings: Settings, why: str) -> SandboxUnavailable:
    base = settings.whatsapp_api_base_url
    return SandboxUnavailable(
        f"No WhatsApp sandbox answers at {base} ({why}). Start it with `{SANDBOX_COMMAND}` "
        f"and the platform with WHATSAPP_API_BASE_URL pointing at it "
        f"(e.g. http://127.0.0.1:3100).",
        details={"whatsapp_api_base_url": base},
    )


async def _ask(
    http: httpx.AsyncClient,
    url: str,
    body: dict[str, str],
    unavailable: Callable[[str], SandboxUnavailable],
) -> Any:
    """One control call to the sandbox; its JSON answer, or `unavailable(why)`."""
    try:
        response = await http.post(url, json=body, timeout=5.0)
    except httpx.HTTPError as exc:
        raise unavailable(type(exc).__name__) from exc
    if response.status_code != 200:
        raise unavailable(f"it answered {response.status_code}")
    try:
        return response.json()
    except ValueError as exc:
        raise unavailable("its answer is not the sandbox's") from exc


async def connect(
    http: httpx.AsyncClient,
    settings: Settings,
    phone_number_id: str,
    webhook_url: str,
    display_phone_number: str | None = None,
    business_account_id: str | None = None,
) -> SandboxNumber:
    """Tell the sandbox about a channel; answer the values the channel must hold. Each
    channel has a business account of its own there, so its message templates are its own."""
    if not is_configured(settings):
        raise _unavailable(settings, "that is Meta's API, not the sandbox")
    url = f"{settings.whatsapp_api_base_url.rstrip('/')}/_sandbox/channels"
    body = {"phone_number_id": phone_number_id, "webhook_url": webhook_url}
    if display_phone_number:
        body["display_phone_number"] = display_phone_number
    if business_account_id:
        body["business_account_id"] = business_account_id
    answer = await _ask(http, url, body, lambda why: _unavailable(settings, why))
    try:
        return SandboxNumber(
            phone_number_id=str(answer["phone_number_id"]),
            business_account_id=str(answer["business_account_id"]),
            display_phone_number=str(answer["display_phone_number"]),
            access_token=str(answer["access_token"]),
            app_secret=str(answer["app_secret"]),
        )
    except (KeyError, TypeError) as exc:
        raise _unavailable(settings, "its answer is not the sandbox's") from exc


@dataclass(frozen=True)
class SandboxPage:
    page_id: str
    access_token: str
    app_secret: str


def _page_unavailable(settings: Settings, why: str) -> SandboxUnavailable:
    base = settings.messenger_api_base_url
    return SandboxUnavailable(
        f"No Meta sandbox answers at {base} ({why}). Start it with `botplatform sandbox "
        f"messenger` and the platform with MESSENGER_API_BASE_URL pointing at it "
        f"(e.g. http://127.0.0.1:3100).",
        details={"messenger_api_base_url": base},
    )


async def connect_page(
    http: httpx.AsyncClient, settings: Settings, page_id: str, webhook_url: str, provider: str
) -> SandboxPage:
    """Tell the sandbox about a Messenger or Instagram channel; answer its credentials."""
    host = (urlsplit(settings.messenger_api_base_url).hostname or "").lower()
    if not host or host in META_HOSTS:
        raise _page_unavailable(settings, "that is Meta's API, not the sandbox")
    url = f"{settings.messenger_api_base_url.rstrip('/')}/_sandbox/meta/connect"
    body = {"page_id": page_id, "webhook_url": webhook_url, "provider": provider}
    answer = await _ask(http, url, body, lambda why: _page_unavailable(settings, why))
    try:
        return SandboxPage(
            page_id=str(answer["page_id"]),
            access_token=str(answer["access_token"]),
            app_secret=str(answer["app_secret"]),
        )
    except (KeyError, TypeError) as exc:
        raise _page_unavailable(settings, "its answer is not the sandbox's") from exc
