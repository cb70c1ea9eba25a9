"""Saving rules: who may, what is refused and where the error points."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.automation.helpers import Shop, shop
from tests.conftest import Api

RESOLVE = [{"type": "resolve"}]


async def _post(s: Shop, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    return await s.http.post(
        s.url("/automations"), json={"name": "r", **body}, headers=headers or s.owner.headers
    )


async def test_crud_and_who_may_do_it(client: httpx.AsyncClient, api: Api) -> None:
    s = await shop(api)
    manager = await api.add_member(s.owner, s.ws, "manager")
    developer = await api.add_member(s.owner, s.ws, "developer")
    viewer = await api.add_member(s.owner, s.ws, "viewer")
    agent = await api.add_member(s.owner, s.ws, "agent")
    body = {"event": "conversation.created", "actions": [{"type": "add_label", "labels": ["x"]}]}
    for who in (manager, developer, s.owner):
        assert (await _post(s, body, who.headers)).status_code == 201
    for who in (viewer, agent):
        refused = await _post(s, body, who.headers)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "permission_denied"

    listed = await client.get(s.url("/automations"), headers=viewer.headers)  # reading is open
    assert listed.status_code == 200
    items = listed.json()["data"]["items"]
    assert len(items) == 3
    rule_id = items[0]["id"]
    assert items[0]["actions"] == [{"type": "add_label", "labels": ["x"]}]
    assert items[0]["conditions"] is None and items[0]["enabled"] is True

    patched = await client.patch(
        s.url(f"/automations/{rule_id}"),
        json={"enabled": False, "name": "Renamed"},
        headers=manager.headers,
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["data"]["enabled"], patched.json()["data"]["name"]) == (
        False,
        "Renamed",
    )
    by_event = await client.get(
        s.url("/automations"), params={"event": "message.received"}, headers=s.owner.headers
    )
    assert by_event.json()["data"]["items"] == []
    assert (
        await client.delete(s.url(f"/automations/{rule_id}"), headers=agent.headers)
    ).status_code == 403
    deleted = await client.delete(s.url(f"/automations/{rule_id}"), headers=manager.headers)
    assert deleted.status_code == 200
    gone = await client.get(s.url(f"/automations/{rule_id}"), headers=s.owner.headers)
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "automation_not_found"
    runs = await client.get(s.url(f"/automations/{rule_id}/runs"), headers=s.owner.headers)
    assert runs.status_code == 404


def _fields(response: httpx.Response) -> list[str]:
    return [d["field"] for d in response.json()["error"]["details"]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {
                "event": "message.received",
                "conditions": {
                    "any": [
                        {"type": "message_content", "operator": "contains", "value": "a"},
                        {"type": "no_such_thing"},
                    ]
                },
                "actions": RESOLVE,
            },
            "body.conditions.any.any.1",
        ),
        (
            {
                "event": "message.received",
                "conditions": {
                    "all": [{"type": "message_content", "operator": "regex", "value": "(unclosed"}]
                },
                "actions": RESOLVE,
            },
            "body.conditions.all.all.0.message_content",
        ),
        (
            {
                "event": "message.received",
                "conditions": {
                    "type": "contact_attribute",
                    "key": "orders",
                    "operator": "greater_than",
                    "value": "many",
                },
                "actions": RESOLVE,
            },
            "body.conditions.contact_attribute",
        ),
        (
            {"event": "message.received", "actions": [RESOLVE[0], {"type": "assign_agent"}]},
            "body.actions.1.assign_agent.user_id",
        ),
        (
            {"event": "message.received", "actions": [{"type": "launch_rocket"}]},
            "body.actions.0",
        ),
        ({"event": "message.deleted", "actions": RESOLVE}, "body.event"),
        ({"event": "message.received", "actions": []}, "body.actions"),
    ],
)
async def test_shape_errors_point_at_the_offending_item(
    client: httpx.AsyncClient, api: Api, body: dict[str, Any], field: str
) -> None:
    s = await shop(api)
    response = await _post(s, body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    assert any(f.startswith(field) for f in _fields(response)), _fields(response)


async def test_meaning_errors_point_at_each_offending_item(
    client: httpx.AsyncClient, api: Api
) -> None:
    s = await shop(api)
    viewer = await api.add_member(s.owner, s.ws, "viewer")
    stranger = await api.register()
    missing = "00000000-0000-4000-8000-000000000001"
    response = await _post(
        s,
        {
            "event": "conversation.created",
            "conditions": {
                "all": [
                    {"type": "channel", "value": [s.channel["id"], missing]},
                    {"any": [{"type": "message_content", "operator": "contains", "value": "x"}]},
                ]
            },
            "actions": [
                {"type": "assign_agent", "user_id": str(stranger.user_id)},
                {"type": "assign_agent", "user_id": str(viewer.user_id)},
                {"type": "assign_team", "team_id": missing},
                {"type": "resolve"},
            ],
        },
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_rule"
    assert {(d["field"], d["type"]) for d in error["details"]} == {
        ("body.conditions.all.0.value.1", "unknown_channel"),
        ("body.conditions.all.1.any.0", "event_mismatch"),
        ("body.actions.0.user_id", "unknown_member"),
        ("body.actions.1.user_id", "not_an_agent"),
        ("body.actions.2.team_id", "unknown_team"),
    }
    contact_rule = await _post(
        s,
        {
            "event": "contact.created",
            "conditions": {"type": "conversation_label", "value": "vip"},
            "actions": [
                {"type": "add_tag", "tags": ["new"]},
                {"type": "send_message", "message": {"text": "Welcome"}},
            ],
        },
    )
    assert contact_rule.status_code == 422
    assert set(_fields(contact_rule)) == {"body.conditions", "body.actions.1"}


async def test_update_validates_the_whole_rule(client: httpx.AsyncClient, api: Api) -> None:
    s = await shop(api)
    rule = await s.rule(
        event="message.received",
        conditions={"type": "message_content", "operator": "contains", "value": "hi"},
        actions=RESOLVE,
    )
    url = s.url(f"/automations/{rule['id']}")
    # Moving the rule to an event without messages makes its condition meaningless.
    moved = await client.patch(url, json={"event": "contact.created"}, headers=s.owner.headers)
    assert moved.status_code == 422
    assert "body.conditions" in _fields(moved)
    cleared = await client.patch(
        url, json={"event": "conversation.created", "conditions": None}, headers=s.owner.headers
    )
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["data"]["conditions"] is None
    assert cleared.json()["data"]["event"] == "conversation.created"
    unknown = await client.patch(url, json={"workspace_id": s.ws}, headers=s.owner.headers)
    assert unknown.status_code == 422


async def test_rules_per_workspace_are_bounded(
    client: httpx.AsyncClient, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botplatform.automation import service

    monkeypatch.setattr(service, "MAX_RULES", 2)
    s = await shop(api)
    body = {"event": "conversation.created", "actions": RESOLVE}
    assert [(await _post(s, body)).status_code for _ in range(2)] == [201, 201]
    third = await _post(s, body)
    assert third.status_code == 409
    assert third.json()["error"]["code"] == "too_many_rules"
