"""Channel assignment (SPEC §2): an agent sees only the conversations of the channels it is
assigned to; anything else answers 404. Other roles see every channel."""

from __future__ import annotations

from typing import Any

import httpx

from botplatform.sandbox import FakeGraph
from tests.conftest import Account, Api


async def _two_channels(api: Api) -> tuple[Account, str, dict[str, Any], dict[str, Any]]:
    """A workspace with channels A and B, each with one conversation (Ann on A, Bob on B)."""
    owner = await api.register()
    ws = await api.create_workspace(owner)
    a = await api.create_channel(owner, ws, name="A")
    b = await api.create_channel(owner, ws, name="B", phone_number_id="2233445566778")
    await api.inbound_text(a["id"], "15550000001", "hi from A", name="Ann")
    await api.inbound_text(b["id"], "15550000002", "hi from B", name="Bob")
    a["conversation"] = await api.conversation_of(owner, ws, "Ann")
    b["conversation"] = await api.conversation_of(owner, ws, "Bob")
    return owner, ws, a, b


async def _assign(
    client: httpx.AsyncClient, by: Account, ws: str, member: Account, channel_ids: list[str]
) -> httpx.Response:
    return await client.put(
        f"/api/v1/workspaces/{ws}/members/{member.user_id}/channels",
        json={"channel_ids": channel_ids},
        headers=by.headers,
    )


async def _conversation_ids(client: httpx.AsyncClient, who: Account, ws: str) -> set[str]:
    response = await client.get(f"/api/v1/workspaces/{ws}/conversations", headers=who.headers)
    assert response.status_code == 200, response.text
    return {c["id"] for c in response.json()["data"]["items"]}


async def _channel_ids(client: httpx.AsyncClient, who: Account, ws: str) -> set[str]:
    response = await client.get(f"/api/v1/workspaces/{ws}/channels", headers=who.headers)
    assert response.status_code == 200, response.text
    return {c["id"] for c in response.json()["data"]["items"]}


async def test_agent_sees_only_its_channels_and_admin_sees_all(
    client: httpx.AsyncClient, api: Api, wa: FakeGraph
) -> None:
    owner, ws, a, b = await _two_channels(api)
    agent = await api.add_member(owner, ws, "agent")
    admin = await api.add_member(owner, ws, "admin")
    base = f"/api/v1/workspaces/{ws}"
    conv_a, conv_b = a["conversation"]["id"], b["conversation"]["id"]

    # Unassigned, an agent sees no channel at all.
    assert await _conversation_ids(client, agent, ws) == set()
    assert await _channel_ids(client, agent, ws) == set()

    assigned = await _assign(client, owner, ws, agent, [a["id"], a["id"]])
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["data"]["channel_ids"] == [a["id"]]  # duplicates dropped
    assert assigned.json()["data"]["channel_scoped"] is True

    assert await _conversation_ids(client, agent, ws) == {conv_a}
    filtered = await client.get(
        f"{base}/conversations", params={"channel_id": b["id"]}, headers=agent.headers
    )
    assert filtered.json()["data"]["items"] == []
    assert await _channel_ids(client, agent, ws) == {a["id"]}
    h = agent.headers
    assert (await client.get(f"{base}/conversations/{conv_a}", headers=h)).status_code == 200
    hidden = await client.get(f"{base}/conversations/{conv_b}", headers=h)
    assert hidden.status_code == 404
    assert hidden.json()["error"]["code"] == "conversation_not_found"
    messages_a = await client.get(f"{base}/conversations/{conv_a}/messages", headers=h)
    assert messages_a.status_code == 200
    assert [m["text"] for m in messages_a.json()["data"]["items"]] == ["hi from A"]
    messages_b = await client.get(f"{base}/conversations/{conv_b}/messages", headers=h)
    assert messages_b.status_code == 404
    for body in ({"text": "hello"}, {"text": "a note", "note": True}):
        blocked = await client.post(f"{base}/conversations/{conv_b}/messages", json=body, headers=h)
        assert blocked.status_code == 404, body
        allowed = await client.post(f"{base}/conversations/{conv_a}/messages", json=body, headers=h)
        assert allowed.status_code == 201, allowed.text
    send = {"to": "+15550000001", "type": "text", "text": "hi"}  # Ann: window open on A
    via_b = await client.post(f"{base}/messages", json={"channel_id": b["id"], **send}, headers=h)
    assert via_b.status_code == 404
    assert via_b.json()["error"]["code"] == "channel_not_found"
    via_a = await client.post(f"{base}/messages", json={"channel_id": a["id"], **send}, headers=h)
    assert via_a.status_code == 201, via_a.text
    assert (await client.get(f"{base}/channels/{b['id']}", headers=h)).status_code == 404
    assert (await client.get(f"{base}/channels/{a['id']}", headers=h)).status_code == 200

    # An admin (like owners and managers) sees every channel, assigned or not.
    assert {conv_a, conv_b} <= await _conversation_ids(client, admin, ws)
    assert await _channel_ids(client, admin, ws) == {a["id"], b["id"]}
    seen = await client.get(f"{base}/conversations/{conv_b}", headers=admin.headers)
    assert seen.status_code == 200

    # A change takes effect at the agent's very next request.
    moved = await _assign(client, owner, ws, agent, [b["id"]])
    assert moved.status_code == 200
    assert conv_b in await _conversation_ids(client, agent, ws)
    assert conv_a not in await _conversation_ids(client, agent, ws)
    assert (await client.get(f"{base}/conversations/{conv_a}", headers=h)).status_code == 404
    assert (await client.get(f"{base}/conversations/{conv_b}", headers=h)).status_code == 200
    cleared = await _assign(client, owner, ws, agent, [])
    assert cleared.json()["data"]["channel_ids"] == []
    assert await _conversation_ids(client, agent, ws) == set()


