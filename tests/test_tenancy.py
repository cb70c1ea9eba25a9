"""Tenant isolation across every workspace-scoped route, and mass assignment."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
from fastapi import FastAPI

from botplatform.models import MessageTemplate
from botplatform.runtime import Runtime
from tests.ai.helpers import ai_objects
from tests.bot.flows import support_flow
from tests.bot.helpers import create_bot, publish
from tests.conftest import Account, Api, eventually

# A body each route accepts, so a 404 cannot be a validation artefact.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PATCH", "/api/v1/workspaces/{ws}"): {"name": "Renamed"},
    ("PATCH", "/api/v1/workspaces/{ws}/members/{user_id}"): {"role": "viewer"},
    ("POST", "/api/v1/workspaces/{ws}/invitations"): {"email": "x@example.com", "role": "viewer"},
    ("POST", "/api/v1/workspaces/{ws}/api-keys"): {"name": "k", "scopes": ["workspace:read"]},
    ("PATCH", "/api/v1/workspaces/{ws}/channels/{channel_id}"): {"name": "x"},
    ("PATCH", "/api/v1/workspaces/{ws}/conversations/{conversation_id}"): {"status": "pending"},
    ("POST", "/api/v1/workspaces/{ws}/conversations/{conversation_id}/messages"): {"text": "hi"},
    ("PATCH", "/api/v1/workspaces/{ws}/messages/{message_id}"): {"text": "edited"},
    ("POST", "/api/v1/workspaces/{ws}/messages"): {
        "channel_id": "{channel_id}",
        "to": "15550001234",
        "text": "x",
    },  # B's channel
    ("POST", "/api/v1/workspaces/{ws}/ai/intents"): {"name": "x", "examples": ["a"]},
    ("PATCH", "/api/v1/workspaces/{ws}/ai/intents/{intent_id}"): {"name": "y"},
    ("POST", "/api/v1/workspaces/{ws}/ai/knowledge"): {"question": "q", "answer": "a"},
    ("PATCH", "/api/v1/workspaces/{ws}/ai/knowledge/{entry_id}"): {"answer": "b"},
    ("POST", "/api/v1/workspaces/{ws}/ai/answer"): {"question": "q"},
    ("POST", "/api/v1/workspaces/{ws}/webhook-endpoints"): {
        "url": "https://hooks.example.com/a",
        "event_types": ["*"],
    },
    ("PATCH", "/api/v1/workspaces/{ws}/webhook-endpoints/{endpoint_id}"): {"enabled": False},
    ("POST", "/api/v1/workspaces/{ws}/automations"): {
        "name": "r",
        "event": "conversation.created",
        "actions": [{"type": "resolve"}],
    },
    ("PATCH", "/api/v1/workspaces/{ws}/automations/{rule_id}"): {"enabled": False},
    ("POST", "/api/v1/workspaces/{ws}/teams"): {"name": "t"},
    ("PATCH", "/api/v1/workspaces/{ws}/teams/{team_id}"): {"name": "u"},
    ("PUT", "/api/v1/workspaces/{ws}/business-hours"): {"timezone": "UTC"},
    ("POST", "/api/v1/workspaces/{ws}/bots"): {"name": "x"},
    ("PATCH", "/api/v1/workspaces/{ws}/bots/{bot_id}"): {"name": "x"},
    ("POST", "/api/v1/workspaces/{ws}/bots/{bot_id}/versions"): {},
    ("POST", "/api/v1/workspaces/{ws}/bots/{bot_id}/simulate"): {"messages": [{"text": "hi"}]},
    ("POST", "/api/v1/workspaces/{ws}/segments"): {"name": "s", "definition": {}},
    ("PATCH", "/api/v1/workspaces/{ws}/segments/{segment_id}"): {"name": "t"},
    ("POST", "/api/v1/workspaces/{ws}/segments/preview-count"): {"conditions": []},
    ("POST", "/api/v1/workspaces/{ws}/contacts/{contact_id}/merge"): {
        "contact_id": "{contact_id}"
    },  # B's contact
    ("PUT", "/api/v1/workspaces/{ws}/members/{user_id}/channels"): {
        "channel_ids": ["{channel_id}"]
    },  # B's member and B's channel
    ("POST", "/api/v1/workspaces/{ws}/broadcasts"): {
        "name": "b",
        "channel_id": "{channel_id}",
        "message": {"type": "text", "text": "x"},
        "audience": {"phones": ["+15550001234"]},
    },  # B's channel
    ("POST", "/api/v1/workspaces/{ws}/broadcasts/{broadcast_id}/test-send"): {"to": "+15550001234"},
    ("POST", "/api/v1/workspaces/{ws}/templates"): {
        "channel_id": "{channel_id}",
        "name": "x",
        "language": "en_US",
        "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Hello"}],
    },  # B's channel
    ("POST", "/api/v1/workspaces/{ws}/templates/{template_id}/preview"): {},
}


def workspace_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) under a workspace, read from the OpenAPI document: a new route
    is walked by this test the day it is added."""
    return sorted(
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if "{ws}" in path
        for method in operations
    )


