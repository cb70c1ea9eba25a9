"""Analytics from a seeded, known history: a workspace in Europe/Paris with business hours
(Mon-Fri 09:00-17:00) across the DST change of Sunday 2026-10-25 (a 25-hour local day),
a reopened conversation, a late status webhook; every figure checked against a value
computed by hand. Then the cycles written by the real paths (webhook, resolve), and the
API (JSON and CSV the same, bad parameters a 4xx)."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select, update

from botplatform.analytics import reports, service
from botplatform.analytics.timing import business_seconds, day_window, percentile
from botplatform.business_hours.schemas import BusinessHours
from botplatform.kit.clock import utcnow
from botplatform.models import (
    AiUsage,
    AnalyticsDaily,
    AutomationEvent,
    AutomationRule,
    AutomationRun,
    Broadcast,
    BroadcastRecipient,
    ConsentEvent,
    Contact,
    Conversation,
    ConversationCycle,
    Message,
    Workspace,
)
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.bot.helpers import create_bot, publish
from tests.channel.test_batch_equivalence import _run as _run_job
from tests.channel.test_batch_equivalence import _store, _text
from tests.conftest import Account, Api, driver_statements, eventually, sql_statements


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


HOURS = {"mon": [{"start": "09:00", "end": "17:00"}], "tue": [{"start": "09:00", "end": "17:00"}],
         "wed": [{"start": "09:00", "end": "17:00"}], "thu": [{"start": "09:00", "end": "17:00"}],
         "fri": [{"start": "09:00", "end": "17:00"}]}  # fmt: skip
BOT, VERSION = uuid.uuid4(), uuid.uuid4()
AFTER = utc("2026-10-28T12:00:00")  # the job runs after the history


@dataclass
class History:
    owner: Account
    ws: uuid.UUID
    channel: uuid.UUID
    late_message: uuid.UUID  # the agent's Monday reply, whose "read" arrives late


async def _seed(api: Api, runtime: Runtime) -> History:
    owner = await api.register()
    ws = uuid.UUID(await api.create_workspace(owner))
    channel = uuid.UUID((await api.create_channel(owner, str(ws)))["id"])
    async with runtime.db.unit_of_work(system=True) as db:
        workspace = await db.get(Workspace, ws)
        assert workspace is not None
        workspace.timezone, workspace.business_hours = "Europe/Paris", HOURS

        async def thread(name: str) -> uuid.UUID:
            contact = Contact(workspace_id=ws, name=name)
            db.add(contact)
            await db.flush()
            conversation = Conversation(workspace_id=ws, channel_id=channel, contact_id=contact.id)
            db.add(conversation)
            await db.flush()
            return conversation.id

        def message(conversation: uuid.UUID, direction: str, at: str, **extra: Any) -> Message:
            row = Message(
                workspace_id=ws, conversation_id=conversation, channel_id=channel,
                direction=direction, type="text", text="hi", created_at=utc(at), content={},
                status="received" if direction == "inbound" else "sent", **extra,
            )  # fmt: skip
            db.add(row)
            return row

        def cycle(conversation: uuid.UUID, opened: str, resolved: str | None, **extra: Any) -> None:
            db.add(
                ConversationCycle(
                    workspace_id=ws, conversation_id=conversation, channel_id=channel,
                    opened_at=utc(opened), resolved_at=utc(resolved) if resolved else None,
                    bot_id=BOT, bot_version_id=VERSION, **extra,
                )
            )  # fmt: skip

        one, two, three = await thread("one"), await thread("two"), await thread("three")
        # one: Friday 16:00 local, answered by the agent Monday 09:30, resolved 10:00; the
        # customer writes again at 11:00 (reopened), the bot answers 30 s later.
        message(one, "inbound", "2026-10-23T14:00:00")
        late = message(one, "outbound", "2026-10-26T08:30:00", sender_user_id=owner.user_id)
        message(one, "inbound", "2026-10-26T10:00:00")
        message(one, "outbound", "2026-10-26T10:00:30")
        cycle(one, "2026-10-23T14:00:00", "2026-10-26T09:00:00", bot_outcome="handoff")
        cycle(one, "2026-10-26T10:00:00", None, reopened=True, bot_outcome="completed")
        # two: Sunday 00:30 local (+02:00, still Saturday in UTC), answered an hour later,
        # resolved Monday 09:00 local (+01:00).
        message(two, "inbound", "2026-10-24T22:30:00")
        message(two, "outbound", "2026-10-24T23:30:00", sender_user_id=owner.user_id)
        cycle(two, "2026-10-24T22:30:00", "2026-10-26T08:00:00", bot_node_id="menu")
        # three: Sunday 23:30 local (+01:00), never answered; the bot waits at "ask_name".
        message(three, "inbound", "2026-10-25T22:30:00")
        cycle(three, "2026-10-25T22:30:00", None, bot_node_id="ask_name")
        # The consent ledger and the AI meter, around the DST night.
        contact_three = (await db.get(Conversation, three)).contact_id  # type: ignore[union-attr]
        at = utc("2026-10-25T22:40:00")  # Sunday 23:40 local
        db.add(ConsentEvent(workspace_id=ws, contact_id=contact_three, action="opt_out",
                            source="keyword", channel_id=channel, created_at=at))  # fmt: skip
        db.add(ConsentEvent(workspace_id=ws, contact_id=contact_three, action="opt_in",
                            source="agent", channel_id=channel,
                            created_at=utc("2026-10-25T23:10:00")))  # fmt: skip
        for outcome in ("ok", "ok", "timeout"):
            db.add(AiUsage(workspace_id=ws, model="m", outcome=outcome, created_at=at))
        rule = AutomationRule(workspace_id=ws, name="r", event="message.received", actions=[])
        trigger = AutomationEvent(workspace_id=ws, event="message.received", chain=[])
        db.add_all([rule, trigger])
        await db.flush()
        run = AutomationRun(
            workspace_id=ws, rule_id=rule.id, event_id=trigger.id, event="message.received",
            outcome="succeeded", created_at=at,
        )  # fmt: skip
        db.add(run)
        await db.flush()
        return History(owner, ws, channel, late.id)


async def _run(runtime: Runtime, ws: uuid.UUID, now: datetime) -> list[date]:
    async with runtime.db.unit_of_work(system=True) as db:
        workspace = await db.get(Workspace, ws)
        assert workspace is not None
        return await service.run(db, workspace, now)


async def _report(
    runtime: Runtime, ws: uuid.UUID, name: str, now: datetime = AFTER, **extra: Any
) -> list[dict[str, Any]]:
    async with runtime.db.unit_of_work(system=True) as db:
        workspace = await db.get(Workspace, ws)
        assert workspace is not None
        window = reports.Window(workspace, date(2026, 10, 23), date(2026, 10, 27), now=now, **extra)
        return await reports.REPORTS[name](db, window)


def _by_period(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["period"]: row for row in rows}


def _metric(rows: list[dict[str, Any]], period: str, metric: str, key: str) -> int:
    return sum(
        r["value"] for r in rows if (r["period"], r["metric"], r["key"]) == (period, metric, key)
    )


def test_time_arithmetic() -> None:
    # The DST day of Paris lasts 25 hours.
    start, end = day_window("Europe/Paris", date(2026, 10, 25))
    assert (start, end) == (utc("2026-10-24T22:00:00"), utc("2026-10-25T23:00:00"))
    hours = BusinessHours.model_validate({"timezone": "Europe/Paris", "days": HOURS})
    # Friday 16:00 → Monday 09:30 local: one hour on Friday, half an hour on Monday.
    assert business_seconds(hours, utc("2026-10-23T14:00:00"), utc("2026-10-26T08:30:00")) == 5400
    assert (
        business_seconds(BusinessHours(), utc("2026-10-23T14:00:00"), utc("2026-10-23T15:00:00"))
        == 3600
    )
    assert percentile([1, 2, 10], 0.5) == 2
    assert percentile([1, 2], 0.5) == 1.5
    assert percentile([float(x) for x in range(1, 12)], 0.9) == 10
    assert percentile([], 0.5) is None


@pytest.mark.asyncio
async def test_figures_equal_hand_computed_values(api: Api, runtime: Runtime) -> None:
    history = await _seed(api, runtime)
    ws = history.ws
    # Live from the rows first (the job never ran): then from the rollups; the same.
    live = {
        name: await _report(runtime, ws, name)
        for name in ("overview", "conversations", "agents", "bots")
    }
    days = await _run(runtime, ws, AFTER)
    assert days[0] == date(2026, 10, 23) and days[-1] == date(2026, 10, 27)
    rolled = {name: await _report(runtime, ws, name) for name in live}
    assert rolled == live

    overview = rolled["overview"]
    # The DST day counts Sunday 00:30 (+02:00) and 23:30 (+01:00): two messages in.
    assert _metric(overview, "2026-10-25", "messages_in", "text") == 2
    assert _metric(overview, "2026-10-25", "messages_out", "text") == 1
    assert _metric(overview, "2026-10-23", "messages_in", "text") == 1
    assert _metric(overview, "2026-10-26", "messages_in", "text") == 1
    assert _metric(overview, "2026-10-26", "messages_out", "text") == 2
    assert _metric(overview, "2026-10-24", "messages_in", "text") == 0
    assert _metric(overview, "2026-10-25", "opt_out", "keyword") == 1
    assert _metric(overview, "2026-10-26", "opt_in", "agent") == 1  # 00:10 local, Monday
    assert _metric(overview, "2026-10-25", "ai_answers", "ok") == 2
    assert _metric(overview, "2026-10-25", "ai_answers", "timeout") == 1
    assert _metric(overview, "2026-10-25", "automation_runs", "succeeded") == 1

    conversations = _by_period(rolled["conversations"])
    assert conversations["2026-10-23"] | {} == conversations["2026-10-23"]
    assert (conversations["2026-10-23"]["opened"], conversations["2026-10-23"]["resolved"]) == (
        1,
        0,
    )
    friday = conversations["2026-10-23"]
    # Fri 16:00 → Mon 09:30: 66.5 h wall-clock, 1.5 business hours; resolved Mon 10:00.
    assert friday["first_response_seconds_median"] == 239400
    assert friday["first_response_business_seconds_median"] == 5400
    assert friday["resolution_seconds_median"] == 241200
    assert friday["resolution_business_seconds_median"] == 7200
    sunday = conversations["2026-10-25"]
    assert (sunday["opened"], sunday["reopened"], sunday["resolved"]) == (2, 0, 0)
    # Answered an hour later (a Sunday: no business time); resolved Monday 09:00 sharp.
    assert sunday["first_response_seconds_median"] == 3600
    assert sunday["first_response_business_seconds_median"] == 0
    assert sunday["resolution_seconds_median"] == 120600
    assert sunday["resolution_business_seconds_median"] == 0
    monday = conversations["2026-10-26"]
    assert (monday["opened"], monday["reopened"], monday["resolved"]) == (1, 1, 2)
    assert monday["first_response_seconds_median"] == 30

    weeks = _by_period(await _report(runtime, ws, "conversations", granularity="week"))
    assert set(weeks) == {"2026-10-19", "2026-10-26"}
    assert weeks["2026-10-19"]["opened"] == 3
    # First responses of the week: 239400 and 3600 (three was never answered).
    assert weeks["2026-10-19"]["first_response_seconds_median"] == 121500
    assert weeks["2026-10-19"]["first_response_seconds_p90"] == 215820

    agents = {(r["kind"], r["id"]): r for r in rolled["agents"]}
    me = agents[("agent", str(history.owner.user_id))]
    assert (me["replies"], me["conversations"], me["first_response_seconds_median"]) == (
        2,
        2,
        121500,
    )

    (bot,) = rolled["bots"]
    assert (bot["bot_id"], bot["version_id"]) == (str(BOT), str(VERSION))
    assert (bot["started"], bot["completed"], bot["handed_off"], bot["contained"]) == (4, 1, 1, 2)
    assert bot["containment_rate"] == 0.5
    assert bot["dropoff_nodes"] in ("ask_name=1;menu=1", "menu=1;ask_name=1")


@pytest.mark.asyncio
async def test_late_status_is_folded_in_and_reruns_are_idempotent(
    api: Api, runtime: Runtime
) -> None:
    history = await _seed(api, runtime)
    await _run(runtime, history.ws, AFTER)
    before = await _report(runtime, history.ws, "overview")
    assert _metric(before, "2026-10-26", "outbound_status", "read") == 0
    later = utc("2026-10-29T12:00:00")
    async with runtime.db.unit_of_work(system=True) as db:  # the "read" webhook, late
        await db.execute(
            update(Message).where(Message.id == history.late_message)
            .values(status="read", updated_at=utc("2026-10-29T08:00:00"))
        )  # fmt: skip
    assert date(2026, 10, 26) in await _run(runtime, history.ws, later)
    after = await _report(runtime, history.ws, "overview", now=later)
    assert _metric(after, "2026-10-26", "outbound_status", "read") == 1
    assert _metric(after, "2026-10-26", "outbound_status", "sent") == 1
    # Nothing changed since a pass: no day is aggregated again.
    real_later = utcnow() + timedelta(days=1)
    await _run(runtime, history.ws, real_later)
    assert await _run(runtime, history.ws, real_later) == []
    # A rebuild gives the same numbers, however often.
    async with runtime.db.unit_of_work(system=True) as db:
        workspace = await db.get(Workspace, history.ws)
        assert workspace is not None
        rows_before = await db.scalar(select(func.count()).select_from(AnalyticsDaily))
        await service.rebuild(db, workspace, date(2026, 10, 20), later)
        await service.rebuild(db, workspace, date(2026, 10, 20), later)
        assert await db.scalar(select(func.count()).select_from(AnalyticsDaily)) == rows_before
    assert await _report(runtime, history.ws, "overview", now=later) == after
    assert await _report(runtime, history.ws, "conversations", now=later) == await _report(
        runtime, history.ws, "conversations", now=later
    )


async def _cycles(runtime: Runtime, ws: str) -> list[ConversationCycle]:
    async with runtime.db.unit_of_work(system=True) as db:
        statement = (
            select(ConversationCycle)
            .where(ConversationCycle.workspace_id == uuid.UUID(ws))
            # A cycle opens at its message's time, in whole seconds (WhatsApp's timestamps):
            # a reopened cycle may share its second with the first, and sorts after it.
            .order_by(ConversationCycle.opened_at, ConversationCycle.reopened)
        )
        return list((await db.execute(statement)).scalars())


@pytest.mark.asyncio
async def test_webhook_and_resolve_write_the_cycles(api: Api, runtime: Runtime) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    await api.inbound_text(channel["id"], "15550001111", "hello", name="Ana")
    conversation = await api.conversation_of(owner, ws, "Ana")
    first = await eventually(lambda: _cycles(runtime, ws))
    assert len(first) == 1 and not first[0].reopened and first[0].resolved_at is None
    response = await api.http.patch(
        f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}",
        json={"status": "resolved"},
        headers=owner.headers,
    )
    assert response.status_code == 200, response.text
    (closed,) = await _cycles(runtime, ws)
    assert closed.resolved_at is not None
    await api.inbound_text(channel["id"], "15550001111", "again", name="Ana")

    async def two() -> list[ConversationCycle] | None:
        found = await _cycles(runtime, ws)
        return found if len(found) == 2 else None

    cycles = await eventually(two)
    assert cycles[1].reopened and cycles[1].resolved_at is None
    # The per-workspace Prometheus counter saw both messages.
    counted = REGISTRY.get_sample_value(
        "workspace_messages_total", {"workspace": ws, "direction": "inbound"}
    )
    assert counted == 2


ASK_FLOW = {
    "triggers": [{"type": "keyword", "keywords": ["hi"], "node": "ask"}],
    "nodes": [
        {"id": "ask", "type": "ask", "question": "Your email?", "attribute": "email"},
        {"id": "thanks", "type": "end", "message": "Thanks!"},
    ],
    "edges": [{"from": "ask", "to": "thanks", "port": "next"}],
}


@pytest.mark.asyncio
async def test_a_bot_s_steps_are_noted_on_the_open_cycle(
    api: Api, runtime: Runtime, wa: FakeGraph
) -> None:
    """Which bot had the cycle, where its run stands, and how it ended; inside a channel
    batch the note rides with the batch's last writes (no UPDATE of its own through the
    ORM on PostgreSQL)."""
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{channel['id']}"
    bot = await create_bot(api, owner, ws, ASK_FLOW)
    version = await publish(api, owner, ws, bot["id"])
    with sql_statements(runtime) as seen:
        await api.inbound_text(channel["id"], "15550002222", "hi", name="Bo")
        await eventually(lambda: len(wa.sent) >= 1)
    (cycle,) = await _cycles(runtime, ws)
    assert (str(cycle.bot_id), str(cycle.bot_version_id)) == (bot["id"], version["id"])
    assert (cycle.bot_node_id, cycle.bot_outcome) == ("ask", None)
    if runtime.db.engine.dialect.name == "postgresql":
        assert not [s for s in seen if s.startswith("update conversation_cycles")], seen

    await api.inbound_text(channel["id"], "15550002222", "bo@example.com", name="Bo")
    await eventually(lambda: len(wa.sent) >= 2)
    (cycle,) = await _cycles(runtime, ws)
    assert (cycle.bot_node_id, cycle.bot_outcome) == (None, "completed")  # the run ended

    # Resolved, then a new "hi": the cycle opened by it carries the new run from the start.
    conversation = await api.conversation_of(owner, ws, "Bo")
    response = await api.http.patch(
        f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}",
        json={"status": "resolved"},
        headers=owner.headers,
    )
    assert response.status_code == 200, response.text
    await api.inbound_text(channel["id"], "15550002222", "hi", name="Bo")
    await eventually(lambda: len(wa.sent) >= 3)
    first, second = await _cycles(runtime, ws)
    assert first.resolved_at is not None and first.bot_outcome == "completed"
    assert second.reopened and second.resolved_at is None
    assert (second.bot_node_id, second.bot_outcome, str(second.bot_id)) == ("ask", None, bot["id"])


@pytest.mark.asyncio
async def test_a_batch_notes_its_bots_conversations_in_one_part_of_its_last_statement(
    api: Api, runtime: Runtime, wa: FakeGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three customers start the bot in one batch: each cycle is noted, and on PostgreSQL
    the notes are one UPDATE from arrays inside the batch's last statement (one part per
    note made a statement of a new shape, prepared anew, for every number of them)."""
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    bot = await create_bot(api, owner, ws, ASK_FLOW)
    await publish(api, owner, ws, bot["id"])
    bodies = [_text(f"1555000330{n}", "hi", f"C{n}", f"wamid.N{n}") for n in range(3)]
    ids = await _store(runtime, ws, channel["id"], bodies)
    with driver_statements(monkeypatch) as sent:
        await _run_job(runtime, "process_inbound_events", ws, ids)
    found = await _cycles(runtime, ws)
    assert len(found) == 3
    assert {(c.bot_node_id, str(c.bot_id), c.bot_outcome) for c in found} == {
        ("ask", bot["id"], None)
    }
    if runtime.db.dialect == "postgresql":
        noting = [sql for sql in sent if "UPDATE conversation_cycles SET" in sql]
        assert len(noting) == 1 and noting[0].count("UPDATE conversation_cycles SET") == 1, sent
        assert noting[0].startswith("WITH w0 AS"), noting


