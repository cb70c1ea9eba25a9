"""API keys follow the members' rule: nobody revokes a key created by someone whose role is
above their own (a key acts with its creator's role). Equal or lower roles may; no listing
ever shows a key's secret."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Account, Api


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _team(api: Api) -> tuple[str, dict[str, Account], dict[str, dict[str, Any]]]:
    """A workspace with an owner, an admin and two developers, each with a key of their own."""
    owner = await api.register()
    ws = await api.create_workspace(owner)
    people = {
        "owner": owner,
        "admin": await api.add_member(owner, ws, "admin"),
        "developer": await api.add_member(owner, ws, "developer"),
        "developer2": await api.add_member(owner, ws, "developer"),
    }
    made = {
        name: await api.create_key(person, ws, ["workspace:read", "api_keys:manage"])
        for name, person in people.items()
    }
    return ws, people, made


async def _revoke(client: httpx.AsyncClient, ws: str, key: dict[str, Any], headers: Any) -> Any:
    return await client.delete(
        f"/api/v1/workspaces/{ws}/api-keys/{key['api_key']['id']}", headers=headers
    )


@pytest.mark.parametrize(
    ("actor", "creator"),
    [("developer", "admin"), ("developer", "owner"), ("admin", "owner")],
)
async def test_nobody_revokes_a_key_created_by_a_higher_role(
    client: httpx.AsyncClient, api: Api, actor: str, creator: str
) -> None:
    ws, people, made = await _team(api)
    refused = await _revoke(client, ws, made[creator], people[actor].headers)
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == "role_too_high"
    assert actor in error["message"] and creator in error["message"]
    # The actor's own key (acting with the actor's role) is refused the same way.
    by_key = await _revoke(client, ws, made[creator], bearer(made[actor]["key"]))
    assert by_key.status_code == 403 and by_key.json()["error"]["code"] == "role_too_high"
    # And the key still works.
    still = await client.get(f"/api/v1/workspaces/{ws}", headers=bearer(made[creator]["key"]))
    assert still.status_code == 200


@pytest.mark.parametrize(
    ("actor", "creator"),
    [
        ("owner", "admin"),
        ("owner", "developer"),
        ("admin", "developer"),
        ("developer2", "developer"),
        ("admin", "admin"),
    ],
)
async def test_equal_or_higher_roles_revoke(
    client: httpx.AsyncClient, api: Api, actor: str, creator: str
) -> None:
    ws, people, made = await _team(api)
    revoked = await _revoke(client, ws, made[creator], people[actor].headers)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["data"]["revoked_at"]
    gone = await client.get(f"/api/v1/workspaces/{ws}", headers=bearer(made[creator]["key"]))
    assert gone.status_code == 401


async def test_a_key_whose_creator_left_may_be_revoked_by_any_key_manager(
    client: httpx.AsyncClient, api: Api
) -> None:
    ws, people, made = await _team(api)
    admin_id = people["admin"].user_id
    left = await client.delete(
        f"/api/v1/workspaces/{ws}/members/{admin_id}", headers=people["owner"].headers
    )
    assert left.status_code in (200, 204), left.text
    revoked = await _revoke(client, ws, made["admin"], people["developer"].headers)
    assert revoked.status_code == 200, revoked.text


async def test_listing_keys_never_shows_a_secret(client: httpx.AsyncClient, api: Api) -> None:
    ws, people, made = await _team(api)
    for person in people.values():
        listed = await client.get(f"/api/v1/workspaces/{ws}/api-keys", headers=person.headers)
        assert listed.status_code == 200
        for key in made.values():
            assert key["key"] not in listed.text
            one = await client.get(
                f"/api/v1/workspaces/{ws}/api-keys/{key['api_key']['id']}",
                headers=person.headers,
            )
            assert key["key"] not in one.text