async def _two_tenants(api: Api) -> tuple[Account, str, dict[str, str], Account, str]:
    """Owner A of workspace A; workspace B with a member and an invitation, and the ids a
    route of B could be asked about."""
    owner_a = await api.register()
    ws_a = await api.create_workspace(owner_a, "Tenant A")
    owner_b = await api.register()
    ws_b = await api.create_workspace(owner_b, "Tenant B")
    member_b = await api.add_member(owner_b, ws_b, "agent")
    invitation_b = await api.invite(owner_b, ws_b, "someone@example.com", "viewer")
    key_b = await api.create_key(owner_b, ws_b, ["workspace:read"])
    endpoint_b = await api.http.post(
        f"/api/v1/workspaces/{ws_b}/webhook-endpoints",
        json={"url": "https://hooks.example.com/b", "event_types": ["message.received"]},
        headers=owner_b.headers,
    )
    endpoint_id = endpoint_b.json()["data"]["endpoint"]["id"]
    channel_b = await api.create_channel(owner_b, ws_b)
    await api.inbound_text(channel_b["id"], "15550009999", "hello", name="Bea")
    conversation_b = await api.conversation_of(owner_b, ws_b, "Bea")

    async def delivery_of_b() -> str | None:
        log = await api.http.get(
            f"/api/v1/workspaces/{ws_b}/webhook-endpoints/{endpoint_id}/deliveries",
            headers=owner_b.headers,
        )
        items = log.json()["data"]["items"]
        return str(items[0]["id"]) if items else None

    delivery_id = await eventually(delivery_of_b)
    rule_b = await api.http.post(
        f"/api/v1/workspaces/{ws_b}/automations",
        json={"name": "B", "event": "conversation.created", "actions": [{"type": "resolve"}]},
        headers=owner_b.headers,
    )
    team_b = await api.http.post(
        f"/api/v1/workspaces/{ws_b}/teams", json={"name": "B"}, headers=owner_b.headers
    )
    segment_b = await api.http.post(
        f"/api/v1/workspaces/{ws_b}/segments",
        json={"name": "B", "definition": {"conditions": []}},
        headers=owner_b.headers,
    )
    bot_b = await create_bot(api, owner_b, ws_b, support_flow())
    version_b = await publish(api, owner_b, ws_b, bot_b["id"])
    messages_b = await api.http.get(
        f"/api/v1/workspaces/{ws_b}/conversations/{conversation_b['id']}/messages",
        headers=owner_b.headers,
    )
    broadcast_b = await api.http.post(
        f"/api/v1/workspaces/{ws_b}/broadcasts",
        json={
            "name": "B",
            "channel_id": channel_b["id"],
            "message": {"type": "text", "text": "x"},
            "audience": {"phones": ["+15550001234"]},
        },
        headers=owner_b.headers,
    )
    ids_of_b = {
        "broadcast_id": broadcast_b.json()["data"]["id"],
        "channel_id": channel_b["id"],
        "conversation_id": conversation_b["id"],
        "message_id": messages_b.json()["data"]["items"][0]["id"],
        "contact_id": conversation_b["contact_id"],
        "user_id": str(member_b.user_id),
        "invitation_id": invitation_b["invitation"]["id"],
        "key_id": key_b["api_key"]["id"],
        "endpoint_id": endpoint_id,
        "delivery_id": delivery_id,
        "rule_id": rule_b.json()["data"]["id"],
        "team_id": team_b.json()["data"]["id"],
        "segment_id": segment_b.json()["data"]["id"],
        "bot_id": bot_b["id"],
        "version_id": version_b["id"],
    }
    ids_of_b.update(await ai_objects(api, owner_b, ws_b))
    return owner_a, ws_a, ids_of_b, owner_b, ws_b


