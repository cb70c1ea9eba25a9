"""Which bots are live comes from the process's cache: a bot published, disabled or deleted
answers (or stops answering) the very next message, and a message on a channel no bot serves
takes no conversation lock and reads no bot, rule, endpoint or plan."""

from __future__ import annotations

import uuid

import httpx

from botplatform.bot import cache as bot_cache
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.bot.helpers import MENU, create_bot, publish
from tests.conftest import Api, eventually, sql_statements

WA_ID = "15558880001"


async def _reply_to(api: Api, wa: FakeGraph, channel_id: str, text: str) -> str:
    before = len(wa.sent)
    await api.inbound_text(channel_id, WA_ID, text, name="Dana")
    sent = await eventually(lambda: wa.sent[before:])
    body = sent[0]["body"]
    return str(body["text"]["body"])


async def test_publish_disable_and_delete_apply_to_the_next_message(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws, auto_reply="Auto")
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"
    assert await _reply_to(api, wa, channel["id"], "menu") == "Auto"  # no bot yet
    assert runtime.cache.holds(bot_cache.KIND, uuid.UUID(ws), None)  # "none" is kept too

    bot = await create_bot(api, owner, ws, MENU)
    assert await _reply_to(api, wa, channel["id"], "menu") == "Auto"  # a draft is not live
    await publish(api, owner, ws, bot["id"])
    assert await _reply_to(api, wa, channel["id"], "menu") == "Here is the menu"

    bot_url = f"/api/v1/workspaces/{ws}/bots/{bot['id']}"
    off = await client.patch(bot_url, json={"enabled": False}, headers=owner.headers)
    assert off.status_code == 200, off.text
    assert await _reply_to(api, wa, channel["id"], "menu") == "Auto"
    on = await client.patch(bot_url, json={"enabled": True}, headers=owner.headers)
    assert on.status_code == 200, on.text
    assert await _reply_to(api, wa, channel["id"], "menu") == "Here is the menu"
    deleted = await client.delete(bot_url, headers=owner.headers)
    assert deleted.status_code == 200, deleted.text
    assert await _reply_to(api, wa, channel["id"], "menu") == "Auto"


async def test_a_message_no_bot_can_act_on_takes_no_lock_and_no_lookup(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws, auto_reply="Auto")
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"
    other = await api.create_channel(owner, ws, phone_number_id="99887766")
    bot = await create_bot(api, owner, ws, MENU, channel_ids=[other["id"]])  # not this channel
    await publish(api, owner, ws, bot["id"])
    assert await _reply_to(api, wa, channel["id"], "menu") == "Auto"  # warms the caches

    with sql_statements(runtime) as seen:
        assert await _reply_to(api, wa, channel["id"], "menu") == "Auto"
    assert seen, "the statement listener saw nothing"
    # (The status webhooks of the reply lock their message row: that is not the bot's lock.)
    assert not [s for s in seen if "from conversations" in s and "for update" in s]
    for table in ("bots", "bot_versions", "automation_rules", "webhook_endpoints", "plans"):
        assert not [s for s in seen if f"from {table}" in s or f"join {table}" in s], table
