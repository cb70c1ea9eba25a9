"""Each quota holds where it is enforced: creating channels and bots, inviting and accepting
members, sending messages from the API and from the workers, the API keys' rate. Inbound
messages are always stored and counted."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from sqlalchemy import func, select

from botplatform.models import Bot, Channel, Invitation, Membership, Message
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.bot.flows import support_flow
from tests.bot.helpers import create_bot, publish
from tests.conftest import Account, Api, eventually, set_quota

WA_ID = "15557770000"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _count(runtime: Runtime, model: Any) -> int:
    async with runtime.db.unit_of_work(system=True) as db:
        return int((await db.execute(select(func.count()).select_from(model))).scalar_one())


def _refused(response: httpx.Response, quota: str) -> None:
    assert response.status_code == 402, response.text
    error = response.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert error["details"]["quota"] == quota and error["details"]["plan"] == "starter"


async def test_channels_beyond_the_plan_are_refused(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    await set_quota(runtime, "starter", channels=1)
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await api.create_channel(owner, ws)
    second = await client.post(
        f"/api/v1/workspaces/{ws}/channels",
        json={
            "name": "Sales",
            "phone_number_id": "99887766",
            "business_account_id": "1234",
            "access_token": "EAAG-other",
            "app_secret": "another-app-secret-123",
        },
        headers=owner.headers,
    )
    _refused(second, "channels")
    assert second.json()["error"]["details"]["used"] == 1
    assert await _count(runtime, Channel) == 1


async def test_bots_beyond_the_plan_are_refused(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    await set_quota(runtime, "starter", bots=1)
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await create_bot(api, owner, ws, support_flow())
    second = await client.post(
        f"/api/v1/workspaces/{ws}/bots",
        json={"name": "Second", "flow": support_flow()},
        headers=owner.headers,
    )
    _refused(second, "bots")
    assert await _count(runtime, Bot) == 1


async def test_members_beyond_the_plan_are_refused_at_invite_and_accept(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    await set_quota(runtime, "starter", members=3)
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await api.add_member(owner, ws, "agent")  # 2 members
    early = await api.register()
    await api.invite(owner, ws, early.email, "viewer")  # 2 members + 1 pending
    third = await client.post(
        f"/api/v1/workspaces/{ws}/invitations",
        json={"email": "late@example.com", "role": "viewer"},
        headers=owner.headers,
    )
    _refused(third, "members")
    # Inviting the same person again replaces the pending invitation: not refused.
    again = await api.invite(owner, ws, early.email, "agent")
    await set_quota(runtime, "starter", members=2)  # the plan shrank after the invitation
    token = again["link"].split("token=", 1)[1]
    accepted = await client.post(
        "/api/v1/invitations/accept", json={"token": token}, headers=early.headers
    )
    _refused(accepted, "members")
    assert await _count(runtime, Membership) == 2
    assert await _count(runtime, Invitation) == 3  # the member's, and two for `early`


async def _usage(client: httpx.AsyncClient, owner: Account, ws: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/workspaces/{ws}/usage", headers=owner.headers)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    return {q["name"]: q for q in data["quotas"]} | {
        "in": data["messages_inbound"],
        "out": data["messages_outbound"],
    }


async def _messages(runtime: Runtime, direction: str) -> list[Message]:
    async with runtime.db.unit_of_work(system=True) as db:
        statement = select(Message).where(Message.direction == direction)
        return list((await db.execute(statement.order_by(Message.created_at))).scalars())


async def test_message_quota_stops_worker_and_api_sends_but_never_inbound(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, wa: FakeGraph
) -> None:
    await set_quota(runtime, "starter", messages_per_month=3)
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws, auto_reply="Thanks, we will answer soon.")
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"

    await api.inbound_text(channel["id"], WA_ID, "hello", name="Quinn")  # 1 in + 1 reply
    await eventually(lambda: len(wa.sent) == 1)
    await api.inbound_text(channel["id"], WA_ID, "anyone?", name="Quinn")  # 3: reply refused

    async def refused_reply() -> bool:
        outbound = await _messages(runtime, "outbound")
        return len(outbound) == 2 and outbound[1].status == "failed"

    await eventually(refused_reply)
    first, second = await _messages(runtime, "outbound")
    assert first.status in ("sent", "delivered", "read")
    assert (second.error_code, second.attempts) == ("quota_exceeded", 1)
    assert len(wa.sent) == 1

    # Beyond the quota, customers' messages still arrive, are stored and counted.
    await api.inbound_text(channel["id"], WA_ID, "hello again", name="Quinn")
    await eventually(lambda: _inbound_count(runtime, 3))
    used = await _usage(client, owner, ws)
    assert (used["in"], used["out"]) == (3, 1)
    assert used["messages_per_month"] == {
        "name": "messages_per_month",
        "limit": 3,
        "used": 4,
        "remaining": 0,
    }

    await eventually(lambda: _outbound_failed(runtime, 2))  # the third one's reply too
    conversation = await api.conversation_of(owner, ws, "Quinn")
    url = f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages"
    reply = await client.post(url, json={"text": "Hi Quinn"}, headers=owner.headers)
    _refused(reply, "messages_per_month")
    direct = await client.post(
        f"/api/v1/workspaces/{ws}/messages",
        json={"channel_id": channel["id"], "to": WA_ID, "text": "x"},
        headers=owner.headers,
    )
    _refused(direct, "messages_per_month")
    assert len(await _messages(runtime, "outbound")) == 3  # nothing created by the API
    await asyncio.sleep(0.3)
    assert len(wa.sent) == 1


async def _outbound_failed(runtime: Runtime, n: int) -> bool:
    failed = [m for m in await _messages(runtime, "outbound") if m.status == "failed"]
    return len(failed) == n and all(m.error_code == "quota_exceeded" for m in failed)


async def _inbound_count(runtime: Runtime, n: int) -> bool:
    return len(await _messages(runtime, "inbound")) == n


async def test_a_message_accepted_under_the_quota_is_counted_once_when_sent(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, wa: FakeGraph
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"
    await api.inbound_text(channel["id"], WA_ID, "hi", name="Rae")
    conversation = await api.conversation_of(owner, ws, "Rae")
    url = f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages"
    for text in ("one", "two"):
        sent = await client.post(url, json={"text": text}, headers=owner.headers)
        assert sent.status_code == 201, sent.text
    await eventually(lambda: len(wa.sent) == 2)
    used = await _usage(client, owner, ws)
    assert (used["in"], used["out"]) == (1, 2)


async def test_api_keys_share_the_plans_rate_per_workspace(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    first = (await api.create_key(owner, ws, ["workspace:read"]))["key"]
    second = (await api.create_key(owner, ws, ["workspace:read"]))["key"]
    await set_quota(runtime, "starter", api_requests_per_minute=2)
    url = f"/api/v1/workspaces/{ws}"
    statuses = [
        (await client.get(url, headers=bearer(key))).status_code for key in (first, second, first)
    ]
    assert statuses == [200, 200, 429]
    # Another workspace on the same plan has its own budget.
    other = await api.create_workspace(owner, "Other")
    key = (await api.create_key(owner, other, ["workspace:read"]))["key"]
    answer = await client.get(f"/api/v1/workspaces/{other}", headers=bearer(key))
    assert answer.status_code == 200
    await set_quota(runtime, "starter", api_requests_per_minute=None)  # unlimited
    assert (await client.get(url, headers=bearer(first))).status_code == 200


async def test_a_bots_reply_over_the_quota_fails_in_the_worker(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, wa: FakeGraph
) -> None:
    await set_quota(runtime, "starter", messages_per_month=1)
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"
    bot = await create_bot(api, owner, ws, support_flow(), channel_ids=[channel["id"]])
    await publish(api, owner, ws, bot["id"])
    await api.inbound_text(channel["id"], WA_ID, "hi", name="Sam")  # the quota's one message
    await eventually(lambda: _outbound_failed(runtime, 1))
    (reply,) = await _messages(runtime, "outbound")
    assert reply.type in ("interactive", "text") and reply.error_code == "quota_exceeded"
    assert len(await _messages(runtime, "inbound")) == 1
    await asyncio.sleep(0.3)
    assert wa.sent == []
