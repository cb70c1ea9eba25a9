"""Shared steps of the automation tests: a workspace with a WhatsApp channel, rules saved
through the API, and waiting until every automation event has been processed."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import func, select

from botplatform.models import AutomationEvent
from botplatform.runtime import Runtime
from tests.conftest import Account, Api, eventually


@dataclass
class Shop:
    api: Api
    owner: Account
    ws: str
    channel: dict[str, Any]

    @property
    def http(self) -> httpx.AsyncClient:
        return self.api.http

    def url(self, path: str) -> str:
        return f"/api/v1/workspaces/{self.ws}{path}"

    async def rule(self, **body: Any) -> dict[str, Any]:
        body.setdefault("name", "rule")
        response = await self.http.post(
            self.url("/automations"), json=body, headers=self.owner.headers
        )
        assert response.status_code == 201, response.text
        return dict(response.json()["data"])

    async def runs(self, rule_id: str, **params: Any) -> list[dict[str, Any]]:
        response = await self.http.get(
            self.url(f"/automations/{rule_id}/runs"), params=params, headers=self.owner.headers
        )
        assert response.status_code == 200, response.text
        return list(response.json()["data"]["items"])

    async def conversation(self, name: str) -> dict[str, Any]:
        return await self.api.conversation_of(self.owner, self.ws, name)

    async def get(self, path: str) -> dict[str, Any]:
        response = await self.http.get(self.url(path), headers=self.owner.headers)
        assert response.status_code == 200, response.text
        return dict(response.json()["data"])

    async def messages(self, conversation_id: str) -> list[dict[str, Any]]:
        data = await self.get(f"/conversations/{conversation_id}/messages")
        return list(data["items"])


async def shop(api: Api) -> Shop:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    return Shop(api, owner, ws, channel)


async def pending_events(runtime: Runtime) -> int:
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        statement = select(func.count()).where(AutomationEvent.status == "pending")
        return int((await db.execute(statement)).scalar_one())


async def settle(runtime: Runtime, rounds: int = 3) -> None:
    """Waits until no automation event is pending, several polls in a row (an event's
    actions may record further events)."""
    quiet = 0
    deadline = asyncio.get_running_loop().time() + 20
    while quiet < rounds:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("automation events still pending")
        quiet = quiet + 1 if await pending_events(runtime) == 0 else 0
        await asyncio.sleep(0.1)


async def runs_of(s: Shop, rule_id: str, count: int = 1) -> list[dict[str, Any]]:
    async def enough() -> list[dict[str, Any]] | None:
        found = await s.runs(rule_id)
        return found if len(found) >= count else None

    return list(await eventually(enough))
