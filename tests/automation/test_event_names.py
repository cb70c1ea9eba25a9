"""One name per event: automation triggers, webhook subscriptions, the live socket and
docs/events.md use the names of the one catalog; an unknown name is a 422 that lists the valid
ones; rules saved under the old `message.created` are migrated."""

from __future__ import annotations

import importlib
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from botplatform.config import Settings
from botplatform.dashboard.automations import EVENTS as DASHBOARD_EVENTS
from botplatform.db import create_engine
from botplatform.events.catalog import AUTOMATION_TRIGGERS, EVENT_TYPES
from tests.automation.helpers import Shop, shop
from tests.conftest import Api

DOCS = Path(__file__).resolve().parents[2] / "docs"
RESOLVE = [{"type": "resolve"}]


def test_automation_triggers_are_catalog_names() -> None:
    assert set(AUTOMATION_TRIGGERS) <= set(EVENT_TYPES)
    assert DASHBOARD_EVENTS == AUTOMATION_TRIGGERS
    events_md = (DOCS / "events.md").read_text()
    api_md = (DOCS / "api.md").read_text()
    for name in AUTOMATION_TRIGGERS:
        assert f"`{name}`" in events_md and f"`{name}`" in api_md
    # The table of event types in docs/events.md is the catalog, no more, no less.
    table = dict(re.findall(r"^\| `([a-z_.]+)` \| (\d+) \|", events_md, re.M))
    assert {name: int(version) for name, version in table.items()} == EVENT_TYPES
    rules_section = api_md.split("## Automation rules", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`((?:message|conversation|contact)\.[a-z_]+)`", rules_section))
    assert named - set(AUTOMATION_TRIGGERS) == {"message.created"}  # named as the old one


async def test_openapi_and_live_socket_use_the_catalog(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/api/openapi.json")).json()["components"]["schemas"]
    assert schema["RuleCreate"]["properties"]["event"]["enum"] == list(AUTOMATION_TRIGGERS)


def _error(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == "validation_error"
    return error


def _lists_valid(message: str, valid: tuple[str, ...] | list[str]) -> None:
    assert "Valid types: " + ", ".join(valid) in message, message


async def test_unknown_rule_event_lists_the_valid_ones(client: httpx.AsyncClient, api: Api) -> None:
    s = await shop(api)
    url = s.url("/automations")
    created = await client.post(
        url,
        json={"name": "r", "event": "message.deleted", "actions": RESOLVE},
        headers=s.owner.headers,
    )
    detail = _error(created)["details"][0]
    assert detail["field"] == "body.event"
    assert "Unknown event type 'message.deleted'" in detail["message"]
    _lists_valid(detail["message"], AUTOMATION_TRIGGERS)

    renamed = await client.post(
        url,
        json={"name": "r", "event": "message.created", "actions": RESOLVE},
        headers=s.owner.headers,
    )
    message = _error(renamed)["details"][0]["message"]
    assert (
        "'message.created' was renamed: use message.received (inbound) or message.sent" in message
    )

    rule = await client.post(
        url,
        json={"name": "r", "event": "message.sent", "actions": RESOLVE},
        headers=s.owner.headers,
    )
    assert rule.status_code == 201, rule.text
    updated = await client.patch(
        f"{url}/{rule.json()['data']['id']}",
        json={"event": "message.updated"},
        headers=s.owner.headers,
    )
    _lists_valid(_error(updated)["details"][0]["message"], AUTOMATION_TRIGGERS)
    listed = await client.get(url, params={"event": "nope"}, headers=s.owner.headers)
    _lists_valid(_error(listed)["details"][0]["message"], AUTOMATION_TRIGGERS)
    assert _error(listed)["message"].startswith("Invalid query parameter event: Unknown event")


async def test_unknown_webhook_event_type_lists_the_valid_ones(
    client: httpx.AsyncClient, api: Api
) -> None:
    s = await shop(api)
    url = s.url("/webhook-endpoints")
    valid = ["*", *EVENT_TYPES]
    created = await client.post(
        url,
        json={"url": "https://crm.example.com/hook", "event_types": ["message.created"]},
        headers=s.owner.headers,
    )
    detail = _error(created)["details"][0]
    assert detail["field"] == "body.event_types"
    _lists_valid(detail["message"], valid)
    endpoint = await client.post(
        url,
        json={"url": "https://crm.example.com/hook", "event_types": ["message.sent"]},
        headers=s.owner.headers,
    )
    assert endpoint.status_code == 201, endpoint.text
    updated = await client.patch(
        f"{url}/{endpoint.json()['data']['endpoint']['id']}",
        json={"event_types": ["contact.deleted"]},
        headers=s.owner.headers,
    )
    _lists_valid(_error(updated)["details"][0]["message"], valid)


def _rerun_migration(connection: Connection) -> None:
    module = importlib.import_module(
        "botplatform.migrations.versions.20261203_e7a1c5d9b3f2_one_name_per_event"
    )
    with Operations.context(MigrationContext.configure(connection)):
        module.upgrade()


async def _set_event(settings: Settings, rule_ids: list[str], event: str) -> None:
    engine = create_engine(settings, settings.owner_dsn)
    try:
        async with engine.begin() as connection:
            for rule_id in rule_ids:
                await connection.execute(
                    text("UPDATE automation_rules SET event = :event WHERE id = :id"),
                    {"event": event, "id": _db_id(settings, rule_id)},
                )
            await connection.run_sync(_rerun_migration)
    finally:
        await engine.dispose()


def _db_id(settings: Settings, rule_id: str) -> str:
    # SQLite keeps UUIDs as 32 hex digits.
    return uuid.UUID(rule_id).hex if settings.is_sqlite else rule_id


async def _rule(s: Shop, name: str, conditions: Any = None) -> str:
    body = {"name": name, "event": "message.received", "actions": RESOLVE}
    if conditions is not None:
        body["conditions"] = conditions
    response = await s.http.post(s.url("/automations"), json=body, headers=s.owner.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["id"])


async def test_rules_saved_as_message_created_are_migrated(
    client: httpx.AsyncClient, api: Api, settings: Settings
) -> None:
    """The direction a rule asked for picks its new name; a rule for both directions becomes
    two rules, so it keeps running on both."""
    s = await shop(api)
    inbound = await _rule(s, "in", {"type": "message_direction", "value": "inbound"})
    outbound = await _rule(
        s,
        "out",
        {
            "all": [
                {"type": "message_direction", "value": "outbound"},
                {"type": "message_content", "operator": "contains", "value": "hi"},
            ]
        },
    )
    both = await _rule(s, "both")
    await _set_event(settings, [inbound, outbound, both], "message.created")

    rules = (await client.get(s.url("/automations"), headers=s.owner.headers)).json()["data"]
    by_name = {r["name"]: r for r in rules["items"]}
    assert set(by_name) == {"in", "out", "both", "both (sent)"}
    assert by_name["in"]["event"] == "message.received" and by_name["in"]["id"] == inbound
    assert by_name["out"]["event"] == "message.sent" and by_name["out"]["id"] == outbound
    assert by_name["both"]["event"] == "message.received" and by_name["both"]["id"] == both
    copy = by_name["both (sent)"]
    assert copy["event"] == "message.sent" and copy["actions"] == by_name["both"]["actions"]
    assert copy["enabled"] is True and copy["position"] == by_name["both"]["position"]


@pytest.mark.parametrize("name", list(AUTOMATION_TRIGGERS))
async def test_every_trigger_is_accepted(client: httpx.AsyncClient, api: Api, name: str) -> None:
    s = await shop(api)
    body = {"name": "r", "event": name, "actions": [{"type": "add_tag", "tags": ["x"]}]}
    response = await client.post(s.url("/automations"), json=body, headers=s.owner.headers)
    assert response.status_code == 201, response.text
