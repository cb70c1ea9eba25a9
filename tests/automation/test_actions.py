"""Each action, their order, the run records, failures that leave the rest standing, the
loop guard, and that an event is processed once."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from sqlalchemy import select

from botplatform.automation import actions, runner
from botplatform.kit.scoping import enter_workspace
from botplatform.models import AutomationEvent, AutomationRun
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.automation.helpers import runs_of, settle, shop
from tests.conftest import Api, eventually
from tests.events.test_events import assert_valid, events_of


async def test_actions_run_in_order_and_are_recorded(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, wa: FakeGraph
) -> None:
    s = await shop(api)
    await api.subscribe(s.owner, s.ws)  # its events stored, read below
    agent = await api.add_member(s.owner, s.ws, "agent")
    rule = await s.rule(
        event="message.received",
        conditions={"type": "message_content", "operator": "contains", "value": "refund"},
        actions=[
            {"type": "add_label", "labels": ["refund"]},
            {"type": "assign_agent", "user_id": str(agent.user_id)},
            {"type": "add_tag", "tags": ["complained"]},
            {"type": "set_attribute", "key": "last_topic", "value": "refund"},
            {"type": "send_message", "message": {"text": "Sorry! An agent is on it."}},
            {"type": "resolve"},
        ],
    )
    await api.inbound_text(s.channel["id"], "15550002000", "I need a refund", name="Rita")
    await settle(runtime)
    # Its own answer is a message.sent, another event: the rule ran once.
    (run,) = await runs_of(s, rule["id"], 1)
    assert run["matched"] is True and run["outcome"] == "succeeded" and run["error"] is None
    assert [(a["index"], a["type"], a["status"]) for a in run["actions"]] == [
        (0, "add_label", "succeeded"),
        (1, "assign_agent", "succeeded"),
        (2, "add_tag", "succeeded"),
        (3, "set_attribute", "succeeded"),
        (4, "send_message", "succeeded"),
        (5, "resolve", "succeeded"),
    ]
    conversation = await s.conversation("Rita")
    assert run["conversation_id"] == conversation["id"]
    assert run["event"] == "message.received" and run["message_id"]
    assert conversation["labels"] == ["refund"]
    assert conversation["assignee_id"] == str(agent.user_id)
    assert conversation["status"] == "resolved"
    contact = await s.get(f"/contacts/{conversation['contact_id']}")
    assert contact["tags"] == ["complained"]
    assert contact["attributes"] == {"last_topic": "refund"}
    sent = await eventually(lambda: [m for m in wa.sent if m["type"] == "text"])
    assert sent[0]["to"] == "15550002000"
    assert sent[0]["body"]["text"]["body"] == "Sorry! An agent is on it."
    # What the rule did reaches webhooks as an agent's doing would.
    events = {e["type"]: e for e in await events_of(runtime, s.ws)}
    assigned = events["conversation.assigned"]["data"]
    assert assigned["conversation"]["assignee_id"] == str(agent.user_id)
    assert events["conversation.resolved"]["data"]["conversation"]["status"] == "resolved"
    for event in events.values():
        assert_valid(event)
    message_id = run["actions"][4]["detail"]["message_id"]
    messages = await s.messages(conversation["id"])
    assert [m["id"] for m in messages if m["direction"] == "outbound"] == [message_id]

    # A message that does not match is recorded too, with nothing done.
    await api.inbound_text(s.channel["id"], "15550002000", "thanks", name="Rita")
    await settle(runtime)
    latest = (await runs_of(s, rule["id"], 2))[0]
    assert (latest["matched"], latest["outcome"], latest["actions"]) == (
        False,
        "not_matched",
        [],
    )
    unmatched = [r["id"] for r in await s.runs(rule["id"], matched=False)]
    assert unmatched == [latest["id"]]
    assert [r["id"] for r in await s.runs(rule["id"], matched=True)] == [run["id"]]


async def test_a_failing_action_is_recorded_and_the_rest_still_run(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, wa: FakeGraph
) -> None:
    s = await shop(api)
    agent = await api.add_member(s.owner, s.ws, "agent")
    rule = await s.rule(
        event="message.received",
        conditions={"type": "message_direction", "value": "inbound"},
        actions=[
            {"type": "add_label", "labels": ["seen"]},
            {"type": "assign_agent", "user_id": str(agent.user_id)},
            {"type": "send_message", "message": {"text": "We got your message"}},
            {"type": "add_label", "labels": ["after"]},
        ],
    )
    # The agent leaves after the rule was saved; the contact has opted out (STOP).
    removed = await client.delete(s.url(f"/members/{agent.user_id}"), headers=s.owner.headers)
    assert removed.status_code == 200
    await api.inbound_text(s.channel["id"], "15550002001", "STOP", name="Olaf")
    await settle(runtime)
    (run,) = await runs_of(s, rule["id"])
    assert run["outcome"] == "failed"
    assert [(a["status"], (a["error"] or {}).get("code")) for a in run["actions"]] == [
        ("succeeded", None),
        ("failed", "agent_unavailable"),
        ("failed", "opted_out"),  # the policy gate every send goes through
        ("succeeded", None),
    ]
    conversation = await s.conversation("Olaf")
    assert conversation["labels"] == ["seen", "after"]
    assert conversation["assignee_id"] is None
    assert [m for m in await s.messages(conversation["id"]) if m["direction"] == "outbound"] == []
    assert wa.sent == []


async def test_resolving_and_creating_are_events_too(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    s = await shop(api)
    contact_rule = await s.rule(
        event="contact.created",
        conditions={"type": "channel", "value": [s.channel["id"]]},
        actions=[
            {"type": "add_tag", "tags": ["new"]},
            {"type": "set_attribute", "key": "source", "value": "whatsapp"},
        ],
    )
    conversation_rule = await s.rule(
        event="conversation.created", actions=[{"type": "add_label", "labels": ["fresh"]}]
    )
    resolved_rule = await s.rule(
        event="conversation.resolved", actions=[{"type": "add_label", "labels": ["closed"]}]
    )
    await api.inbound_text(s.channel["id"], "15550002002", "hello", name="Cora")
    await settle(runtime)
    conversation = await s.conversation("Cora")
    assert (await runs_of(s, contact_rule["id"]))[0]["contact_id"] == conversation["contact_id"]
    assert (await runs_of(s, conversation_rule["id"]))[0]["outcome"] == "succeeded"
    contact = await s.get(f"/contacts/{conversation['contact_id']}")
    assert (contact["tags"], contact["attributes"]) == (["new"], {"source": "whatsapp"})
    assert await s.runs(resolved_rule["id"]) == []

    resolved = await client.patch(
        s.url(f"/conversations/{conversation['id']}"),
        json={"status": "resolved"},
        headers=s.owner.headers,
    )
    assert resolved.status_code == 200
    await settle(runtime)
    assert (await runs_of(s, resolved_rule["id"]))[0]["outcome"] == "succeeded"
    assert sorted((await s.conversation("Cora"))["labels"]) == ["closed", "fresh"]
    # Resolving again is no new event; a second customer message is no new contact.
    await client.patch(
        s.url(f"/conversations/{conversation['id']}"),
        json={"status": "resolved"},
        headers=s.owner.headers,
    )
    await api.inbound_text(s.channel["id"], "15550002002", "again", name="Cora")
    await settle(runtime)
    assert len(await s.runs(resolved_rule["id"])) == 1
    assert len(await s.runs(contact_rule["id"])) == 1
    assert len(await s.runs(conversation_rule["id"])) == 1


async def test_agent_replies_are_message_sent_events(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, wa: FakeGraph
) -> None:
    """A customer's message is `message.received`, an agent's reply `message.sent` once the
    provider accepted it: the same names and moments as the webhook events."""
    s = await shop(api)
    await api.subscribe(s.owner, s.ws)  # its events stored, read below
    inbound_only = await s.rule(
        event="message.received",
        actions=[{"type": "add_label", "labels": ["customer-wrote"]}],
    )
    outbound_only = await s.rule(
        event="message.sent",
        conditions={"type": "message_direction", "value": "outbound"},
        actions=[{"type": "add_label", "labels": ["we-answered"]}],
    )
    await api.inbound_text(s.channel["id"], "15550002003", "hi", name="Dina")
    conversation = await s.conversation("Dina")
    reply = await client.post(
        s.url(f"/conversations/{conversation['id']}/messages"),
        json={"text": "Hello Dina"},
        headers=s.owner.headers,
    )
    assert reply.status_code == 201
    await eventually(lambda: [m for m in wa.sent if m["type"] == "text"])
    await settle(runtime)
    assert [r["matched"] for r in await runs_of(s, inbound_only["id"], 1)] == [True]
    (sent_run,) = await runs_of(s, outbound_only["id"], 1)
    assert sent_run["matched"] is True and sent_run["message_id"] == reply.json()["data"]["id"]
    assert sorted((await s.conversation("Dina"))["labels"]) == ["customer-wrote", "we-answered"]
    sent_event = [e for e in await events_of(runtime, s.ws) if e["type"] == "message.sent"]
    assert [e["data"]["message"]["id"] for e in sent_event] == [sent_run["message_id"]]


async def test_a_rule_never_triggers_itself(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, wa: FakeGraph
) -> None:
    """An echo on every sent message would answer its own answer forever; the loop guard
    records the second evaluation as skipped (the chain travels with the queued message to
    its `message.sent`, recorded by the send job)."""
    s = await shop(api)
    echo = await s.rule(
        event="message.sent",
        actions=[{"type": "send_message", "message": {"text": "Echo"}}],
    )
    await api.inbound_text(s.channel["id"], "15550002004", "hi", name="Eve")
    conversation = await s.conversation("Eve")
    first = await client.post(
        s.url(f"/conversations/{conversation['id']}/messages"),
        json={"text": "Hello Eve"},
        headers=s.owner.headers,
    )
    assert first.status_code == 201
    await eventually(lambda: len([m for m in wa.sent if m["type"] == "text"]) >= 2)
    await settle(runtime)
    skipped, ran = await runs_of(s, echo["id"], 2)
    assert ran["outcome"] == "succeeded"
    assert skipped["outcome"] == "skipped" and skipped["matched"] is True
    assert "loop guard" in skipped["error"]
    outbound = [m for m in await s.messages(conversation["id"]) if m["direction"] == "outbound"]
    assert sorted(m["text"] for m in outbound) == ["Echo", "Hello Eve"]
    assert len(await s.runs(echo["id"])) == 2


async def test_rules_feeding_each_other_stop_at_the_chain_limit(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, wa: FakeGraph
) -> None:
    """Two rules answering every sent message would ping-pong; each message they cause
    carries the chain of rules behind it, and a rule already in the chain does not run
    again."""
    s = await shop(api)
    ping = await s.rule(
        name="ping",
        event="message.received",
        actions=[{"type": "send_message", "message": {"text": "ping"}}],
    )
    pong = await s.rule(
        name="pong",
        event="message.sent",
        actions=[{"type": "send_message", "message": {"text": "pong"}}],
    )
    await api.inbound_text(s.channel["id"], "15550002005", "hi", name="Finn")
    await eventually(lambda: len([m for m in wa.sent if m["type"] == "text"]) >= 2)
    await settle(runtime)
    conversation = await s.conversation("Finn")
    outbound = [m for m in await s.messages(conversation["id"]) if m["direction"] == "outbound"]
    # hi → ping (chain ping); ping sent → pong (chain ping,pong); pong sent → pong skipped.
    assert sorted(m["text"] for m in outbound) == ["ping", "pong"]
    assert [r["outcome"] for r in await s.runs(ping["id"])] == ["succeeded"]
    assert sorted(r["outcome"] for r in await runs_of(s, pong["id"], 2)) == ["skipped", "succeeded"]


async def test_an_event_is_processed_once(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    """Queues deliver at least once: two copies of an event's job, even at the same time,
    run its rules once (the event row is locked, then found processed)."""
    s = await shop(api)
    rule = await s.rule(
        event="conversation.created", actions=[{"type": "add_label", "labels": ["a"]}]
    )
    await api.inbound_text(s.channel["id"], "15550002006", "hi", name="Gus")
    await settle(runtime)
    conversation = await s.conversation("Gus")
    ws = uuid.UUID(s.ws)
    async with runtime.db.unit_of_work() as db:  # an event whose job was "lost"
        await enter_workspace(db, ws)
        event = AutomationEvent(
            workspace_id=ws,
            event="conversation.created",
            status="pending",
            conversation_id=uuid.UUID(conversation["id"]),
            contact_id=uuid.UUID(conversation["contact_id"]),
            chain=[],
        )
        db.add(event)

    async def one_copy() -> int:
        async with runtime.db.unit_of_work() as db:
            await enter_workspace(db, ws)
            return await runner.process(db, ws, event.id, 3)

    assert sorted(await asyncio.gather(one_copy(), one_copy(), one_copy())) == [0, 0, 1]
    async with runtime.db.unit_of_work(write=False) as db:
        await enter_workspace(db, ws)
        runs = (
            (await db.execute(select(AutomationRun).where(AutomationRun.event_id == event.id)))
            .scalars()
            .all()
        )
    assert [str(r.rule_id) for r in runs] == [rule["id"]]
    assert len(await s.runs(rule["id"])) == 2


async def test_send_webhook_emits_a_schema_valid_event(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    s = await shop(api)
    await api.subscribe(s.owner, s.ws)  # its events stored, read below
    on_message = await s.rule(
        name="Escalate",
        event="message.received",
        conditions={"type": "message_content", "operator": "contains", "value": "urgent"},
        actions=[{"type": "send_webhook", "data": {"priority": "high", "score": 3}}],
    )
    on_contact = await s.rule(event="contact.created", actions=[{"type": "send_webhook"}])
    await api.inbound_text(s.channel["id"], "15550002007", "URGENT: call me", name="Hal")
    await settle(runtime)
    assert (await runs_of(s, on_message["id"]))[0]["actions"][0]["status"] == "succeeded"
    assert (await runs_of(s, on_contact["id"]))[0]["outcome"] == "succeeded"
    events = [e for e in await events_of(runtime, s.ws) if e["type"] == "automation.triggered"]
    assert len(events) == 2
    for event in events:
        assert_valid(event)
    by_rule = {e["data"]["rule"]["id"]: e["data"] for e in events}
    message_event = by_rule[on_message["id"]]
    conversation = await s.conversation("Hal")
    assert message_event["rule"]["name"] == "Escalate"
    assert message_event["trigger"]["type"] == "message.received"
    assert message_event["conversation"]["id"] == conversation["id"]
    assert message_event["message"]["text"] == "URGENT: call me"
    assert message_event["data"] == {"priority": "high", "score": 3}
    contact_event = by_rule[on_contact["id"]]
    assert contact_event["trigger"]["type"] == "contact.created"
    assert (contact_event["conversation"], contact_event["message"]) == (None, None)
    assert contact_event["contact"]["id"] == conversation["contact_id"]


async def test_a_disabled_rule_does_not_run(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    s = await shop(api)
    rule = await s.rule(
        event="conversation.created",
        enabled=False,
        actions=[{"type": "add_label", "labels": ["never"]}],
    )
    await api.inbound_text(s.channel["id"], "15550002008", "hi", name="Ivy")
    await settle(runtime)
    assert await s.runs(rule["id"]) == []
    assert (await s.conversation("Ivy"))["labels"] == []


async def test_an_action_that_crashes_is_recorded_not_retried_forever(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(ctx: object, action: object) -> dict[str, object]:
        raise RuntimeError("a bug")

    monkeypatch.setitem(actions.HANDLERS, "remove_tag", broken)
    s = await shop(api)
    rule = await s.rule(
        event="conversation.created",
        actions=[
            {"type": "remove_tag", "tags": ["x"]},
            {"type": "add_label", "labels": ["still"]},
        ],
    )
    await api.inbound_text(s.channel["id"], "15550002009", "hi", name="Jo")
    await settle(runtime)
    (run,) = await runs_of(s, rule["id"])
    assert [(a["status"], (a["error"] or {}).get("code")) for a in run["actions"]] == [
        ("failed", "internal_error"),
        ("succeeded", None),
    ]
    assert (await s.conversation("Jo"))["labels"] == ["still"]
