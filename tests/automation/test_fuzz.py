"""Random rule bodies, well-formed or not, are saved or refused with a 4xx — never a 500."""

from __future__ import annotations

import random
from typing import Any

import httpx

from tests.automation.helpers import shop
from tests.conftest import Api

LEAVES = [
    "message_content",
    "message_direction",
    "channel",
    "contact_attribute",
    "contact_tag",
    "conversation_label",
    "business_hours",
    "bogus",
]
ACTIONS = [
    "assign_agent",
    "assign_team",
    "add_label",
    "remove_label",
    "add_tag",
    "remove_tag",
    "send_message",
    "send_webhook",
    "resolve",
    "set_attribute",
    "bogus",
]
ODD: list[Any] = [
    None,
    "",
    "\u202e",
    "x" * 600,
    -1,
    2**70,
    1.5,
    True,
    [],
    {},
    "00000000-0000-4000-8000-000000000000",
    "(",
    "ok",
    ["a", "b"],
    {"a": 1},
]


def _value(rng: random.Random) -> Any:
    return rng.choice(ODD)


VALID_LEAVES: list[dict[str, Any]] = [
    {"type": "message_content", "operator": "regex", "value": "a+b?"},
    {"type": "message_direction", "value": "inbound"},
    {"type": "channel", "value": ["00000000-0000-4000-8000-000000000000"]},
    {"type": "contact_attribute", "key": "plan", "operator": "exists"},
    {"type": "contact_tag", "value": "vip"},
    {"type": "conversation_label", "operator": "has_not", "value": "x"},
    {"type": "business_hours", "operator": "outside"},
]
VALID_ACTIONS: list[dict[str, Any]] = [
    {"type": "add_label", "labels": ["a"]},
    {"type": "set_attribute", "key": "k", "value": 1},
    {"type": "send_message", "message": {"text": "hi"}},
    {"type": "send_webhook", "data": {"a": "b"}},
    {"type": "resolve"},
    {"type": "assign_team", "team_id": "00000000-0000-4000-8000-000000000000"},
]


def _condition(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if roll > 0.6:
        return dict(rng.choice(VALID_LEAVES))
    if depth < 7 and roll < 0.3:
        key = rng.choice(["all", "any", "none"])
        return {key: [_condition(rng, depth + 1) for _ in range(rng.randint(0, 3))]}
    if roll < 0.35:
        return _value(rng)
    leaf: dict[str, Any] = {"type": rng.choice(LEAVES)}
    for field in ("operator", "value", "key"):
        if rng.random() < 0.7:
            leaf[field] = rng.choice(
                [_value(rng), "contains", "regex", "in", "has", "within", "equals", "inbound"]
            )
    return leaf


def _action(rng: random.Random) -> Any:
    if rng.random() < 0.6:
        return dict(rng.choice(VALID_ACTIONS))
    action: dict[str, Any] = {"type": rng.choice(ACTIONS)}
    for field in ("user_id", "team_id", "labels", "tags", "message", "key", "value", "data"):
        if rng.random() < 0.3:
            action[field] = _value(rng) if rng.random() < 0.6 else {"text": "hi"}
    return action


async def test_random_rules_never_crash(client: httpx.AsyncClient, api: Api) -> None:
    s = await shop(api)
    rng = random.Random(20261124)
    statuses = []
    for _ in range(120):
        body: dict[str, Any] = {
            "name": rng.choice(["r"] * 8 + ["", "x" * 200, 5]),
            "event": rng.choice(["message.received"] * 3 + ["contact.created", "nope"]),
            "conditions": _condition(rng, 0),
            "actions": [_action(rng) for _ in range(rng.randint(0, 3))],
        }
        if rng.random() < 0.2:
            body[rng.choice(["workspace_id", "position", "enabled"])] = _value(rng)
        response = await client.post(s.url("/automations"), json=body, headers=s.owner.headers)
        assert response.status_code in (201, 400, 409, 422), (body, response.text)
        assert response.json()["success"] is (response.status_code == 201)
        statuses.append(response.status_code)
    assert {201, 422} <= set(statuses)