@pytest.mark.asyncio
async def test_api_json_and_csv_agree_and_bad_params_are_4xx(api: Api, runtime: Runtime) -> None:
    history = await _seed(api, runtime)
    await _run(runtime, history.ws, AFTER)
    base = f"/api/v1/workspaces/{history.ws}/analytics"
    params = {"from": "2026-10-23", "to": "2026-10-27"}
    headers = history.owner.headers
    for name in ("overview", "conversations", "agents", "bots", "broadcasts"):
        response = await api.http.get(f"{base}/{name}", params=params, headers=headers)
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        exported = await api.http.get(
            f"{base}/{name}", params=params, headers={**headers, "Accept": "text/csv"}
        )
        assert exported.headers["content-type"].startswith("text/csv")
        lines = list(csv.reader(io.StringIO(exported.text)))
        assert lines[0] == data["columns"]
        expected = [
            ["" if r[c] is None else str(r[c]) for c in data["columns"]] for r in data["rows"]
        ]
        assert lines[1:] == expected
    conversations = await api.http.get(
        f"{base}/conversations", params={**params, "format": "csv"}, headers=headers
    )
    assert "2026-10-25,2,0,0,3600.0" in conversations.text
    filtered = await api.http.get(
        f"{base}/overview", params={**params, "channel_id": str(uuid.uuid4())}, headers=headers
    )
    assert filtered.json()["data"]["rows"] == []
    for bad in (
        {"from": "2026-10-27", "to": "2026-10-23"},
        {"from": "2020-01-01", "to": "2026-10-23"},
        {"granularity": "year"},
        {"from": "yesterday"},
        {"format": "xml"},
    ):
        response = await api.http.get(f"{base}/overview", params=bad, headers=headers)
        assert 400 <= response.status_code < 500, (bad, response.text)
        assert response.json()["error"]["code"]
    unknown = await api.http.get(f"{base}/nothing", headers=headers)
    assert 400 <= unknown.status_code < 500
    analyst = await api.add_member(history.owner, str(history.ws), "analyst")
    allowed = await api.http.get(f"{base}/overview", headers=analyst.headers)
    assert allowed.status_code == 200
    agent = await api.add_member(history.owner, str(history.ws), "agent")
    denied = await api.http.get(f"{base}/overview", headers=agent.headers)
    assert denied.status_code == 403


