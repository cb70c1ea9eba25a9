"""API keys: shown once, stored hashed, prefixed and checksummed, scoped to a subset of the
creator's permissions, expiring, IP-restricted, revocable, usable only in their workspace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select

from botplatform.api_key import keys
from botplatform.models import ApiKey
from botplatform.runtime import Runtime
from tests.conftest import Api, set_quota


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_key_is_shown_once_and_stored_as_a_hash(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    created = await api.create_key(owner, ws, ["members:read", "workspace:read"])
    key = created["key"]
    assert key.startswith("bp_live_")
    assert keys.parse_lookup(key) == created["api_key"]["prefix"][len("bp_live_") :]
    listed = await client.get(f"/api/v1/workspaces/{ws}/api-keys", headers=owner.headers)
    assert key not in listed.text
    async with runtime.db.unit_of_work(system=True) as db:
        row = (await db.execute(select(ApiKey))).scalar_one()
    assert row.key_hash == keys.hash_key(key) and key not in (row.key_hash, row.lookup)

    members = await client.get(f"/api/v1/workspaces/{ws}/members", headers=bearer(key))
    assert members.status_code == 200
    fetched = await client.get(
        f"/api/v1/workspaces/{ws}/api-keys/{created['api_key']['id']}", headers=owner.headers
    )
    assert fetched.json()["data"]["last_used_at"] is not None


async def test_checksum_rejects_typos_before_the_database(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    key = (await api.create_key(owner, ws, ["workspace:read"]))["key"]
    typo = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert keys.parse_lookup(typo) is None
    response = await client.get(f"/api/v1/workspaces/{ws}", headers=bearer(typo))
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


async def test_scopes_limit_what_a_key_does(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    key = (await api.create_key(owner, ws, ["members:read"]))["key"]
    assert (
        await client.get(f"/api/v1/workspaces/{ws}/members", headers=bearer(key))
    ).status_code == 200
    invite = await client.post(
        f"/api/v1/workspaces/{ws}/invitations",
        json={"email": "a@example.com", "role": "viewer"},
        headers=bearer(key),
    )
    assert invite.status_code == 403
    assert invite.json()["error"]["details"]["permission"] == "members:manage"


async def test_scopes_must_be_within_the_creators_permissions(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    developer = await api.add_member(owner, ws, "developer")
    response = await client.post(
        f"/api/v1/workspaces/{ws}/api-keys",
        json={"name": "too much", "scopes": ["members:manage", "channels:manage"]},
        headers=developer.headers,
    )
    assert response.status_code == 403
    assert response.json()["error"]["details"]["scopes"] == ["members:manage"]


async def test_a_key_follows_its_creator_down(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    admin = await api.add_member(owner, ws, "admin")
    key = (await api.create_key(admin, ws, ["members:manage", "members:read"]))["key"]
    await client.patch(
        f"/api/v1/workspaces/{ws}/members/{admin.user_id}",
        json={"role": "viewer"},
        headers=owner.headers,
    )
    demoted = await client.post(
        f"/api/v1/workspaces/{ws}/invitations",
        json={"email": "b@example.com", "role": "viewer"},
        headers=bearer(key),
    )
    assert demoted.status_code == 403
    await client.delete(f"/api/v1/workspaces/{ws}/members/{admin.user_id}", headers=owner.headers)
    gone = await client.get(f"/api/v1/workspaces/{ws}/members", headers=bearer(key))
    assert gone.json()["error"]["code"] == "api_key_inactive"


async def test_key_works_only_in_its_workspace_and_not_as_a_user(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    other = await api.create_workspace(owner, "Other")
    key = (await api.create_key(owner, ws, ["workspace:read"]))["key"]
    assert (await client.get(f"/api/v1/workspaces/{other}", headers=bearer(key))).status_code == 404
    for url in ("/api/v1/me", "/api/v1/workspaces"):
        response = await client.get(url, headers=bearer(key))
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "user_session_required"


async def test_revoked_and_expired_keys_stop_working(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    created = await api.create_key(owner, ws, ["workspace:read"])
    url = f"/api/v1/workspaces/{ws}"
    assert (await client.get(url, headers=bearer(created["key"]))).status_code == 200
    await client.delete(f"{url}/api-keys/{created['api_key']['id']}", headers=owner.headers)
    assert (await client.get(url, headers=bearer(created["key"]))).status_code == 401

    past = await client.post(
        f"{url}/api-keys",
        json={
            "name": "old",
            "scopes": ["workspace:read"],
            "expires_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        },
        headers=owner.headers,
    )
    assert past.status_code == 422
    soon = await api.create_key(
        owner,
        ws,
        ["workspace:read"],
        expires_at=(datetime.now(UTC) + timedelta(seconds=1)).isoformat(),
    )
    import asyncio

    await asyncio.sleep(1.2)
    assert (await client.get(url, headers=bearer(soon["key"]))).status_code == 401


async def test_ip_allow_list(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    url = f"/api/v1/workspaces/{ws}"
    # The test transport's client address is 127.0.0.1.
    inside = await api.create_key(owner, ws, ["workspace:read"], allowed_ips=["127.0.0.0/8"])
    outside = await api.create_key(owner, ws, ["workspace:read"], allowed_ips=["10.0.0.0/8"])
    assert (await client.get(url, headers=bearer(inside["key"]))).status_code == 200
    refused = await client.get(url, headers=bearer(outside["key"]))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "ip_not_allowed"
    bad = await client.post(
        f"{url}/api-keys",
        json={"name": "x", "scopes": ["workspace:read"], "allowed_ips": ["nope"]},
        headers=owner.headers,
    )
    assert bad.status_code == 422


async def test_keys_are_rate_limited_by_plan(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    key = (await api.create_key(owner, ws, ["workspace:read"]))["key"]
    await set_quota(runtime, "starter", api_requests_per_minute=3)
    statuses = [
        (await client.get(f"/api/v1/workspaces/{ws}", headers=bearer(key))).status_code
        for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    limited = await client.get(f"/api/v1/workspaces/{ws}", headers=bearer(key))
    assert limited.headers["Retry-After"] and limited.headers["RateLimit-Limit"] == "3"
