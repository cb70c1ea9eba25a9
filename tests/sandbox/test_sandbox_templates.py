"""The fake Graph API's message templates, as Meta shapes them: create (PENDING, reviewed
after the delay, the signed status webhook to every number of the account), list page by page
with cursors, delete by name (and hsm_id), and Meta's error JSON."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from botplatform.sandbox import FakeGraph
from tests.sandbox.test_whatsapp_sandbox import (
    HOOK_URL,
    SECRET,
    TOKEN,
    Receiver,
    api_client,
    verify_signature,
)

WABA = "102290129340398"
URL = f"/v21.0/{WABA}/message_templates"
BODY: dict[str, Any] = {
    "name": "order_update",
    "language": "en_US",
    "category": "UTILITY",
    "components": [
        {
            "type": "BODY",
            "text": "Hi {{1}}, order {{2}} shipped.",
            "example": {"body_text": [["A", "1"]]},
        }
    ],
}


@pytest.fixture
def hooks() -> Receiver:
    return Receiver()


@pytest.fixture
async def fake(hooks: Receiver) -> AsyncIterator[FakeGraph]:
    webhook_client = hooks.client()
    graph = FakeGraph(
        access_tokens={TOKEN},
        app_secret=SECRET,
        webhook_url=HOOK_URL,
        template_approval_delay=0.05,
        webhook_client=webhook_client,
    )
    yield graph
    await graph.aclose()
    await webhook_client.aclose()


@pytest.fixture
async def api(fake: FakeGraph) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(fake) as http:
        yield http


async def test_create_is_pending_then_reviewed_with_a_signed_webhook(
    api: httpx.AsyncClient, fake: FakeGraph, hooks: Receiver
) -> None:
    created = await api.post(URL, json=BODY)
    assert created.status_code == 200
    answer = created.json()
    assert answer["status"] == "PENDING" and answer["category"] == "UTILITY"
    rejected = await api.post(
        URL,
        json={
            **BODY,
            "name": "bad_shape",
            "components": [
                {"type": "BODY", "text": "{{1}} shipped", "example": {"body_text": [["A"]]}}
            ],
        },
    )
    assert rejected.status_code == 200
    payloads = await hooks.wait_for(2)
    verify_signature(*hooks.calls[0])
    values = {}
    for payload in payloads:
        [entry] = payload["entry"]
        assert entry["id"] == WABA and isinstance(entry["time"], int)
        [change] = entry["changes"]
        assert change["field"] == "message_template_status_update"
        values[change["value"]["message_template_name"]] = change["value"]
    assert values["order_update"] == {
        "event": "APPROVED",
        "message_template_id": int(answer["id"]),
        "message_template_name": "order_update",
        "message_template_language": "en_US",
        "reason": "NONE",
        "message_template_category": "UTILITY",
    }
    assert values["bad_shape"]["event"] == "REJECTED"
    assert values["bad_shape"]["reason"] == "INVALID_FORMAT"


async def test_list_pages_with_cursors(api: httpx.AsyncClient, fake: FakeGraph) -> None:
    for i in range(5):
        fake.templates.create(WABA, {**BODY, "name": f"t_{i}"})
    first = (await api.get(URL, params={"limit": 2})).json()
    assert [t["name"] for t in first["data"]] == ["t_0", "t_1"]
    assert set(first["paging"]["cursors"]) == {"before", "after"}
    assert "after=" in first["paging"]["next"]
    names, after = [], first["paging"]["cursors"]["after"]
    while True:
        page = (await api.get(URL, params={"limit": 2, "after": after})).json()
        names += [t["name"] for t in page["data"]]
        if "next" not in page["paging"]:
            break
        after = page["paging"]["cursors"]["after"]
    assert names == ["t_2", "t_3", "t_4"]
    item = first["data"][0]
    assert set(item) >= {"id", "name", "language", "status", "category", "components"}


async def test_meta_errors_and_delete(api: httpx.AsyncClient, fake: FakeGraph) -> None:
    assert (await api.post(URL, json=BODY)).status_code == 200
    duplicate = await api.post(URL, json=BODY)
    assert duplicate.status_code == 400
    error = duplicate.json()["error"]
    assert error["code"] == 100 and error["error_subcode"] == 2388024
    assert error["error_user_title"] == "Content in This Language Already Exists"
    missing_example = await api.post(
        URL, json={**BODY, "name": "x", "components": [{"type": "BODY", "text": "Hi {{1}}"}]}
    )
    assert missing_example.status_code == 400
    bad_name = await api.post(URL, json={**BODY, "name": "Bad Name"})
    assert bad_name.json()["error"]["code"] == 100
    unknown = await api.get("/v21.0/999888777/message_templates")
    assert unknown.json()["error"]["error_subcode"] == 33
    no_token = await api.get(URL, headers={"Authorization": ""})
    assert no_token.status_code == 401

    [template] = fake.templates.of(WABA)
    wrong_id = await api.delete(URL, params={"name": "order_update", "hsm_id": "1"})
    assert wrong_id.status_code == 400
    deleted = await api.delete(URL, params={"name": "order_update", "hsm_id": template["id"]})
    assert deleted.json() == {"success": True}
    assert fake.templates.of(WABA) == []
    again = await api.post(URL, json=BODY)
    assert again.json()["error"]["error_subcode"] == 2388023
    assert json.dumps(again.json())  # plain JSON, as Meta answers