@pytest.mark.asyncio
async def test_broadcast_funnel(api: Api, runtime: Runtime) -> None:
    history = await _seed(api, runtime)
    ws = history.ws
    async with runtime.db.unit_of_work(system=True) as db:
        contacts = {
            c.name: c.id
            for c in (await db.execute(select(Contact).where(Contact.workspace_id == ws))).scalars()
        }
        silent = Contact(workspace_id=ws, name="silent")
        db.add(silent)
        await db.flush()
        sent_at = utc("2026-10-24T10:00:00")  # before "one" and "two" wrote again
        broadcast = Broadcast(
            workspace_id=ws, channel_id=history.channel, name="Promo", status="completed",
            started_at=sent_at,
        )  # fmt: skip
        db.add(broadcast)
        await db.flush()
        for contact, status, at in (
            (contacts["one"], "read", sent_at),
            (contacts["two"], "delivered", sent_at),
            (contacts["three"], "failed", None),
            (silent.id, "sent", sent_at),
        ):
            db.add(
                BroadcastRecipient(
                    workspace_id=ws, broadcast_id=broadcast.id, channel_id=history.channel,
                    contact_id=contact, status=status, sent_at=at,
                )
            )  # fmt: skip
    (row,) = await _report(runtime, ws, "broadcasts")
    assert (row["name"], row["recipients"], row["sent"], row["delivered"]) == ("Promo", 4, 3, 2)
    assert (row["read"], row["failed"], row["replied"]) == (1, 1, 2)
    assert (row["delivered_rate"], row["read_rate"]) == (0.6667, 0.3333)
    assert (row["failed_rate"], row["replied_rate"]) == (0.25, 0.6667)
    # Another channel's filter leaves it out.
    assert await _report(runtime, ws, "broadcasts", channel_id=uuid.uuid4()) == []
