"""Whether an event has rules comes from the process's cache: a rule disabled, enabled again
or deleted applies to the very next message."""

from __future__ import annotations

import uuid

import httpx

from botplatform.automation import cache as automation_cache
from botplatform.kit.scoping import enter_workspace
from botplatform.runtime import Runtime
from tests.automation.helpers import Shop, settle, shop
from tests.conftest import Api, eventually

WA_ID = "15557770001"


async def _say(s: Shop, runtime: Runtime, text: str, count: int) -> None:
    """The customer writes; returns once the message is stored and every rule has run."""
    await s.api.inbound_text(s.channel["id"], WA_ID, text, name="Rita")
    conversation = await s.conversation("Rita")

    async def stored() -> bool:
        inbound = [m for m in await s.messages(conversation["id"]) if m["direction"] == "inbound"]
        return len(inbound) >= count

    await eventually(stored)
    await settle(runtime)


async def test_each_rule_change_applies_to_the_next_message(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    s = await shop(api)
    rule = await s.rule(event="message.received", actions=[{"type": "add_tag", "tags": ["seen"]}])
    url = s.url(f"/automations/{rule['id']}")

    async def change(body: dict[str, object]) -> None:
        response = await client.patch(url, json=body, headers=s.owner.headers)
        assert response.status_code == 200, response.text

    await _say(s, runtime, "one", 1)
    assert len(await s.runs(rule["id"])) == 1
    await change({"enabled": False})
    await _say(s, runtime, "two", 2)
    assert len(await s.runs(rule["id"])) == 1  # disabled: no run
    await change({"enabled": True})
    await _say(s, runtime, "three", 3)
    assert len(await s.runs(rule["id"])) == 2
    await change({"event": "conversation.resolved"})
    await _say(s, runtime, "four", 4)
    assert len(await s.runs(rule["id"])) == 2  # it waits for another event now
    ws = uuid.UUID(s.ws)
    assert runtime.cache.holds(automation_cache.KIND, ws, None)
    assert await _rule_events(runtime, ws) == frozenset({"conversation.resolved"})


async def _rule_events(runtime: Runtime, ws: uuid.UUID) -> frozenset[str]:
    async with runtime.db.unit_of_work(write=False) as db:
        await enter_workspace(db, ws)
        return await automation_cache.rule_events(db, ws)
