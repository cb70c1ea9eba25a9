from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints, field_validator

from botplatform.kit.schemas import InputModel

# "#rrggbb" only: what <input type="color"> sends, and safe to write into a stylesheet as is.
HEX_COLOR = re.compile(r"^#[0-9a-f]{6}$")
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")

HexColor = Annotated[
    str, StringConstraints(strip_whitespace=True, to_lower=True, pattern=r"^#[0-9a-fA-F]{6}$")
]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def normalize_host(value: str) -> str:
    """A host name as a Host header or a form gives it: lower case, no port, no final dot."""
    host = value.strip().lower()
    if host.startswith("["):  # an IPv6 literal never names a workspace
        return host
    return host.rsplit(":", 1)[0].rstrip(".") if ":" in host else host.rstrip(".")


def check_domain(value: str) -> str:
    """A fully qualified DNS name of two labels or more; raises ValueError with the reason."""
    host = value.strip().lower().rstrip(".")
    if not host.isascii():
        raise ValueError("write an international name in its ASCII form (xn--…)")
    if len(host) > 253:
        raise ValueError("a host name is at most 253 characters")
    labels = host.split(".")
    if len(labels) < 2:
        raise ValueError("use a full host name such as chat.example.com")
    if not all(_LABEL.match(label) for label in labels):
        raise ValueError("each part may hold letters, digits and inner dashes, up to 63")
    if labels[-1].isdigit():  # an IPv4 address, or a name no resolver would take
        raise ValueError("an IP address is not a host name")
    return host


class BrandingIn(InputModel):
    """The whole branding: a field left out (or null) goes back to the platform's default."""

    name: DisplayName | None = Field(
        None, description="Display name on the login page and widget; the workspace's name if null"
    )
    primary_color: HexColor | None = Field(None, examples=["#0b7a5a"])
    background_color: HexColor | None = Field(None, examples=["#ffffff"])
    text_color: HexColor | None = Field(None, examples=["#1a1a1a"])
    custom_domain: str | None = Field(
        None,
        max_length=253,
        examples=["chat.example.com"],
        description="A host name served by this platform that shows this workspace's branding",
    )

    @field_validator("custom_domain")
    @classmethod
    def _domain(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return check_domain(value)


class BrandingOut(BaseModel):
    name: str | None = Field(description="The display name as set (null: not set)")
    display_name: str = Field(description="What is shown: `name`, or the workspace's name")
    primary_color: str | None
    background_color: str | None
    text_color: str | None
    logo_url: str | None = Field(description="Public URL of the logo, on this platform")
    custom_domain: str | None
