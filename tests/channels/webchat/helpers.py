"""A webchat channel and its visitor, as the widget drives them."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.conftest import Account, Api

SITE = "https://shop.example.com"


async def webchat_channel(api: Api, owner: Account, ws: str, **extra: Any) -> dict[str, Any]:
    body = {"provider": "webchat", "name": "Website", "allowed_origins": [SITE], **extra}
    response = await api.http.post(
        f"/api/v1/workspaces/{ws}/channels", json=body, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json()["data"])


class VisitorClient:
    """One browser of the site: its origin, its token."""

    def __init__(self, http: httpx.AsyncClient, channel_id: str, origin: str = SITE) -> None:
        self.http = http
        self.base = f"/widget/{channel_id}"
        self.origin = origin
        self.token: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        headers = {"Origin": self.origin}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    async def start(self, **body: Any) -> httpx.Response:
        if self.token and "token" not in body:
            body["token"] = self.token
        response = await self.http.post(f"{self.base}/session", json=body, headers=self.headers)
        if response.status_code == 200:
            self.token = response.json()["data"]["token"]
        return response

    async def say(self, text: str, client_id: str | None = None) -> httpx.Response:
        body = {"client_id": client_id or uuid.uuid4().hex, "text": text}
        return await self.http.post(f"{self.base}/messages", json=body, headers=self.headers)

    async def history(self, **params: Any) -> list[dict[str, Any]]:
        response = await self.http.get(f"{self.base}/messages", params=params, headers=self.headers)
        assert response.status_code == 200, response.text
        return list(response.json()["data"])
