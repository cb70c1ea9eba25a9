"""Bots over WhatsApp end to end, against the fake Graph API on loopback: the conversation of
the issue ("hi" → buttons → a button reply → a question → a stored answer → handoff → an
agent replies), version pinning across a publish, handoff and resume, delays that survive a
lost job, and the plain auto-reply where no bot answers."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from botplatform.bot.tasks import release_idle_handoffs
from botplatform.kit.clock import utcnow
from botplatform.models import BotSession, Conversation
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from botplatform.worker.jobs import JobContext
from botplatform.worker.sweeper import sweep_once
from tests.bot.flows import edge, support_flow
from tests.bot.helpers import create_bot, publish
from tests.conftest import Account, Api, eventually, meta_signature
from tests.events.test_events import events_of

WA_ID = "15551230000"


async def _button_reply(api: Api, channel_id: str, button_id: str, title: str) -> None:
    """A signed webhook of a customer tapping a reply button, as Meta sends it."""
    message = {
        "from": WA_ID,
        "id": f"wamid.{uuid.uuid4().hex}",
        "timestamp": str(int(time.time())),
        "type": "interactive",
        "interactive": {"type": "button_reply", "button_reply": {"id": button_id, "title": title}},
    }
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": "1122334455667"},
        "contacts": [{"profile": {"name": "Dana"}, "wa_id": WA_ID}],
        "messages": [message],
    }
    payload = {
        "object": "whatsapp_business_account",
        "entry": [
            {"id": "1234567890987654321", "changes": [{"value": value, "field": "messages"}]}
        ],
    }
    body = json.dumps(payload).encode()
    response = await api.http.post(
        f"/webhooks/whatsapp/{channel_id}", content=body, headers=meta_signature(body)
    )
    assert response.status_code == 200, response.text


async def _setup(
    api: Api, wa: FakeGraph, flow: dict[str, Any], **channel: Any
) -> tuple[Account, str, dict[str, Any], dict[str, Any]]:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await api.subscribe(owner, ws)  # its events stored, read by some tests
    created = await api.create_channel(owner, ws, **channel)
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{created['id']}"
    bot = await create_bot(api, owner, ws, flow)
    await publish(api, owner, ws, bot["id"])
    return owner, ws, created, bot


async def _nth_sent(wa: FakeGraph, count: int, timeout: float = 15) -> dict[str, Any]:
    sent = await eventually(lambda: wa.sent if len(wa.sent) >= count else None, timeout)
    return dict(sent[count - 1])


def _text(sent: dict[str, Any]) -> str:
    body = sent["body"]
    if sent["type"] == "interactive":
        return str(body["interactive"]["body"]["text"])
    return str(body["text"]["body"])


async def _conversation(api: Api, owner: Account, ws: str, conversation_id: str) -> dict[str, Any]:
    response = await api.http.get(
        f"/api/v1/workspaces/{ws}/conversations/{conversation_id}", headers=owner.headers
    )
    return dict(response.json()["data"])


async def _inbound_count(api: Api, owner: Account, ws: str, conversation_id: str) -> int:
    response = await api.http.get(
        f"/api/v1/workspaces/{ws}/conversations/{conversation_id}/messages",
        headers=owner.headers,
    )
    return sum(1 for m in response.json()["data"]["items"] if m["direction"] == "inbound")


async def _say_and_wait(
    api: Api, owner: Account, ws: str, channel_id: str, conversation_id: str, text: str
) -> None:
    """The customer writes; returns once the worker has stored (and handled) it."""
    before = await _inbound_count(api, owner, ws, conversation_id)
    await api.inbound_text(channel_id, WA_ID, text, name="Dana")

    async def processed() -> bool:
        return await _inbound_count(api, owner, ws, conversation_id) > before

    await eventually(processed)
    await asyncio.sleep(0.3)  # any reply the bot were to queue would be sent by now


async def test_hi_buttons_reply_question_answer_handoff_agent_replies(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    owner, ws, channel, _bot = await _setup(api, wa, support_flow())
    await api.inbound_text(channel["id"], WA_ID, "hi", name="Dana")

    menu = await _nth_sent(wa, 1)
    assert menu["type"] == "interactive" and menu["to"] == WA_ID
    interactive = menu["body"]["interactive"]
    assert interactive["body"]["text"] == "Hi Dana! What do you need?"
    assert [b["reply"]["id"] for b in interactive["action"]["buttons"]] == ["sales", "support"]
    conversation = await api.conversation_of(owner, ws, "Dana")
    assert (await _conversation(api, owner, ws, conversation["id"]))["status"] == "bot"

    await _button_reply(api, channel["id"], "sales", "Sales")
    question = await _nth_sent(wa, 2)
    assert _text(question) == "Your email, please?"

    await api.inbound_text(channel["id"], WA_ID, "Dana@Example.com", name="Dana")
    handoff = await _nth_sent(wa, 3)
    assert _text(handoff) == "Thanks! An agent will write to dana@example.com shortly."
    contact = (
        await client.get(
            f"/api/v1/workspaces/{ws}/contacts/{conversation['contact_id']}",
            headers=owner.headers,
        )
    ).json()["data"]
    assert contact["attributes"] == {"email": "dana@example.com"}
    assert (await _conversation(api, owner, ws, conversation["id"]))["status"] == "open"
    messages = (
        await client.get(
            f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages",
            headers=owner.headers,
        )
    ).json()["data"]["items"]
    assert [m["text"] for m in messages if m["is_note"]] == ["Lead for sales"]
    (handed,) = [e for e in await events_of(runtime, ws) if e["type"] == "bot.handoff"]
    assert handed["data"]["reason"] == "handoff_node"
    assert handed["data"]["bot_id"] == _bot["id"]
    assert handed["data"]["conversation"]["id"] == conversation["id"]

    # The bot is paused: the customer's next message waits for the agent.
    await _say_and_wait(api, owner, ws, channel["id"], conversation["id"], "hello?")
    assert len(wa.sent) == 3
    reply = await client.post(
        f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages",
        json={"text": "Hi Dana, Sam here. How can I help?"},
        headers=owner.headers,
    )
    assert reply.status_code == 201, reply.text
    agent = await _nth_sent(wa, 4)
    assert _text(agent) == "Hi Dana, Sam here. How can I help?"
    assert (await _conversation(api, owner, ws, conversation["id"]))["status"] == "open"

    # Resolving gives the conversation back: the bot answers the next "hi".
    resolved = await client.patch(
        f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}",
        json={"status": "resolved"},
        headers=owner.headers,
    )
    assert resolved.status_code == 200
    await api.inbound_text(channel["id"], WA_ID, "hi", name="Dana")
    assert (await _nth_sent(wa, 5))["type"] == "interactive"


def _ask_flow(question: str, goodbye: str) -> dict[str, Any]:
    return {
        "triggers": [{"type": "keyword", "keywords": ["order"], "node": "ask"}],
        "nodes": [
            {
                "id": "ask",
                "type": "ask",
                "question": question,
                "attribute": "order_number",
                "validation": "number",
            },
            {"id": "bye", "type": "end", "message": goodbye + " {{contact.order_number}}"},
        ],
        "edges": [edge("ask", "bye")],
    }


async def test_a_running_conversation_finishes_on_the_version_it_started_with(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner, ws, channel, bot = await _setup(api, wa, _ask_flow("Order number?", "v1 got"))
    await api.inbound_text(channel["id"], WA_ID, "order", name="Dana")
    assert _text(await _nth_sent(wa, 1)) == "Order number?"

    changed = await client.patch(
        f"/api/v1/workspaces/{ws}/bots/{bot['id']}",
        json={"flow": _ask_flow("Which order?", "v2 got")},
        headers=owner.headers,
    )
    assert changed.status_code == 200 and changed.json()["data"]["draft_revision"] == 2
    v2 = await publish(api, owner, ws, bot["id"])
    assert v2["number"] == 2

    await api.inbound_text(channel["id"], WA_ID, "1234", name="Dana")
    assert _text(await _nth_sent(wa, 2)) == "v1 got 1234"  # pinned to version 1
    await api.inbound_text(channel["id"], "15559870000", "order", name="Eli")
    assert _text(await _nth_sent(wa, 3)) == "Which order?"  # a new run: version 2
    await api.inbound_text(channel["id"], WA_ID, "order", name="Dana")
    assert _text(await _nth_sent(wa, 4)) == "Which order?"  # Dana's next run too


async def test_agent_reply_pauses_and_the_idle_timer_gives_back(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    flow = support_flow()
    owner, ws, channel, bot = await _setup(api, wa, flow)
    await client.patch(
        f"/api/v1/workspaces/{ws}/bots/{bot['id']}",
        json={"handoff_idle_minutes": 5},
        headers=owner.headers,
    )
    await api.inbound_text(channel["id"], WA_ID, "hi", name="Dana")
    await _nth_sent(wa, 1)
    conversation = await api.conversation_of(owner, ws, "Dana")
    await client.post(
        f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages",
        json={"text": "Sam here, I'll take it from here"},
        headers=owner.headers,
    )
    await _nth_sent(wa, 2)
    await _say_and_wait(api, owner, ws, channel["id"], conversation["id"], "hi")
    assert len(wa.sent) == 2  # paused by the agent's reply, even mid-run
    handoffs = [e for e in await events_of(runtime, ws) if e["type"] == "bot.handoff"]
    assert [(e["data"]["reason"], e["data"]["bot_id"]) for e in handoffs] == [
        ("agent_reply", bot["id"])
    ]

    async with runtime.db.unit_of_work(system=True) as db:  # the agent went quiet 4 min ago
        await db.execute(update(BotSession).values(human_at=utcnow() - timedelta(minutes=4)))
        await release_idle_handoffs(JobContext(runtime, db, "t", 1, 1))
    assert (await _conversation(api, owner, ws, conversation["id"]))["status"] == "open"

    async with runtime.db.unit_of_work(system=True) as db:  # ... and now 6 minutes ago
        await db.execute(update(BotSession).values(human_at=utcnow() - timedelta(minutes=6)))
        await release_idle_handoffs(JobContext(runtime, db, "t", 1, 1))
    assert (await _conversation(api, owner, ws, conversation["id"]))["status"] == "bot"
    await api.inbound_text(channel["id"], WA_ID, "hi", name="Dana")
    assert (await _nth_sent(wa, 3))["type"] == "interactive"


async def test_the_idle_timer_is_checked_on_the_next_message_too(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    owner, ws, channel, _ = await _setup(api, wa, support_flow())
    await api.inbound_text(channel["id"], WA_ID, "hi", name="Dana")
    await _nth_sent(wa, 1)
    conversation = await api.conversation_of(owner, ws, "Dana")
    await client.post(
        f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages",
        json={"text": "Agent here"},
        headers=owner.headers,
    )
    await _nth_sent(wa, 2)
    default = runtime.settings.bot_handoff_idle_minutes
    async with runtime.db.unit_of_work(system=True) as db:
        await db.execute(
            update(BotSession).values(human_at=utcnow() - timedelta(minutes=default + 1))
        )
    await api.inbound_text(channel["id"], WA_ID, "hi", name="Dana")
    assert (await _nth_sent(wa, 3))["type"] == "interactive"


async def test_a_delay_survives_a_lost_job(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    flow = {
        "triggers": [{"type": "any_message", "node": "ack"}],
        "nodes": [
            {"id": "ack", "type": "send_text", "text": "Got it, back in an hour"},
            {"id": "wait", "type": "delay", "seconds": 3600},
            {"id": "later", "type": "send_text", "text": "An hour later, {{contact.name}}"},
        ],
        "edges": [edge("ack", "wait"), edge("wait", "later")],
    }
    _, _, channel, _ = await _setup(api, wa, flow)
    await api.inbound_text(channel["id"], WA_ID, "ping", name="Dana")
    await _nth_sent(wa, 1)

    async def waiting() -> BotSession | None:
        async with runtime.db.unit_of_work(write=False, system=True) as db:
            row = (await db.execute(select(BotSession))).scalar_one_or_none()
            return row if row is not None and row.waiting == "delay" else None

    session = await eventually(waiting)
    assert session.resume_at is not None
    assert timedelta(minutes=59) < session.resume_at - utcnow() <= timedelta(hours=1)
    # The process restarts and the queued job is lost; the hour passes. The row is the truth:
    # the sweeper finds the delay due and queues it again.
    past = utcnow() - timedelta(minutes=10)
    async with runtime.db.unit_of_work(system=True) as db:
        await db.execute(update(BotSession).values(resume_at=past, updated_at=past))
    async with runtime.db.unit_of_work(system=True) as db:
        swept = await sweep_once(JobContext(runtime, db, "sweep", 1, 1), after_seconds=0)
    assert swept["bot_delays"] == 1
    assert _text(await _nth_sent(wa, 2)) == "An hour later, Dana"
    async with runtime.db.unit_of_work(system=True) as db:  # a second copy does nothing
        from botplatform.bot.tasks import bot_resume

        row = (await db.execute(select(BotSession))).scalar_one()
        assert row.status == "finished"
        await bot_resume(JobContext(runtime, db, "again", 1, 1), str(row.workspace_id), str(row.id))
    await asyncio.sleep(0.3)
    assert len(wa.sent) == 2


async def test_auto_reply_where_no_bot_answers(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    flow = {
        "triggers": [{"type": "keyword", "keywords": ["menu"], "node": "m"}],
        "nodes": [{"id": "m", "type": "end", "message": "Here is the menu"}],
        "edges": [],
    }
    owner, ws, channel, bot = await _setup(api, wa, flow, auto_reply="We answer within the hour.")
    await api.inbound_text(channel["id"], WA_ID, "hello", name="Dana")
    assert _text(await _nth_sent(wa, 1)) == "We answer within the hour."  # no trigger matched
    await api.inbound_text(channel["id"], WA_ID, "menu", name="Dana")
    assert _text(await _nth_sent(wa, 2)) == "Here is the menu"  # the bot, not the auto-reply
    await asyncio.sleep(0.3)
    assert len(wa.sent) == 2
    other = str(uuid.uuid4())
    scoped_away = await client.patch(
        f"/api/v1/workspaces/{ws}/bots/{bot['id']}",
        json={"channel_ids": [other]},
        headers=owner.headers,
    )
    assert scoped_away.status_code == 404  # not a channel of this workspace
    disabled = await client.patch(
        f"/api/v1/workspaces/{ws}/bots/{bot['id']}", json={"enabled": False}, headers=owner.headers
    )
    assert disabled.status_code == 200
    await api.inbound_text(channel["id"], WA_ID, "menu", name="Dana")
    assert _text(await _nth_sent(wa, 3)) == "We answer within the hour."


async def test_conversation_status_moves_with_the_bot(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph, runtime: Runtime
) -> None:
    _, _, channel, _ = await _setup(api, wa, support_flow())
    await api.inbound_text(channel["id"], WA_ID, "hi", name="Dana")
    await _nth_sent(wa, 1)
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        statuses = (await db.execute(select(Conversation.status))).scalars().all()
        session = (await db.execute(select(BotSession))).scalar_one()
    assert statuses == ["bot"]
    assert (session.status, session.node_id, session.waiting) == ("running", "menu", "input")


async def test_a_short_delay_runs_from_its_queued_job(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    flow = {
        "triggers": [{"type": "any_message", "node": "wait"}],
        "nodes": [
            {"id": "wait", "type": "delay", "seconds": 1},
            {"id": "later", "type": "send_text", "text": "A second later"},
        ],
        "edges": [edge("wait", "later")],
    }
    _, _, channel, _ = await _setup(api, wa, flow)
    started = asyncio.get_running_loop().time()
    await api.inbound_text(channel["id"], WA_ID, "ping", name="Dana")
    assert _text(await _nth_sent(wa, 1)) == "A second later"
    assert asyncio.get_running_loop().time() - started >= 1