async def _snapshot(client: httpx.AsyncClient, owner: Account, ws: str) -> list[Any]:
    paths = ["", "/members", "/invitations", "/channels", "/conversations", "/contacts"]
    paths += ["/automations", "/teams", "/business-hours", "/branding", "/retention"]
    paths += ["/broadcasts"]
    paths += ["/segments"]
    return [
        (await client.get(f"/api/v1/workspaces/{ws}{p}", headers=owner.headers)).json()["data"]
        for p in paths
    ]


async def _template_of(runtime: Runtime, ws: str, channel_id: str) -> str:
    """A message template of B (stored as a sync would: B's channel has no sandbox account)."""
    async with runtime.db.unit_of_work(system=True) as db:
        row = MessageTemplate(
            workspace_id=uuid.UUID(ws),
            channel_id=uuid.UUID(channel_id),
            name="b_only",
            language="en_US",
            category="UTILITY",
            status="APPROVED",
            parameter_format="POSITIONAL",
            components=[{"type": "BODY", "text": "Hello"}],
        )
        db.add(row)
        await db.flush()
        return str(row.id)


async def test_every_workspace_route_answers_404_across_tenants(
    app: FastAPI, client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner_a, ws_a, ids_of_b, owner_b, ws_b = await _two_tenants(api)
    ids_of_b["template_id"] = await _template_of(runtime, ws_b, ids_of_b["channel_id"])
    before = await _snapshot(client, owner_b, ws_b)
    routes = workspace_routes(app)
    assert len(routes) >= 10
    checked = []
    for method, path in routes:
        params = set(re.findall(r"{(\w+)}", path)) - {"ws"}
        assert params <= set(ids_of_b), f"no cross-tenant id for {params} in {path}"
        body = BODIES.get((method, path))
        if body and body.get("channel_id") == "{channel_id}":
            body = {**body, "channel_id": ids_of_b["channel_id"]}
        if body and body.get("contact_id") == "{contact_id}":
            body = {**body, "contact_id": ids_of_b["contact_id"]}
        if body and body.get("channel_ids") == ["{channel_id}"]:
            body = {**body, "channel_ids": [ids_of_b["channel_id"]]}
        # B's workspace itself, and B's objects under A's workspace: both must be invisible.
        for ws in (ws_b, ws_a) if params else (ws_b,):
            url = path.replace("{ws}", ws)
            for name in params:
                url = url.replace("{" + name + "}", ids_of_b[name])
            if path.endswith("/media"):  # a file upload, not JSON
                png = bytes.fromhex("89504e470d0a1a0a") + bytes(64)
                response = await client.request(
                    method,
                    url,
                    files={"file": ("a.png", png, "image/png")},
                    headers=owner_a.headers,
                )
            elif path.endswith("/contacts/import"):  # a CSV upload
                csv = b"phone,name\n+15550001111,Eve\n"
                response = await client.request(
                    method, url, files={"file": ("c.csv", csv, "text/csv")}, headers=owner_a.headers
                )
            else:
                response = await client.request(method, url, json=body, headers=owner_a.headers)
            assert response.status_code == 404, (method, url, response.text)
            assert response.json()["success"] is False
            checked.append((method, url))
    assert len(checked) > len(routes)
    assert await _snapshot(client, owner_b, ws_b) == before


async def test_non_member_cannot_tell_a_workspace_exists(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    stranger = await api.register()
    exists = await client.get(f"/api/v1/workspaces/{ws}", headers=stranger.headers)
    missing = await client.get(
        "/api/v1/workspaces/00000000-0000-4000-8000-000000000000", headers=stranger.headers
    )
    assert exists.status_code == missing.status_code == 404
    assert exists.json()["error"] == missing.json()["error"]


async def test_register_refuses_superadmin_and_role_fields(
    client: httpx.AsyncClient, api: Api
) -> None:
    for extra in ({"is_superadmin": True}, {"role": "owner"}, {"workspace_id": "x"}):
        response = await client.post(
            "/api/v1/auth/register",
            json={"email": "sneaky@example.com", "password": "violet-harbour-lantern-42", **extra},
        )
        assert response.status_code == 422, extra
        assert response.json()["error"]["code"] == "validation_error"
    account = await api.register("sneaky@example.com")
    me = (await client.get("/api/v1/me", headers=account.headers)).json()["data"]
    assert me["user"]["is_superadmin"] is False


async def test_workspace_body_cannot_set_id_plan_or_owner(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner, "Original")
    other = await api.register()
    other_ws = await api.create_workspace(other, "Other")
    attempts = [
        ("POST", "/api/v1/workspaces", {"name": "X", "plan": "enterprise"}),
        ("POST", "/api/v1/workspaces", {"name": "X", "id": other_ws}),
        ("PATCH", f"/api/v1/workspaces/{ws}", {"name": "Y", "plan": "enterprise"}),
        ("PATCH", f"/api/v1/workspaces/{ws}", {"name": "Y", "workspace_id": other_ws}),
        ("PATCH", f"/api/v1/workspaces/{ws}", {"role": "owner"}),
    ]
    for method, url, body in attempts:
        response = await client.request(method, url, json=body, headers=owner.headers)
        assert response.status_code == 422, (method, body)
    workspace = (await client.get(f"/api/v1/workspaces/{ws}", headers=owner.headers)).json()
    assert workspace["data"]["name"] == "Original"
    assert workspace["data"]["plan"] == "starter"
    listed = (await client.get("/api/v1/workspaces", headers=owner.headers)).json()["data"]
    assert [item["id"] for item in listed] == [ws]


async def test_member_and_invitation_bodies_cannot_move_tenants(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    other_ws = await api.create_workspace(await api.register(), "Other")
    agent = await api.add_member(owner, ws, "agent")
    patch = await client.patch(
        f"/api/v1/workspaces/{ws}/members/{agent.user_id}",
        json={"role": "viewer", "workspace_id": other_ws},
        headers=owner.headers,
    )
    assert patch.status_code == 422
    invite = await client.post(
        f"/api/v1/workspaces/{ws}/invitations",
        json={"email": "new@example.com", "role": "viewer", "workspace_id": other_ws},
        headers=owner.headers,
    )
    assert invite.status_code == 422
    member = await client.get(
        f"/api/v1/workspaces/{ws}/members/{agent.user_id}", headers=owner.headers
    )
    assert member.json()["data"]["role"] == "agent"
    accept = await client.post(
        "/api/v1/invitations/accept",
        json={"token": "x" * 20, "role": "owner"},
        headers=agent.headers,
    )
    assert accept.status_code == 422