async def test_assignment_is_shown_on_members_and_managed_by_members_manage(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    a = await api.create_channel(owner, ws, name="A")
    agent = await api.add_member(owner, ws, "agent")
    manager = await api.add_member(owner, ws, "manager")
    base = f"/api/v1/workspaces/{ws}/members"

    assert (await _assign(client, owner, ws, manager, [a["id"]])).status_code == 200
    shown = (await client.get(f"{base}/{manager.user_id}", headers=owner.headers)).json()["data"]
    assert shown["channel_ids"] == [a["id"]] and shown["channel_scoped"] is False
    listed = (await client.get(base, headers=owner.headers)).json()["data"]["items"]
    by_user = {m["user_id"]: m for m in listed}
    assert by_user[str(manager.user_id)]["channel_ids"] == [a["id"]]
    assert by_user[str(agent.user_id)]["channel_ids"] == []
    assert by_user[str(agent.user_id)]["channel_scoped"] is True
    channel_url = f"/api/v1/workspaces/{ws}/channels"
    shown_channel = await client.get(f"{channel_url}/{a['id']}", headers=owner.headers)
    assert shown_channel.json()["data"]["member_ids"] == [str(manager.user_id)]
    listed_channels = await client.get(channel_url, headers=owner.headers)
    assert listed_channels.json()["data"]["items"][0]["member_ids"] == [str(manager.user_id)]

    # members:manage decides: neither the agent itself nor a manager may.
    for who in (agent, manager):
        refused = await _assign(client, who, ws, agent, [a["id"]])
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "permission_denied"

    # Unknown channels and other tenants' channels are 404, not assigned.
    other = await api.register()
    other_ws = await api.create_workspace(other)
    foreign = await api.create_channel(other, other_ws)
    for channel_id in (foreign["id"], "00000000-0000-0000-0000-000000000001"):
        missing = await _assign(client, owner, ws, agent, [a["id"], channel_id])
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "channel_not_found"
    bad = await _assign(client, owner, ws, agent, ["not-a-uuid"])
    assert bad.status_code == 422
    stranger = await api.register()
    assert (await _assign(client, owner, ws, stranger, [a["id"]])).status_code == 404
    listed = (await client.get(f"{base}/{agent.user_id}", headers=owner.headers)).json()
    assert listed["data"]["channel_ids"] == []  # nothing half-applied

    # Removing the member removes its assignments: re-invited, it starts with none.
    assert (await _assign(client, owner, ws, agent, [a["id"]])).status_code == 200
    removed = await client.delete(f"{base}/{agent.user_id}", headers=owner.headers)
    assert removed.status_code == 200
    invitation = await api.invite(owner, ws, agent.email, "agent")
    token = invitation["link"].split("token=", 1)[1]
    joined = await client.post(
        "/api/v1/invitations/accept", json={"token": token}, headers=agent.headers
    )
    assert joined.status_code == 200, joined.text
    again = (await client.get(f"{base}/{agent.user_id}", headers=owner.headers)).json()
    assert again["data"]["channel_ids"] == []


async def test_channel_deletion_drops_its_assignments(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    a = await api.create_channel(owner, ws, name="A")
    agent = await api.add_member(owner, ws, "agent")
    assert (await _assign(client, owner, ws, agent, [a["id"]])).status_code == 200
    deleted = await client.delete(
        f"/api/v1/workspaces/{ws}/channels/{a['id']}", headers=owner.headers
    )
    assert deleted.status_code == 200
    shown = await client.get(
        f"/api/v1/workspaces/{ws}/members/{agent.user_id}", headers=owner.headers
    )
    assert shown.json()["data"]["channel_ids"] == []


async def test_order_is_stable_and_nobody_manages_a_higher_role(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    a = await api.create_channel(owner, ws, name="A")
    b = await api.create_channel(owner, ws, name="B", phone_number_id="2233445566778")
    agent = await api.add_member(owner, ws, "agent")
    admin = await api.add_member(owner, ws, "admin")
    assert (await _assign(client, admin, ws, agent, [a["id"]])).status_code == 200
    both = await _assign(client, admin, ws, agent, [b["id"], a["id"]])
    assert both.json()["data"]["channel_ids"] == [a["id"], b["id"]]  # oldest first, as GET
    shown = await client.get(
        f"/api/v1/workspaces/{ws}/members/{agent.user_id}", headers=owner.headers
    )
    assert shown.json()["data"]["channel_ids"] == [a["id"], b["id"]]
    refused = await _assign(client, admin, ws, owner, [a["id"]])
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "role_too_high"
