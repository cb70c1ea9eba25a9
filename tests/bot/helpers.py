"""Bot helpers over the HTTP API."""

from __future__ import annotations

from typing import Any

from tests.conftest import Account, Api

#: A live bot's smallest flow: "menu" is answered "Here is the menu".
MENU = {
    "triggers": [{"type": "keyword", "keywords": ["menu"], "node": "m"}],
    "nodes": [{"id": "m", "type": "end", "message": "Here is the menu"}],
    "edges": [],
}


async def create_bot(
    api: Api, owner: Account, ws: str, flow: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    response = await api.http.post(
        f"/api/v1/workspaces/{ws}/bots",
        json={"name": "Helper", "flow": flow, **extra},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    return dict(response.json()["data"])


async def publish(api: Api, owner: Account, ws: str, bot_id: str) -> dict[str, Any]:
    response = await api.http.post(
        f"/api/v1/workspaces/{ws}/bots/{bot_id}/versions", json={}, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json()["data"])


async def simulate(
    api: Api, owner: Account, ws: str, bot_id: str, *messages: Any, **extra: Any
) -> dict[str, Any]:
    body = {
        "messages": [m if isinstance(m, dict) else {"text": m} for m in messages],
        **extra,
    }
    response = await api.http.post(
        f"/api/v1/workspaces/{ws}/bots/{bot_id}/simulate", json=body, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


def sent(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["data"]["message"] for e in result["events"] if e["kind"] == "send"]


def texts(result: dict[str, Any]) -> list[str]:
    return [m.get("text", "") for m in sent(result)]


def kinds(result: dict[str, Any]) -> list[str]:
    return [e["kind"] for e in result["events"]]
