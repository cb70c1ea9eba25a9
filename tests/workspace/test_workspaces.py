from __future__ import annotations

import httpx

from tests.conftest import Api


async def test_create_list_get_update(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    created = await client.post(
        "/api/v1/workspaces", json={"name": "Café Olé"}, headers=owner.headers
    )
    assert created.status_code == 201
    data = created.json()["data"]
    assert data["slug"] == "cafe-ole"
    assert data["role"] == "owner"
    assert "workspace:delete" in data["permissions"]
    ws = data["id"]

    listed = (await client.get("/api/v1/workspaces", headers=owner.headers)).json()["data"]
    assert [item["id"] for item in listed] == [ws]

    renamed = await client.patch(
        f"/api/v1/workspaces/{ws}",
        json={"name": "Renamed", "slug": "renamed"},
        headers=owner.headers,
    )
    assert renamed.status_code == 200
    fetched = (await client.get(f"/api/v1/workspaces/{ws}", headers=owner.headers)).json()["data"]
    assert (fetched["name"], fetched["slug"]) == ("Renamed", "renamed")


async def test_slugs_stay_unique(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    first = await api.create_workspace(owner, "Acme")
    second = await api.create_workspace(owner, "Acme")
    slugs = {
        (await client.get(f"/api/v1/workspaces/{ws}", headers=owner.headers)).json()["data"]["slug"]
        for ws in (first, second)
    }
    assert len(slugs) == 2
    taken = await client.patch(
        f"/api/v1/workspaces/{second}", json={"slug": "acme"}, headers=owner.headers
    )
    assert taken.status_code == 409
    assert taken.json()["error"]["code"] == "slug_taken"


async def test_roles_below_admin_cannot_update(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    developer = await api.add_member(owner, ws, "developer")
    response = await client.patch(
        f"/api/v1/workspaces/{ws}", json={"name": "Hijacked"}, headers=developer.headers
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert response.json()["error"]["details"]["permission"] == "workspace:update"


async def test_only_owner_deletes_and_then_it_is_gone_for_all(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    admin = await api.add_member(owner, ws, "admin")
    refused = await client.delete(f"/api/v1/workspaces/{ws}", headers=admin.headers)
    assert refused.status_code == 403
    deleted = await client.delete(f"/api/v1/workspaces/{ws}", headers=owner.headers)
    assert deleted.status_code == 200
    for account in (owner, admin):
        assert (
            await client.get(f"/api/v1/workspaces/{ws}", headers=account.headers)
        ).status_code == 404
        assert (await client.get("/api/v1/workspaces", headers=account.headers)).json()[
            "data"
        ] == []


async def test_unauthenticated_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/workspaces")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
