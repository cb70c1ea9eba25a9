"""What a webchat channel's row says about its website: which origins may embed it, what
the widget shows, and how it checks a logged-in visitor's identity."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

#: The pre-chat fields a site may ask for before the first message.
PRE_CHAT_FIELDS = ("name", "email")


def normalize_origin(value: str) -> str:
    """`scheme://host[:port]` in lower case, as a browser's Origin header spells it; a
    leading `*.` on the host allows every subdomain. ValueError names what is wrong."""
    text = value.strip().lower().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("an origin looks like https://www.example.com")
    if parts.path or parts.query or parts.fragment or "@" in parts.netloc:
        raise ValueError("an origin has no path, query or user: https://www.example.com")
    host = parts.netloc.removeprefix("*.")
    if not host or "*" in host:
        raise ValueError("a wildcard may only start the host: https://*.example.com")
    return f"{parts.scheme}://{parts.netloc}"


def origin_allowed(origin: str | None, allowed: tuple[str, ...]) -> bool:
    """Whether a browser's Origin header names a site of the allow-list (exactly, or a
    subdomain of a `*.` entry on the same scheme and port)."""
    if not origin:
        return False
    origin = origin.strip().lower()
    for entry in allowed:
        if origin == entry:
            return True
        scheme, _, host = entry.partition("://")
        if host.startswith("*.") and origin.startswith(f"{scheme}://"):
            suffix = host[1:]  # ".example.com[:port]"
            name = origin.removeprefix(f"{scheme}://")
            if name.endswith(suffix) and len(name) > len(suffix):
                return True
    return False


def user_hash(secret: str, user_id: str) -> str:
    """What the site's backend computes for a logged-in user: hex HMAC-SHA256 of the user
    id with the channel's identity secret (as Intercom and Crisp do)."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def identity_valid(secret: str | None, user_id: str, given_hash: str) -> bool:
    if not secret or not given_hash:
        return False
    return hmac.compare_digest(user_hash(secret, user_id), given_hash.strip().lower())


@dataclass(frozen=True)
class Site:
    allowed_origins: tuple[str, ...]
    welcome_message: str | None
    primary_color: str | None
    logo_url: str | None
    pre_chat_fields: tuple[str, ...]

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> Site:
        return cls(
            allowed_origins=tuple(config.get("allowed_origins") or ()),
            welcome_message=config.get("welcome_message"),
            primary_color=config.get("primary_color"),
            logo_url=config.get("logo_url"),
            pre_chat_fields=tuple(config.get("pre_chat_fields") or ()),
        )
