"""The WhatsApp Business Management API's message templates, through the channel's Graph base
URL, version and token (the same ones its sends use):

    POST   /{waba_id}/message_templates                  create
    GET    /{waba_id}/message_templates?limit=&after=    list, page by page
    DELETE /{waba_id}/message_templates?name=&hsm_id=    delete (one language with hsm_id)

Meta's errors become the platform's own, all 4xx but an outage of Meta itself (502)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

from botplatform.channels.base import ChannelInfo
from botplatform.config import Settings
from botplatform.kit.errors import AppError, BadGateway, Conflict, TooManyRequests, Unprocessable

PAGE_SIZE = 100
FIELDS = (
    "id,name,language,status,category,components,quality_score,rejected_reason,parameter_format"
)
#: Meta's error_subcode for "content in this language already exists" and for a name whose
#: language is still being deleted (a deleted name is blocked for a while).
DUPLICATE_SUBCODES = frozenset({2388024, 2388023})
THROTTLED_CODES = frozenset({4, 80007, 130429})


class GraphRequest:
    """The base URL, WABA id and token of one channel's template calls."""

    def __init__(self, channel: ChannelInfo, settings: Settings, http: httpx.AsyncClient) -> None:
        if channel.provider != "whatsapp":
            raise Unprocessable(
                "Message templates exist for WhatsApp channels only.", code="not_whatsapp"
            )
        self.waba_id = str(channel.config.get("business_account_id") or "")
        if not self.waba_id:
            raise Unprocessable(
                "This channel has no WhatsApp Business Account id: set business_account_id "
                "on the channel (PATCH /api/v1/workspaces/{ws}/channels/{id}).",
                code="waba_id_missing",
            )
        token = channel.access_token or settings.whatsapp_api_key
        if not token:
            raise Unprocessable(
                "This channel has no access token: set access_token on the channel or "
                "WHATSAPP_API_KEY for the whole platform.",
                code="channel_not_configured",
            )
        self.http = http
        self.headers = {"Authorization": f"Bearer {token}"}
        base = settings.whatsapp_api_base_url.rstrip("/")
        self.url = f"{base}/{settings.whatsapp_api_version}/{self.waba_id}/message_templates"

    async def _call(
        self, method: str, *, params: dict[str, Any] | None = None, json: Any = None
    ) -> dict[str, Any]:
        try:
            response = await self.http.request(
                method, self.url, params=params, json=json, headers=self.headers
            )
        except httpx.HTTPError as exc:
            raise BadGateway(
                f"The WhatsApp API did not answer ({type(exc).__name__}).",
                code="provider_unavailable",
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 400:
            raise provider_error(response.status_code, body)
        return body if isinstance(body, dict) else {}

    async def create(self, payload: dict[str, Any]) -> dict[str, Any]:
        """`{"id", "status", "category"}` as Meta answers a new template."""
        return await self._call("POST", json=payload)

    async def pages(self) -> AsyncIterator[list[dict[str, Any]]]:
        """Every template of the account, one page at a time. The next page is asked with
        the `after` cursor on our own URL, never by following `paging.next` (a URL the
        answer names, which would carry the token wherever it points)."""
        params: dict[str, Any] = {"limit": PAGE_SIZE, "fields": FIELDS}
        for _ in range(1000):  # 100,000 templates: far beyond Meta's per-account limit
            body = await self._call("GET", params=params)
            data = body.get("data")
            yield (
                [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []
            )
            paging = body.get("paging") or {}
            after = (paging.get("cursors") or {}).get("after")
            if not paging.get("next") or not after:
                return
            params = {**params, "after": after}

    async def delete(self, name: str, hsm_id: str | None) -> None:
        params = {"name": name, **({"hsm_id": hsm_id} if hsm_id else {})}
        await self._call("DELETE", params=params)


def provider_error(status: int, body: Any) -> AppError:
    """Meta's error JSON as a clear platform error with its code and text kept."""
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    code, subcode = error.get("code"), error.get("error_subcode")
    text = str(
        error.get("error_user_msg")
        or (error.get("error_data") or {}).get("details")
        or error.get("message")
        or f"HTTP {status}"
    )
    details = {"provider_status": status, "provider_code": code, "provider_subcode": subcode}
    if status >= 500 and code not in THROTTLED_CODES:
        return BadGateway(f"The WhatsApp API failed: {text}", code="provider_unavailable")
    if code in THROTTLED_CODES or status == 429:
        return TooManyRequests(
            f"The WhatsApp API is throttling this account: {text}",
            code="provider_throttled",
            details=details,
        )
    if code == 190 or status in (401, 403):
        return Unprocessable(
            f"The WhatsApp API refused the channel's access token: {text}",
            code="provider_auth_failed",
            details=details,
        )
    if subcode in DUPLICATE_SUBCODES:
        return Conflict(
            f"WhatsApp already has this template: {text}", code="template_exists", details=details
        )
    if subcode == 33:
        return Unprocessable(
            f"The WhatsApp Business Account id is not known to the WhatsApp API: {text}",
            code="waba_not_found",
            details=details,
        )
    return Unprocessable(
        f"The WhatsApp API refused the template: {text}",
        code="provider_rejected",
        details=details,
    )
