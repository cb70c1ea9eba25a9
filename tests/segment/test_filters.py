"""The audience filter language, every operator, on both backends (the `settings` fixture
runs each test on SQLite and on PostgreSQL), through the live-count API."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx

from botplatform.kit.clock import utcnow
from botplatform.runtime import Runtime
from tests.conftest import Account, Api
from tests.segment.helpers import Person, seed


def _attr(key: str, operator: str, value: Any = None) -> dict[str, Any]:
    condition = {"type": "attribute", "key": key, "operator": operator}
    return condition if value is None else {**condition, "value": value}


def _tags(operator: str, *values: str) -> dict[str, Any]:
    return {"type": "tags", "operator": operator, "values": list(values)}


def _all(*conditions: dict[str, Any]) -> dict[str, Any]:
    return {"match": "all", "conditions": list(conditions)}


async def _population(api: Api, runtime: Runtime) -> tuple[Account, str, dict[str, str]]:
    """Four opted-in contacts (ann, bob, cid, dan), one opted out (eve) who matches nearly
    everything, and another workspace's contact (zed) who does too."""
    owner = await api.register()
    ws = await api.create_workspace(owner)
    one = await api.create_channel(owner, ws, name="One")
    two = await api.create_channel(owner, ws, name="Two", phone_number_id="2233445566778")
    ch1, ch2 = uuid.UUID(one["id"]), uuid.UUID(two["id"])
    now = utcnow()
    people = [
        Person(
            "ann",
            tags=["vip", "news"],
            attributes={
                "city": "Paris",
                "age": 34,
                "score": "7.5",
                "joined": "2024-03-01",
                "premium": True,
                "plan": "gold",
            },
            identities=[("whatsapp", "15550000001")],
            conversations=[(ch1, now - timedelta(days=2))],
        ),
        Person(
            "bob",
            tags=["news"],
            attributes={
                "city": "paris",
                "age": "19",
                "joined": "2025-01-15T10:00:00Z",
                "premium": False,
                "note": "50% off_now",
            },
            identities=[("whatsapp", "15550000002"), ("telegram", "bob42")],
            conversations=[(ch1, now - timedelta(days=40))],
        ),
        Person(
            "cid",
            attributes={"city": "Berlin", "age": 52, "joined": "not a date", "score": "abc"},
            identities=[("telegram", "cid7")],
            conversations=[(ch2, None)],  # only ever written to
        ),
        Person("dan", tags=["vip"]),
        Person(
            "eve",
            tags=["vip", "news"],
            attributes={"city": "Paris", "age": 34, "premium": True, "plan": "gold"},
            opted_out=True,
            identities=[("whatsapp", "15550000005")],
            conversations=[(ch1, now - timedelta(days=1))],
        ),
    ]
    await seed(runtime, uuid.UUID(ws), people)
    other = await api.register()
    other_ws = await api.create_workspace(other, "Other")
    await seed(
        runtime,
        uuid.UUID(other_ws),
        [
            Person(
                "zed",
                tags=["vip", "news"],
                attributes={"city": "Paris", "age": 34, "plan": "gold", "premium": True},
                identities=[("whatsapp", "15550000001")],
            )
        ],
    )
    return owner, ws, {"ch1": str(ch1), "ch2": str(ch2)}


