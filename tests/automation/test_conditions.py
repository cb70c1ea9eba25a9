"""Each condition, and AND/OR groups, evaluated against real events from the WhatsApp path."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from botplatform.automation.conditions import Subject, evaluate
from botplatform.automation.schemas import MessageContent
from botplatform.business_hours.schemas import BusinessHours
from botplatform.business_hours.service import is_open
from botplatform.models import Message
from botplatform.runtime import Runtime
from tests.automation.helpers import Shop, runs_of, settle, shop
from tests.conftest import Api

LABEL = [{"type": "add_label", "labels": ["hit"]}]


def content(operator: str, value: str) -> dict[str, Any]:
    return {"type": "message_content", "operator": operator, "value": value}


async def _matches(s: Shop, runtime: Runtime, rules: dict[str, dict[str, Any]]) -> dict[str, bool]:
    """Saves one message.received rule per condition, lets them run; which matched."""
    ids = {
        name: (await s.rule(name=name, event="message.received", conditions=c, actions=LABEL))["id"]
        for name, c in rules.items()
    }
    await s.api.inbound_text(s.channel["id"], "15550001000", "Hello, I want a REFUND please")
    await settle(runtime)
    result = {}
    for name, rule_id in ids.items():
        (run,) = await runs_of(s, rule_id)
        result[name] = run["matched"]
        assert run["outcome"] == ("succeeded" if run["matched"] else "not_matched")
    return result


async def test_message_content_is_case_insensitive(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    s = await shop(api)
    assert await _matches(
        s,
        runtime,
        {
            "contains": content("contains", "refund"),
            "contains_miss": content("contains", "invoice"),
            "not_contains": content("not_contains", "invoice"),
            "equals": content("equals", "hello, i want a refund PLEASE"),
            "equals_miss": content("equals", "hello"),
            "not_equals": content("not_equals", "hello"),
            "starts_with": content("starts_with", "HELLO"),
            "regex": content("regex", r"\bref(und|fund)\b"),
            "regex_miss": content("regex", r"^refund"),
        },
    ) == {
        "contains": True,
        "contains_miss": False,
        "not_contains": True,
        "equals": True,
        "equals_miss": False,
        "not_equals": True,
        "starts_with": True,
        "regex": True,
        "regex_miss": False,
    }


async def test_and_or_groups_nest(client: httpx.AsyncClient, api: Api, runtime: Runtime) -> None:
    s = await shop(api)
    yes, no = content("contains", "refund"), content("contains", "invoice")
    assert await _matches(
        s,
        runtime,
        {
            "all_true": {"all": [yes, content("contains", "please")]},
            "all_one_false": {"all": [yes, no]},
            "any_one_true": {"any": [no, yes]},
            "any_all_false": {"any": [no, content("contains", "zzz")]},
            "nested": {"any": [no, {"all": [yes, {"any": [no, content("regex", "PLEASE$")]}]}]},
            "nested_false": {"all": [yes, {"any": [no, {"all": [no, yes]}]}]},
        },
    ) == {
        "all_true": True,
        "all_one_false": False,
        "any_one_true": True,
        "any_all_false": False,
        "nested": True,
        "nested_false": False,
    }


async def test_channel_and_direction(client: httpx.AsyncClient, api: Api, runtime: Runtime) -> None:
    s = await shop(api)
    other = await api.create_channel(s.owner, s.ws, phone_number_id="9988776655443", name="Other")
    assert await _matches(
        s,
        runtime,
        {
            "in": {"type": "channel", "value": [s.channel["id"]]},
            "in_other": {"type": "channel", "value": [other["id"]]},
            "not_in_other": {"type": "channel", "operator": "not_in", "value": [other["id"]]},
            "inbound": {"type": "message_direction", "value": "inbound"},
            "outbound": {"type": "message_direction", "value": "outbound"},
        },
    ) == {"in": True, "in_other": False, "not_in_other": True, "inbound": True, "outbound": False}


async def test_contact_attributes_and_tags_see_earlier_rules(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    """Rules run in `position` order, each seeing what the earlier ones changed: the first
    sets the attributes and tag the later ones test."""
    s = await shop(api)
    await s.rule(
        name="enrich",
        event="message.received",
        position=0,
        actions=[
            {"type": "set_attribute", "key": "plan", "value": "Gold"},
            {"type": "set_attribute", "key": "orders", "value": 5},
            {"type": "add_tag", "tags": ["VIP"]},
        ],
    )

    def attr(operator: str, value: Any = None, key: str = "plan") -> dict[str, Any]:
        return {"type": "contact_attribute", "key": key, "operator": operator, "value": value}

    conditions = {
        "equals": attr("equals", "gold"),
        "not_equals": attr("not_equals", "gold"),
        "contains": attr("contains", "OL"),
        "not_contains": attr("not_contains", "silver"),
        "exists": attr("exists"),
        "not_exists": attr("not_exists", key="email"),
        "missing_equals": attr("equals", "x", key="email"),
        "greater": attr("greater_than", 3, key="orders"),
        "less": attr("less_than", 3, key="orders"),
        "tag": {"type": "contact_tag", "value": "vip"},
        "no_tag": {"type": "contact_tag", "operator": "has_not", "value": "vip"},
    }
    ids = {}
    for position, (name, condition) in enumerate(conditions.items(), start=1):
        ids[name] = (
            await s.rule(
                name=name,
                event="message.received",
                position=position,
                conditions=condition,
                actions=[{"type": "add_label", "labels": [name]}],
            )
        )["id"]
    await api.inbound_text(s.channel["id"], "15550001001", "hi", name="Vera")
    await settle(runtime)
    matched = {name: (await runs_of(s, rule_id))[0]["matched"] for name, rule_id in ids.items()}
    assert matched == {
        "equals": True,
        "not_equals": False,
        "contains": True,
        "not_contains": True,
        "exists": True,
        "not_exists": True,
        "missing_equals": False,
        "greater": True,
        "less": False,
        "tag": True,
        "no_tag": False,
    }
    conversation = await s.conversation("Vera")
    contact = await s.get(f"/contacts/{conversation['contact_id']}")
    assert contact["attributes"] == {"plan": "Gold", "orders": 5}
    assert contact["tags"] == ["VIP"]
    assert sorted(conversation["labels"]) == sorted(n for n, hit in matched.items() if hit)


async def test_conversation_labels(client: httpx.AsyncClient, api: Api, runtime: Runtime) -> None:
    s = await shop(api)
    await s.rule(
        event="message.received",
        position=0,
        actions=[{"type": "add_label", "labels": ["refund", "urgent", "Refund"]}],
    )
    second = await s.rule(
        event="message.received",
        position=1,
        conditions={"type": "conversation_label", "value": "REFUND"},
        actions=[{"type": "remove_label", "labels": ["URGENT"]}],
    )
    third = await s.rule(
        event="message.received",
        position=2,
        conditions={"type": "conversation_label", "operator": "has_not", "value": "refund"},
        actions=LABEL,
    )
    await api.inbound_text(s.channel["id"], "15550001002", "hi", name="Lou")
    await settle(runtime)
    assert (await runs_of(s, second["id"]))[0]["matched"] is True
    assert (await runs_of(s, third["id"]))[0]["matched"] is False
    conversation = await s.conversation("Lou")
    assert conversation["labels"] == ["refund"]
    # Agents set labels by hand too (the list replaces the old one).
    patched = await client.patch(
        s.url(f"/conversations/{conversation['id']}"),
        json={"labels": ["billing", " vip ", "billing"]},
        headers=s.owner.headers,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["data"]["labels"] == ["billing", "vip"]


async def test_business_hours_condition(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    s = await shop(api)
    always = {d: [{"start": "00:00", "end": "24:00"}] for d in ("mon", "tue", "wed", "thu")}
    always |= {d: [{"start": "00:00", "end": "24:00"}] for d in ("fri", "sat", "sun")}
    saved = await client.put(
        s.url("/business-hours"),
        json={"timezone": "Asia/Tokyo", "days": always},
        headers=s.owner.headers,
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["data"]["open_now"] is True
    within = await s.rule(
        event="conversation.created", conditions={"type": "business_hours"}, actions=LABEL
    )
    outside = await s.rule(
        event="conversation.created",
        conditions={"type": "business_hours", "operator": "outside"},
        actions=LABEL,
    )
    await api.inbound_text(s.channel["id"], "15550001003", "hi", name="Ada")
    await settle(runtime)
    assert (await runs_of(s, within["id"]))[0]["matched"] is True
    assert (await runs_of(s, outside["id"]))[0]["matched"] is False

    closed = await client.put(
        s.url("/business-hours"), json={"timezone": "Asia/Tokyo"}, headers=s.owner.headers
    )
    assert closed.json()["data"] == {"timezone": "Asia/Tokyo", "days": {}, "open_now": False}
    await api.inbound_text(s.channel["id"], "15550001004", "hi", name="Bo")
    await settle(runtime)
    assert [r["matched"] for r in await runs_of(s, within["id"], 2)] == [False, True]
    assert [r["matched"] for r in await runs_of(s, outside["id"], 2)] == [True, False]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "body.timezone"),
        ({"days": {"funday": []}}, "body.days"),
        ({"days": {"mon": [{"start": "18:00", "end": "09:00"}]}}, "body.days.mon.0"),
        ({"days": {"mon": [{"start": "9:00", "end": "17:00"}]}}, "body.days.mon.0.start"),
    ],
)
async def test_business_hours_are_validated(
    client: httpx.AsyncClient, api: Api, body: dict[str, Any], field: str
) -> None:
    s = await shop(api)
    response = await client.put(s.url("/business-hours"), json=body, headers=s.owner.headers)
    assert response.status_code == 422
    assert any(d["field"].startswith(field) for d in response.json()["error"]["details"])
    viewer = await api.add_member(s.owner, s.ws, "viewer")
    assert (await client.get(s.url("/business-hours"), headers=viewer.headers)).status_code == 200
    refused = await client.put(s.url("/business-hours"), json={}, headers=viewer.headers)
    assert refused.status_code == 403


def test_is_open_uses_the_workspace_time_zone() -> None:
    hours = BusinessHours.model_validate(
        {
            "timezone": "Europe/Paris",
            "days": {
                "mon": [{"start": "09:00", "end": "12:00"}, {"start": "14:00", "end": "18:00"}],
                "sat": [{"start": "10:00", "end": "24:00"}],
            },
        }
    )
    # Monday 2026-11-23: Paris is UTC+1 in winter.
    assert is_open(hours, datetime(2026, 11, 23, 8, 0, tzinfo=UTC))  # 09:00 in Paris
    assert not is_open(hours, datetime(2026, 11, 23, 7, 59, tzinfo=UTC))  # 08:59
    assert not is_open(hours, datetime(2026, 11, 23, 11, 0, tzinfo=UTC))  # 12:00: closed
    assert is_open(hours, datetime(2026, 11, 23, 13, 0, tzinfo=UTC))  # 14:00
    assert not is_open(hours, datetime(2026, 11, 23, 17, 0, tzinfo=UTC))  # 18:00
    assert not is_open(hours, datetime(2026, 11, 24, 8, 0, tzinfo=UTC))  # Tuesday: closed
    # Summer time: Monday 2026-06-22, UTC+2.
    assert is_open(hours, datetime(2026, 6, 22, 7, 0, tzinfo=UTC))  # 09:00 in Paris
    # Saturday 23:59 in Paris is Saturday 22:59 UTC; Sunday 00:30 is closed.
    assert is_open(hours, datetime(2026, 11, 28, 22, 59, tzinfo=UTC))
    assert not is_open(hours, datetime(2026, 11, 28, 23, 30, tzinfo=UTC))


def test_a_pathological_regex_times_out_as_no_match() -> None:
    subject = Subject(
        event="message.received",
        at=datetime.now(UTC),
        hours=BusinessHours(),
        channel_id=None,
        message=Message(direction="inbound", text="a" * 40 + "!"),
        conversation=None,
        contact=None,
    )
    slow = MessageContent(type="message_content", operator="regex", value="(a|aa)+$")
    assert evaluate(slow, subject) is False
    assert subject.notes and "timed out" in subject.notes[0]
    fine = MessageContent(type="message_content", operator="regex", value="A+!")
    assert evaluate(fine, subject) is True
