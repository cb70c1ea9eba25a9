"""The automation rule editor's forms over plain HTTP, on both backends: a rule with every
condition type (nested AND/OR groups) and every action type goes through the forms and comes
back equal, and saved equal; a rule is built with forms only (groups, operators, agents and
teams picked); the API's problems show in the card of the condition or action they name."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

import httpx

from tests.conftest import Account, Api
from tests.dashboard.helpers import browser_login, form_fields, unlabelled_controls


async def _workspace(api: Api) -> tuple[Account, str, dict[str, str]]:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    agent = await api.add_member(owner, ws, "agent")
    channel = await api.create_channel(owner, ws)
    team = await api.http.post(
        f"/api/v1/workspaces/{ws}/teams", json={"name": "Billing"}, headers=owner.headers
    )
    assert team.status_code == 201, team.text
    ids = {
        "agent": str(agent.user_id),
        "team": str(team.json()["data"]["id"]),
        "channel": str(channel["id"]),
    }
    return owner, ws, ids


def every_kind_rule(ids: dict[str, str]) -> dict[str, Any]:
    return {
        "conditions": {
            "all": [
                {"type": "message_content", "operator": "regex", "value": "refund|money back"},
                {"type": "message_direction", "operator": "is", "value": "inbound"},
                {"type": "channel", "operator": "not_in", "value": [ids["channel"]]},
                {
                    "any": [
                        {"type": "contact_attribute", "key": "orders", "operator": "greater_than",
                         "value": 3},
                        {"type": "contact_attribute", "key": "vip", "operator": "exists"},
                        {"type": "contact_tag", "operator": "has_not", "value": "blocked"},
                        {"type": "conversation_label", "operator": "has", "value": "billing"},
                        {"type": "business_hours", "operator": "outside"},
                    ]
                },
            ]
        },
        "actions": [
            {"type": "assign_agent", "user_id": ids["agent"]},
            {"type": "assign_team", "team_id": ids["team"], "round_robin": False},
            {"type": "add_label", "labels": ["billing", "refund"]},
            {"type": "remove_label", "labels": ["new"]},
            {"type": "add_tag", "tags": ["asked-refund"]},
            {"type": "remove_tag", "tags": ["happy"]},
            {"type": "send_message", "message": {"type": "text", "text": "We are on it!"}},
            {"type": "send_webhook", "data": {"source": "rule", "level": "2"}},
            {"type": "set_attribute", "key": "refund_asked", "value": "yes"},
            {"type": "resolve"},
        ],
    }  # fmt: skip


def _drawn(html: str) -> dict[str, Any]:
    found = re.search(r'<input type="hidden" name="rule_base" value="([^"]*)"', html)
    assert found, "no rule_base on the page"
    drawn: dict[str, Any] = json.loads(unescape(found.group(1)))
    return drawn


async def _submit(
    client: httpx.AsyncClient, url: str, html: str, op: str, **changes: Any
) -> httpx.Response:
    fields: dict[str, Any] = {**form_fields(html, "rule-form"), **changes, "op": op}
    return await client.post(url, data={k: v for k, v in fields.items() if v is not None})


async def test_every_condition_and_action_goes_through_the_forms_unchanged(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner, ws, ids = await _workspace(api)
    rule = every_kind_rule(ids)
    created = await api.http.post(
        f"/api/v1/workspaces/{ws}/automations",
        json={"name": "Refunds", "event": "message.received", **rule},
        headers=owner.headers,
    )
    assert created.status_code == 201, created.text
    rule_id = created.json()["data"]["id"]
    await browser_login(client, owner.email, owner.password)
    url = f"/app/w/{ws}/automations/{rule_id}"
    page = await client.get(url)
    assert page.status_code == 200
    assert unlabelled_controls(page.text) == []
    html = page.text
    assert 'name="c.3.group"' in html and 'name="c.3.0.value" type="text" value="3"' in html
    assert f'name="c.2.value" value="{ids["channel"]}" checked' in html
    assert f'<option value="{ids["team"]}" selected>Billing</option>' in html
    assert '<option value="greater_than" selected>greater_than</option>' in html

    applied = await _submit(client, url, html, "update")
    assert applied.status_code == 200, applied.text
    # Equal to the rule as the API keeps it (a message gets its defaults filled in).
    stored = created.json()["data"]
    kept = {"conditions": stored["conditions"], "actions": stored["actions"]}
    assert kept["conditions"] == rule["conditions"]
    assert _drawn(applied.text) == kept
    saved = await _submit(client, url, applied.text, "save")
    assert saved.status_code == 303, saved.text
    again = await api.http.get(
        f"/api/v1/workspaces/{ws}/automations/{rule_id}", headers=owner.headers
    )
    data = again.json()["data"]
    assert {"conditions": data["conditions"], "actions": data["actions"]} == kept


async def test_a_rule_is_built_with_forms_only(client: httpx.AsyncClient, api: Api) -> None:
    owner, ws, ids = await _workspace(api)
    await browser_login(client, owner.email, owner.password)
    new_url = f"/app/w/{ws}/automations/new"
    page = await client.get(new_url)
    assert unlabelled_controls(page.text) == []
    url = f"/app/w/{ws}/automations"
    # An OR group inside the AND of the example, then one more condition in it.
    page = await _submit(client, url, page.text, "add_group:c", **{"c.new": "contact_tag"})
    assert page.status_code == 200 and "Not saved yet" in page.text
    page = await _submit(
        client,
        url,
        page.text,
        "add_condition:c.1",
        **{"c.1.new": "contact_attribute", "c.1.group": "any", "c.1.0.value": "vip"},
    )
    page = await _submit(
        client,
        url,
        page.text,
        "add_action",
        **{
            "new_action": "assign_team",
            "c.1.1.key": "orders",
            "c.1.1.operator": "greater_than",
            "c.1.1.value": "5",
        },
    )
    page = await _submit(client, url, page.text, "add_action", new_action="send_message")
    page = await _submit(
        client,
        url,
        page.text,
        "remove_action:0",
        **{"a1.team_id": ids["team"], "a2.message.text": "A person will answer."},
    )
    saved = await _submit(
        client, url, page.text, "save", name="VIP refunds", **{"c.0.value": "refund"}
    )
    assert saved.status_code == 303, saved.text
    rule_id = saved.headers["location"].split("/automations/")[1].split("?")[0]
    answer = await api.http.get(
        f"/api/v1/workspaces/{ws}/automations/{rule_id}", headers=owner.headers
    )
    data = answer.json()["data"]
    assert data["name"] == "VIP refunds"
    assert data["conditions"] == {
        "all": [
            {"type": "message_content", "operator": "contains", "value": "refund"},
            {
                "any": [
                    {"type": "contact_tag", "operator": "has", "value": "vip"},
                    {"type": "contact_attribute", "key": "orders", "operator": "greater_than",
                     "value": 5},
                ]
            },
        ]
    }  # fmt: skip
    assert data["actions"] == [
        {"type": "assign_team", "team_id": ids["team"], "round_robin": True},
        {"type": "send_message", "message": {**data["actions"][1]["message"],
                                             "type": "text", "text": "A person will answer."}},
    ]  # fmt: skip


async def test_problems_show_in_the_card_they_concern(client: httpx.AsyncClient, api: Api) -> None:
    owner, ws, _ids = await _workspace(api)
    await browser_login(client, owner.email, owner.password)
    page = await client.get(f"/app/w/{ws}/automations/new")
    url = f"/app/w/{ws}/automations"
    page = await _submit(client, url, page.text, "add_action", new_action="assign_agent")
    page = await _submit(client, url, page.text, "save", name="Broken", **{"c.0.value": ""})
    assert page.status_code == 422, page.text
    condition = re.search(
        r'class="card cond-leaf has-error" id="c.0".*?</fieldset>', page.text, re.S
    )
    assert condition and "value" in condition.group(0)
    action = re.search(r'class="card action-card has-error" id="a1".*?</fieldset>', page.text, re.S)
    assert action and "user_id" in action.group(0)
    ok = re.search(r'class="card action-card" id="a0"', page.text)
    assert ok, "the valid action is not marked"
    # Nothing was created; what was typed is kept.
    listed = await api.http.get(f"/api/v1/workspaces/{ws}/automations", headers=owner.headers)
    assert listed.json()["data"]["items"] == []
    assert _drawn(page.text)["actions"][1] == {"type": "assign_agent", "user_id": ""}