def _cases(channels: dict[str, str]) -> list[tuple[dict[str, Any], set[str]]]:
    now = utcnow()
    everyone = {"ann", "bob", "cid", "dan"}
    return [
        ({}, everyone),
        (_all(), everyone),
        (_all(_tags("has_any", "vip")), {"ann", "dan"}),
        (_all(_tags("has_any", "vip", "news")), {"ann", "bob", "dan"}),
        (_all(_tags("has_all", "vip", "news")), {"ann"}),
        (_all(_tags("has_none", "vip")), {"bob", "cid"}),
        (_all(_tags("has_none", "vip", "news")), {"cid"}),
        (_all(_attr("city", "eq", "Paris")), {"ann"}),
        (_all(_attr("city", "neq", "Paris")), {"bob", "cid", "dan"}),
        (_all(_attr("city", "contains", "ARI")), {"ann", "bob"}),
        (_all(_attr("city", "starts_with", "ber")), {"cid"}),
        (_all(_attr("age", "gt", 30)), {"ann", "cid"}),
        (_all(_attr("age", "gte", 34)), {"ann", "cid"}),
        (_all(_attr("age", "lt", 34)), {"bob"}),
        (_all(_attr("age", "lte", "19")), {"bob"}),
        (_all(_attr("age", "gt", 52)), set()),
        (_all(_attr("score", "gt", 7)), {"ann"}),
        (_all(_attr("score", "lt", 100.5)), {"ann"}),
        (_all(_attr("joined", "gt", "2024-12-31")), {"bob"}),
        (_all(_attr("joined", "lte", "2024-03-01")), {"ann"}),
        (_all(_attr("joined", "lt", "2030-01-01")), {"ann", "bob"}),
        (_all(_attr("joined", "gte", "2025-01-15")), {"bob"}),
        (_all(_attr("premium", "eq", True)), {"ann"}),
        (_all(_attr("premium", "eq", False)), {"bob"}),
        (_all(_attr("premium", "neq", True)), {"bob", "cid", "dan"}),
        (_all(_attr("age", "eq", 34)), {"ann"}),
        (_all(_attr("age", "eq", "19")), {"bob"}),
        (_all(_attr("age", "in", [34, "19"])), {"ann", "bob"}),
        (_all(_attr("city", "in", ["Berlin", "paris"])), {"bob", "cid"}),
        (_all(_attr("plan", "exists")), {"ann"}),
        (_all(_attr("plan", "not_exists")), {"bob", "cid", "dan"}),
        (_all(_attr("note", "contains", "% off_")), {"bob"}),
        (_all(_attr("note", "contains", "5_%")), set()),  # wildcards are literal
        (_all(_attr("note", "starts_with", "50%")), {"bob"}),
        (_all({"type": "channel", "provider": "whatsapp"}), {"ann", "bob"}),
        (_all({"type": "channel", "provider": "telegram"}), {"bob", "cid"}),
        (_all({"type": "channel", "channel_id": channels["ch2"]}), {"cid"}),
        (_all({"type": "channel", "channel_id": channels["ch1"]}), {"ann", "bob"}),
        (_all({"type": "last_inbound", "operator": "after", "days_ago": 7}), {"ann"}),
        (_all({"type": "last_inbound", "operator": "before", "days_ago": 7}), {"bob"}),
        (
            _all(
                {
                    "type": "last_inbound",
                    "operator": "after",
                    "at": (now - timedelta(days=30)).isoformat(),
                }
            ),
            {"ann"},
        ),
        (
            _all(
                {
                    "type": "last_inbound",
                    "operator": "before",
                    "at": (now - timedelta(days=1)).isoformat(),
                }
            ),
            {"ann", "bob"},
        ),
        (_all({"type": "last_inbound", "operator": "never"}), {"cid", "dan"}),
        (
            {
                "match": "any",
                "conditions": [_tags("has_all", "vip", "news"), _attr("city", "eq", "Berlin")],
            },
            {"ann", "cid"},
        ),
        (
            _all(
                _tags("has_any", "news"),
                {
                    "type": "group",
                    "match": "any",
                    "conditions": [_attr("age", "gt", 30), _attr("city", "eq", "Berlin")],
                },
            ),
            {"ann"},
        ),
    ]


async def test_every_operator_counts_right_and_never_an_opted_out_or_foreign_contact(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner, ws, channels = await _population(api, runtime)
    created = await client.post(
        f"/api/v1/workspaces/{ws}/segments",
        json={"name": "probe", "definition": {}},
        headers=owner.headers,
    )
    assert created.status_code == 201, created.text
    segment_url = f"/api/v1/workspaces/{ws}/segments/{created.json()['data']['id']}"
    wrong = []
    for definition, expected in _cases(channels):
        counted = await client.post(
            f"/api/v1/workspaces/{ws}/segments/preview-count",
            json=definition,
            headers=owner.headers,
        )
        assert counted.status_code == 200, (definition, counted.text)
        # The saved segment's sample names the very contacts the count counts.
        saved = await client.patch(
            segment_url, json={"definition": definition}, headers=owner.headers
        )
        assert saved.status_code == 200, saved.text
        listed = await client.get(f"{segment_url}/contacts", headers=owner.headers)
        names = {item["name"] for item in listed.json()["data"]["items"]}
        count = counted.json()["data"]["count"]
        if names != expected or count != len(expected):
            wrong.append((definition, sorted(expected), sorted(names), count))
    assert not wrong, wrong
    total = await client.get(f"{segment_url}/count", headers=owner.headers)
    assert total.json()["data"]["count"] == 1  # the last definition: ann


async def test_bad_definitions_are_clear_422s(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    bad: list[tuple[dict[str, Any], str]] = [
        ({"conditions": [{"type": "colour"}]}, "Unknown"),
        ({"conditions": [_attr("age", "gt", "soon")]}, "compares numbers or ISO dates"),
        ({"conditions": [_attr("age", "gt")]}, "`value` is required"),
        ({"conditions": [_attr("age", "exists", 3)]}, "takes no `value`"),
        ({"conditions": [_attr("age", "in", 3)]}, "list of 1 to 100 values"),
        ({"conditions": [_attr("city", "contains", 3)]}, "compares text"),
        ({"conditions": [_attr("bad key!", "eq", "x")]}, "wrong format"),
        ({"conditions": [_tags("has_some", "vip")]}, "has_any"),
        ({"conditions": [{"type": "channel"}]}, "exactly one of `provider` or `channel_id`"),
        (
            {"conditions": [{"type": "last_inbound", "operator": "after"}]},
            "exactly one of `at` or `days_ago`",
        ),
        (
            {"conditions": [{"type": "last_inbound", "operator": "after", "at": "2026-01-01"}]},
            "timezone",
        ),
        ({"match": "most", "conditions": []}, "'all' or 'any'"),
        (
            _all(
                {
                    "type": "group",
                    "conditions": [
                        {
                            "type": "group",
                            "conditions": [
                                {"type": "group", "conditions": [_tags("has_any", "x")]}
                            ],
                        }
                    ],
                }
            ),
            "nest at most 3",
        ),
    ]
    for definition, words in bad:
        response = await client.post(
            f"/api/v1/workspaces/{ws}/segments/preview-count",
            json=definition,
            headers=owner.headers,
        )
        assert response.status_code == 422, (definition, response.text)
        body = response.json()
        assert body["success"] is False
        assert words in response.text, (definition, response.text)
