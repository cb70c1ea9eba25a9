"""Bots over the API: CRUD, validation on save, publishing immutable versions, roles."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import select

from botplatform.models import BotVersion
from botplatform.runtime import Runtime
from tests.bot.flows import support_flow
from tests.bot.helpers import create_bot, publish
from tests.conftest import Api


async def test_create_edit_publish_and_list_versions(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    bot = await create_bot(
        api, owner, ws, support_flow(), channel_ids=[channel["id"]], handoff_idle_minutes=15
    )
    assert bot["draft_revision"] == 1 and bot["published_version"] is None
    assert bot["channel_ids"] == [channel["id"]] and bot["handoff_idle_minutes"] == 15
    base = f"/api/v1/workspaces/{ws}/bots/{bot['id']}"

    v1 = await publish(api, owner, ws, bot["id"])
    assert (v1["number"], v1["draft_revision"], v1["is_live"]) == (1, 1, True)
    edited = await client.patch(
        base,
        json={"flow": support_flow("hey"), "name": "Front desk", "default_handoff_idle": True},
        headers=owner.headers,
    )
    data = edited.json()["data"]
    assert (data["draft_revision"], data["name"], data["handoff_idle_minutes"]) == (
        2,
        "Front desk",
        None,
    )
    assert data["published_version"] == 1  # editing the draft does not change what is live
    v2 = await publish(api, owner, ws, bot["id"])
    assert v2["number"] == 2

    listed = (await client.get(f"{base}/versions", headers=owner.headers)).json()["data"]
    assert [(v["number"], v["is_live"]) for v in listed["items"]] == [(2, True), (1, False)]
    first = (await client.get(f"{base}/versions/{v1['id']}", headers=owner.headers)).json()
    assert first["data"]["flow"]["triggers"][0]["keywords"] == ["hi", "hello"]
    bots = (await client.get(f"/api/v1/workspaces/{ws}/bots", headers=owner.headers)).json()
    assert [b["published_version"] for b in bots["data"]["items"]] == [2]

    deleted = await client.delete(base, headers=owner.headers)
    assert deleted.status_code == 200
    assert (await client.get(base, headers=owner.headers)).status_code == 404


async def test_invalid_flow_is_refused_with_every_problem(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    flow = support_flow()
    flow["nodes"][0]["type"] = "send_pigeon"
    flow["edges"].append({"from": "bye", "to": "nowhere"})
    response = await client.post(
        f"/api/v1/workspaces/{ws}/bots", json={"name": "B", "flow": flow}, headers=owner.headers
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "flow_invalid"
    assert {(d["code"], d.get("node"), d.get("edge")) for d in error["details"]} >= {
        ("unknown_node_type", "menu", None),
        ("dangling_edge", None, 4),
    }
    bot = await create_bot(api, owner, ws, support_flow())
    patched = await client.patch(
        f"/api/v1/workspaces/{ws}/bots/{bot['id']}", json={"flow": flow}, headers=owner.headers
    )
    assert patched.status_code == 422
    kept = await client.get(f"/api/v1/workspaces/{ws}/bots/{bot['id']}", headers=owner.headers)
    assert kept.json()["data"]["draft_revision"] == 1


async def test_publishing_needs_a_trigger_and_bad_bodies_are_4xx(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    empty = await create_bot(api, owner, ws, {})
    response = await client.post(
        f"/api/v1/workspaces/{ws}/bots/{empty['id']}/versions", json={}, headers=owner.headers
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "flow_without_triggers"
    for body in (
        {"name": ""},
        {"name": "x", "flow": []},
        {"name": "x", "workspace_id": str(uuid.uuid4())},
        {"name": "x", "channel_ids": ["not-a-uuid"]},
        {"name": "x", "handoff_idle_minutes": -1},
    ):
        bad = await client.post(f"/api/v1/workspaces/{ws}/bots", json=body, headers=owner.headers)
        assert bad.status_code == 422, body
    foreign = await client.post(
        f"/api/v1/workspaces/{ws}/bots",
        json={"name": "x", "channel_ids": [str(uuid.uuid4())]},
        headers=owner.headers,
    )
    assert foreign.status_code == 404


async def test_versions_are_immutable(api: Api, runtime: Runtime) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    bot = await create_bot(api, owner, ws, support_flow())
    await publish(api, owner, ws, bot["id"])
    with pytest.raises(ValueError, match="immutable"):
        async with runtime.db.unit_of_work(system=True) as db:
            version = (await db.execute(select(BotVersion))).scalar_one()
            version.flow = {}
            await db.flush()


async def test_roles(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    bot = await create_bot(api, owner, ws, support_flow())
    viewer = await api.add_member(owner, ws, "viewer")
    developer = await api.add_member(owner, ws, "developer")
    agent = await api.add_member(owner, ws, "agent")
    base = f"/api/v1/workspaces/{ws}/bots"
    assert (await client.get(base, headers=viewer.headers)).status_code == 200
    assert (await client.get(base, headers=agent.headers)).status_code == 403
    refused = await client.post(base, json={"name": "v", "flow": {}}, headers=viewer.headers)
    assert refused.status_code == 403
    simulate = {"messages": [{"text": "hi"}]}
    assert (
        await client.post(f"{base}/{bot['id']}/simulate", json=simulate, headers=viewer.headers)
    ).status_code == 403
    assert (
        await client.post(f"{base}/{bot['id']}/versions", json={}, headers=developer.headers)
    ).status_code == 201
