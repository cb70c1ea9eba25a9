from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import update

from botplatform.kit.clock import utcnow
from botplatform.models import Invitation
from botplatform.runtime import Runtime
from tests.conftest import Api


def _token(link: str) -> str:
    return link.split("token=", 1)[1]


async def test_invitation_link_joins_once(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner, "Team")
    invitee = await api.register("invitee@example.com")
    created = await api.invite(owner, ws, "Invitee@Example.com", "manager")
    assert created["invitation"]["status"] == "pending"
    assert created["link"].startswith("http://localhost:3000/app/invitations/accept?token=")
    token = _token(created["link"])

    accepted = await client.post(
        "/api/v1/invitations/accept", json={"token": token}, headers=invitee.headers
    )
    assert accepted.status_code == 200
    assert accepted.json()["data"] == {
        "workspace_id": ws,
        "workspace_name": "Team",
        "role": "manager",
    }
    again = await client.post(
        "/api/v1/invitations/accept", json={"token": token}, headers=invitee.headers
    )
    assert again.status_code == 410
    assert again.json()["error"]["code"] == "invitation_accepted"
    listed = await client.get(
        f"/api/v1/workspaces/{ws}/invitations?status=accepted", headers=owner.headers
    )
    assert [item["email"] for item in listed.json()["data"]["items"]] == ["invitee@example.com"]


async def test_only_the_invited_email_may_accept(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    created = await api.invite(owner, ws, "right@example.com", "agent")
    intruder = await api.register("wrong@example.com")
    response = await client.post(
        "/api/v1/invitations/accept",
        json={"token": _token(created["link"])},
        headers=intruder.headers,
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "invitation_email_mismatch"
    assert (
        await client.get(f"/api/v1/workspaces/{ws}", headers=intruder.headers)
    ).status_code == 404


async def test_revoked_and_replaced_links_stop_working(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    invitee = await api.register("again@example.com")
    first = await api.invite(owner, ws, invitee.email, "agent")
    second = await api.invite(owner, ws, invitee.email, "viewer")  # replaces the first
    old = await client.post(
        "/api/v1/invitations/accept", json={"token": _token(first["link"])}, headers=invitee.headers
    )
    assert old.json()["error"]["code"] == "invitation_revoked"
    revoke = await client.delete(
        f"/api/v1/workspaces/{ws}/invitations/{second['invitation']['id']}", headers=owner.headers
    )
    assert revoke.json()["data"]["status"] == "revoked"
    new = await client.post(
        "/api/v1/invitations/accept",
        json={"token": _token(second["link"])},
        headers=invitee.headers,
    )
    assert new.status_code == 410
    assert new.json()["error"]["code"] == "invitation_revoked"


async def test_expired_and_forged_links(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    invitee = await api.register("late@example.com")
    created = await api.invite(owner, ws, invitee.email, "agent")
    token = _token(created["link"])
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    bad = await client.post(
        "/api/v1/invitations/accept", json={"token": forged}, headers=invitee.headers
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invitation_invalid"

    async with runtime.db.unit_of_work(system=True) as db:  # past row-level security
        await db.execute(update(Invitation).values(expires_at=utcnow() - timedelta(seconds=1)))
    late = await client.post(
        "/api/v1/invitations/accept", json={"token": token}, headers=invitee.headers
    )
    assert late.status_code == 410
    assert late.json()["error"]["code"] == "invitation_expired"


async def test_inviter_cannot_grant_above_own_role(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    admin = await api.add_member(owner, ws, "admin")
    response = await client.post(
        f"/api/v1/workspaces/{ws}/invitations",
        json={"email": "boss@example.com", "role": "owner"},
        headers=admin.headers,
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "role_too_high"


async def test_members_cannot_be_invited_twice(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    response = await client.post(
        f"/api/v1/workspaces/{ws}/invitations",
        json={"email": owner.email, "role": "viewer"},
        headers=owner.headers,
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "already_member"


async def test_inviting_needs_members_manage(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    developer = await api.add_member(owner, ws, "developer")
    response = await client.post(
        f"/api/v1/workspaces/{ws}/invitations",
        json={"email": "x@example.com", "role": "viewer"},
        headers=developer.headers,
    )
    assert response.status_code == 403
