"""Teams and round-robin assignment: fair in turn, and under concurrency."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import httpx
from sqlalchemy import select

from botplatform.kit.scoping import enter_workspace
from botplatform.models import Conversation
from botplatform.runtime import Runtime
from botplatform.team import service as teams
from tests.automation.helpers import runs_of, settle, shop
from tests.conftest import Api


async def test_team_crud_and_validation(client: httpx.AsyncClient, api: Api) -> None:
    s = await shop(api)
    a = await api.add_member(s.owner, s.ws, "agent")
    b = await api.add_member(s.owner, s.ws, "agent")
    stranger = await api.register()
    viewer = await api.add_member(s.owner, s.ws, "viewer")
    url = s.url("/teams")
    created = await client.post(
        url,
        json={"name": "Billing", "member_ids": [str(a.user_id), str(b.user_id)]},
        headers=s.owner.headers,
    )
    assert created.status_code == 201, created.text
    team = created.json()["data"]
    assert team["member_ids"] == [str(a.user_id), str(b.user_id)]
    duplicate = await client.post(url, json={"name": "Billing"}, headers=s.owner.headers)
    assert duplicate.status_code == 409
    outsider = await client.post(
        url,
        json={
            "name": "Other",
            "member_ids": [str(a.user_id), str(stranger.user_id), str(viewer.user_id)],
        },
        headers=s.owner.headers,
    )
    assert outsider.status_code == 422
    assert [(d["field"], d["type"]) for d in outsider.json()["error"]["details"]] == [
        ("body.member_ids.1", "unknown_member"),
        ("body.member_ids.2", "not_an_agent"),
    ]
    assert (await client.post(url, json={"name": "X"}, headers=a.headers)).status_code == 403
    assert (await client.get(url, headers=a.headers)).json()["data"]["items"][0]["id"] == team["id"]
    patched = await client.patch(
        f"{url}/{team['id']}",
        json={"member_ids": [str(b.user_id)], "description": "Invoices"},
        headers=s.owner.headers,
    )
    assert patched.status_code == 200
    assert patched.json()["data"]["member_ids"] == [str(b.user_id)]
    deleted = await client.delete(f"{url}/{team['id']}", headers=s.owner.headers)
    assert deleted.status_code == 200
    assert (await client.get(f"{url}/{team['id']}", headers=s.owner.headers)).status_code == 404


async def test_round_robin_takes_turns_through_the_rule(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    s = await shop(api)
    agents = [await api.add_member(s.owner, s.ws, "agent") for _ in range(3)]
    team = (
        await client.post(
            s.url("/teams"),
            json={"name": "Support", "member_ids": [str(a.user_id) for a in agents]},
            headers=s.owner.headers,
        )
    ).json()["data"]
    rule = await s.rule(
        event="conversation.created", actions=[{"type": "assign_team", "team_id": team["id"]}]
    )
    # Nine customers write at once: their conversations are spread evenly.
    await asyncio.gather(
        *(api.inbound_text(s.channel["id"], f"1555000300{i}", "hi", name=f"C{i}") for i in range(9))
    )
    await settle(runtime)
    runs = await runs_of(s, rule["id"], 9)
    assert {r["outcome"] for r in runs} == {"succeeded"}
    items = (
        await client.get(s.url("/conversations"), params={"limit": 50}, headers=s.owner.headers)
    ).json()["data"]["items"]
    assert len(items) == 9
    assert {c["team_id"] for c in items} == {team["id"]}
    assert Counter(c["assignee_id"] for c in items) == {str(a.user_id): 3 for a in agents}


async def test_round_robin_is_fair_under_concurrent_picks(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    """Twelve picks in twelve concurrent transactions: four each, never the same agent
    twice in a row of commits."""
    s = await shop(api)
    agents = [await api.add_member(s.owner, s.ws, "agent") for _ in range(3)]
    team = (
        await client.post(
            s.url("/teams"),
            json={"name": "Sales", "member_ids": [str(a.user_id) for a in agents]},
            headers=s.owner.headers,
        )
    ).json()["data"]
    ws, team_id = uuid.UUID(s.ws), uuid.UUID(team["id"])

    async def pick() -> uuid.UUID:
        async with runtime.db.unit_of_work() as db:
            await enter_workspace(db, ws)
            return await teams.pick_round_robin(db, ws, team_id)

    picked = await asyncio.gather(*(pick() for _ in range(12)))
    assert Counter(picked) == {a.user_id: 4 for a in agents}


async def test_an_empty_team_fails_the_action_but_sets_the_team(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    s = await shop(api)
    agent = await api.add_member(s.owner, s.ws, "agent")
    team = (
        await client.post(
            s.url("/teams"),
            json={"name": "Night", "member_ids": [str(agent.user_id)]},
            headers=s.owner.headers,
        )
    ).json()["data"]
    rule = await s.rule(
        event="conversation.created",
        actions=[
            {"type": "assign_team", "team_id": team["id"]},
            {"type": "assign_team", "team_id": team["id"], "round_robin": False},
        ],
    )
    # The only member leaves the workspace: nobody is left to pick.
    await client.delete(s.url(f"/members/{agent.user_id}"), headers=s.owner.headers)
    await api.inbound_text(s.channel["id"], "15550003100", "hi", name="Night Owl")
    await settle(runtime)
    (run,) = await runs_of(s, rule["id"])
    assert [(a["status"], (a["error"] or {}).get("code")) for a in run["actions"]] == [
        ("failed", "team_empty"),
        ("succeeded", None),
    ]
    conversation = await s.conversation("Night Owl")
    assert (conversation["team_id"], conversation["assignee_id"]) == (team["id"], None)
    # Deleting the team clears it from its conversations.
    await client.delete(s.url(f"/teams/{team['id']}"), headers=s.owner.headers)
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        row = (await db.execute(select(Conversation))).scalar_one()
    assert row.team_id is None
