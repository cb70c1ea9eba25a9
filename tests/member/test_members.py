from __future__ import annotations

import httpx
import pytest

from tests.conftest import Account, Api


async def _members(client: httpx.AsyncClient, account: Account, ws: str) -> dict[str, str]:
    response = await client.get(f"/api/v1/workspaces/{ws}/members", headers=account.headers)
    assert response.status_code == 200
    return {item["user_id"]: item["role"] for item in response.json()["data"]["items"]}


async def test_members_are_listed_with_cursor_pages(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    for role in ("agent", "viewer", "analyst"):
        await api.add_member(owner, ws, role)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (
            await client.get(
                f"/api/v1/workspaces/{ws}/members", params=params, headers=owner.headers
            )
        ).json()["data"]
        seen += [item["role"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == ["agent", "analyst", "owner", "viewer"]


async def test_change_role_and_remove(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    agent = await api.add_member(owner, ws, "agent")
    url = f"/api/v1/workspaces/{ws}/members/{agent.user_id}"
    changed = await client.patch(url, json={"role": "manager"}, headers=owner.headers)
    assert changed.json()["data"]["role"] == "manager"
    assert (await client.delete(url, headers=owner.headers)).status_code == 200
    assert str(agent.user_id) not in await _members(client, owner, ws)
    assert (await client.get(f"/api/v1/workspaces/{ws}", headers=agent.headers)).status_code == 404


async def test_last_owner_cannot_be_demoted_removed_or_leave(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    url = f"/api/v1/workspaces/{ws}/members/{owner.user_id}"
    for response in (
        await client.patch(url, json={"role": "admin"}, headers=owner.headers),
        await client.delete(url, headers=owner.headers),
        await client.post(f"/api/v1/workspaces/{ws}/leave", headers=owner.headers),
    ):
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "last_owner"
    assert (await _members(client, owner, ws))[str(owner.user_id)] == "owner"


async def test_with_two_owners_one_may_step_down(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    second = await api.add_member(owner, ws, "owner")
    demoted = await client.patch(
        f"/api/v1/workspaces/{ws}/members/{owner.user_id}",
        json={"role": "admin"},
        headers=owner.headers,
    )
    assert demoted.status_code == 200
    # Now `second` is the last owner again.
    last = await client.delete(
        f"/api/v1/workspaces/{ws}/members/{second.user_id}", headers=owner.headers
    )
    assert last.status_code == 403  # an admin cannot touch an owner at all
    left = await client.post(f"/api/v1/workspaces/{ws}/leave", headers=second.headers)
    assert left.json()["error"]["code"] == "last_owner"


@pytest.mark.parametrize("target_role", ["owner"])
async def test_admin_cannot_touch_or_grant_owner(
    client: httpx.AsyncClient, api: Api, target_role: str
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    admin = await api.add_member(owner, ws, "admin")
    agent = await api.add_member(owner, ws, "agent")
    promote = await client.patch(
        f"/api/v1/workspaces/{ws}/members/{agent.user_id}",
        json={"role": target_role},
        headers=admin.headers,
    )
    assert promote.status_code == 403
    assert promote.json()["error"]["code"] == "role_too_high"
    demote_owner = await client.patch(
        f"/api/v1/workspaces/{ws}/members/{owner.user_id}",
        json={"role": "viewer"},
        headers=admin.headers,
    )
    assert demote_owner.status_code == 403
    members = await _members(client, owner, ws)
    assert members[str(agent.user_id)] == "agent"
    assert members[str(owner.user_id)] == "owner"


async def test_members_manage_is_required(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    manager = await api.add_member(owner, ws, "manager")
    viewer = await api.add_member(owner, ws, "viewer")
    response = await client.patch(
        f"/api/v1/workspaces/{ws}/members/{viewer.user_id}",
        json={"role": "agent"},
        headers=manager.headers,
    )
    assert response.status_code == 403
    assert response.json()["error"]["details"]["permission"] == "members:manage"
    # Reading the member list is open to every role.
    assert len(await _members(client, viewer, ws)) == 3


async def test_a_member_may_leave(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    viewer = await api.add_member(owner, ws, "viewer")
    assert (
        await client.post(f"/api/v1/workspaces/{ws}/leave", headers=viewer.headers)
    ).status_code == 200
    assert str(viewer.user_id) not in await _members(client, owner, ws)
