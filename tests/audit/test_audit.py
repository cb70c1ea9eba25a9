"""The audit log: one entry per state-changing route (walked from the OpenAPI document),
secrets redacted, hash-chained and verified, queryable by `audit:read`, and in audit.log."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import delete, func, select, update
from typer.testing import CliRunner

from botplatform.cli import app as cli
from botplatform.config import Settings
from botplatform.models import AuditLog, Contact, Message
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from botplatform.sandbox.telegram import FakeBotApi
from tests.ai.helpers import ai_objects
from tests.auth.test_two_factor import codes, enable_2fa, login
from tests.branding.test_branding import png
from tests.conftest import (
    STRONG_PASSWORD,
    TELEGRAM_TOKEN,
    Api,
    SmtpSink,
    eventually,
    make_superadmin,
)
from tests.template.test_templates_api import TEMPLATE

Call = Callable[[], Awaitable[httpx.Response]]

#: The business account of the sandbox's default number (`FakeGraph`).
SANDBOX_WABA = "102290129340398"


async def _entries(runtime: Runtime) -> list[AuditLog]:
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        return list((await db.execute(select(AuditLog).order_by(AuditLog.seq))).scalars())


# A broadcast scheduled for later: started (or paused) without a message leaving.
LATER = {"scheduled_at": "2099-01-01T09:00:00Z"}


class Scenarios:
    """For each state-changing route: set the stage, then return the one call to audit."""

    def __init__(
        self, client: httpx.AsyncClient, api: Api, smtp: SmtpSink, runtime: Runtime
    ) -> None:
        self.client, self.api, self.smtp, self.runtime = client, api, smtp, runtime

    async def _owner_ws(self) -> tuple[Any, str]:
        owner = await self.api.register()
        return owner, await self.api.create_workspace(owner)

    async def register(self) -> Call:
        return lambda: self.client.post(
            "/api/v1/auth/register", json={"email": "new@example.com", "password": STRONG_PASSWORD}
        )

    async def login(self) -> Call:
        account = await self.api.register()
        return lambda: self.client.post(
            "/api/v1/auth/login", json={"email": account.email, "password": STRONG_PASSWORD}
        )

    async def verify(self) -> Call:
        account = await self.api.register()
        secret, _ = await enable_2fa(self.client, account)
        challenge = (await login(self.client, account.email))["challenge_token"]
        return lambda: self.client.post(
            "/api/v1/auth/2fa/verify", json={"challenge_token": challenge, "code": codes(secret)[2]}
        )

    async def logout(self) -> Call:
        account = await self.api.register()
        return lambda: self.client.post("/api/v1/auth/logout", headers=account.headers)

    async def logout_all(self) -> Call:
        account = await self.api.register()
        return lambda: self.client.post("/api/v1/auth/logout-all", headers=account.headers)

    async def setup_2fa(self) -> Call:
        account = await self.api.register()
        return lambda: self.client.post("/api/v1/auth/2fa/setup", headers=account.headers)

    async def enable_2fa(self) -> Call:
        account = await self.api.register()
        setup = await self.client.post("/api/v1/auth/2fa/setup", headers=account.headers)
        secret = setup.json()["data"]["secret"]
        return lambda: self.client.post(
            "/api/v1/auth/2fa/enable", json={"code": codes(secret)[1]}, headers=account.headers
        )

    async def disable_2fa(self) -> Call:
        account = await self.api.register()
        secret, _ = await enable_2fa(self.client, account)
        return lambda: self.client.post(
            "/api/v1/auth/2fa/disable",
            json={"password": STRONG_PASSWORD, "code": codes(secret)[2]},
            headers=account.headers,
        )

    async def forgot(self) -> Call:
        account = await self.api.register()
        return lambda: self.client.post(
            "/api/v1/auth/password/forgot", json={"email": account.email}
        )

    async def reset(self) -> Call:
        account = await self.api.register()
        await self.client.post("/api/v1/auth/password/forgot", json={"email": account.email})
        (mail,) = await eventually(lambda: self.smtp.to(account.email))
        token = mail.get_body(("plain",)).get_content().split("token=", 1)[1].split()[0]
        return lambda: self.client.post(
            "/api/v1/auth/password/reset",
            json={"token": token, "password": "amber-orchard-compass-77"},
        )

    async def create_workspace(self) -> Call:
        account = await self.api.register()
        return lambda: self.client.post(
            "/api/v1/workspaces", json={"name": "W"}, headers=account.headers
        )

    async def update_workspace(self) -> Call:
        owner, ws = await self._owner_ws()
        return lambda: self.client.patch(
            f"/api/v1/workspaces/{ws}", json={"name": "Z"}, headers=owner.headers
        )

    async def delete_workspace(self) -> Call:
        owner, ws = await self._owner_ws()
        return lambda: self.client.delete(f"/api/v1/workspaces/{ws}", headers=owner.headers)

    async def update_member(self) -> Call:
        owner, ws = await self._owner_ws()
        agent = await self.api.add_member(owner, ws, "agent")
        return lambda: self.client.patch(
            f"/api/v1/workspaces/{ws}/members/{agent.user_id}",
            json={"role": "viewer"},
            headers=owner.headers,
        )

    async def remove_member(self) -> Call:
        owner, ws = await self._owner_ws()
        agent = await self.api.add_member(owner, ws, "agent")
        return lambda: self.client.delete(
            f"/api/v1/workspaces/{ws}/members/{agent.user_id}", headers=owner.headers
        )

    async def assign_channels(self) -> Call:
        owner, ws = await self._owner_ws()
        agent = await self.api.add_member(owner, ws, "agent")
        channel = await self.api.create_channel(owner, ws)
        return lambda: self.client.put(
            f"/api/v1/workspaces/{ws}/members/{agent.user_id}/channels",
            json={"channel_ids": [channel["id"]]},
            headers=owner.headers,
        )

    async def leave(self) -> Call:
        owner, ws = await self._owner_ws()
        agent = await self.api.add_member(owner, ws, "agent")
        return lambda: self.client.post(f"/api/v1/workspaces/{ws}/leave", headers=agent.headers)

    async def invite(self) -> Call:
        owner, ws = await self._owner_ws()
        return lambda: self.client.post(
            f"/api/v1/workspaces/{ws}/invitations",
            json={"email": "i@example.com", "role": "agent"},
            headers=owner.headers,
        )

    async def revoke_invitation(self) -> Call:
        owner, ws = await self._owner_ws()
        invitation = (await self.api.invite(owner, ws, "r@example.com", "agent"))["invitation"]
        return lambda: self.client.delete(
            f"/api/v1/workspaces/{ws}/invitations/{invitation['id']}", headers=owner.headers
        )

    async def accept(self) -> Call:
        owner, ws = await self._owner_ws()
        guest = await self.api.register()
        link = (await self.api.invite(owner, ws, guest.email, "agent"))["link"]
        token = link.split("token=", 1)[1]
        return lambda: self.client.post(
            "/api/v1/invitations/accept", json={"token": token}, headers=guest.headers
        )

    async def create_key(self) -> Call:
        owner, ws = await self._owner_ws()
        return lambda: self.client.post(
            f"/api/v1/workspaces/{ws}/api-keys",
            json={"name": "k", "scopes": ["workspace:read"]},
            headers=owner.headers,
        )

    async def _conversation(self) -> tuple[Any, str, dict[str, Any], dict[str, Any]]:
        owner, ws = await self._owner_ws()
        channel = await self.api.create_channel(owner, ws)
        await self.api.inbound_text(channel["id"], "15550007777", "hi", name="Cleo")
        return owner, ws, channel, await self.api.conversation_of(owner, ws, "Cleo")

    async def create_channel(self) -> Call:
        owner, ws = await self._owner_ws()
        return lambda: self.client.post(
            f"/api/v1/workspaces/{ws}/channels",
            json={"name": "C", "phone_number_id": "123456", "business_account_id": "654321"},
            headers=owner.headers,
        )

    async def create_sandbox_channel(self) -> Call:
        owner, ws = await self._owner_ws()
        return lambda: self.client.post(
            f"/api/v1/workspaces/{ws}/channels/sandbox", json={"name": "S"}, headers=owner.headers
        )

    async def reconnect_sandbox_channel(self) -> Call:
        owner, ws = await self._owner_ws()
        created = await self.client.post(
            f"/api/v1/workspaces/{ws}/channels/sandbox", json={"name": "S"}, headers=owner.headers
        )
        channel = created.json()["data"]
        return lambda: self.client.post(
            f"/api/v1/workspaces/{ws}/channels/{channel['id']}/sandbox", headers=owner.headers
        )

    async def update_channel(self) -> Call:
        owner, ws = await self._owner_ws()
        channel = await self.api.create_channel(owner, ws)
        return lambda: self.client.patch(
            f"/api/v1/workspaces/{ws}/channels/{channel['id']}",
            json={"name": "D"},
            headers=owner.headers,
        )

    async def delete_channel(self) -> Call:
        owner, ws = await self._owner_ws()
        channel = await self.api.create_channel(owner, ws)
        return lambda: self.client.delete(
            f"/api/v1/workspaces/{ws}/channels/{channel['id']}", headers=owner.headers
        )

    async def update_conversation(self) -> Call:
        owner, ws, _, conversation = await self._conversation()
        return lambda: self.client.patch(
            f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}",
            json={"status": "resolved"},
            headers=owner.headers,
        )

    async def reply(self) -> Call:
        owner, ws, _, conversation = await self._conversation()
        return lambda: self.client.post(
            f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages",
            json={"text": "Hello!"},
            headers=owner.headers,
        )

    async def send(self) -> Call:
        owner, ws, channel, _ = await self._conversation()
        return lambda: self.client.post(
            f"/api/v1/workspaces/{ws}/messages",
            json={"channel_id": channel["id"], "to": "+15550007777", "text": "Hi"},
            headers=owner.headers,
        )

    async def resend(self) -> Call:
        owner, ws, _, conversation = await self._conversation()
        reply = await self.client.post(
            f"/api/v1/workspaces/{ws}/conversations/{conversation['id']}/messages",
            json={"text": "Lost?"},
            headers=owner.headers,
        )
        message_id = uuid.UUID(reply.json()["data"]["id"])

        async def sent() -> bool:  # the send job is done with it (no status webhooks here)
            async with self.runtime.db.unit_of_work(write=False, system=True) as db:
                return (await db.get(Message, message_id, populate_existing=True)).status == "sent"

        await eventually(sent)
        async with self.runtime.db.unit_of_work(system=True) as db:
            await db.execute(
                update(Message)
                .where(Message.id == message_id)
                .values(status="failed", error_code="delivery_unknown")
            )
        return lambda: self.client.post(
            f"/api/v1/workspaces/{ws}/messages/{message_id}/resend", headers=owner.headers
        )

    async def edit_sent(self) -> Call:
        """A text sent to a Telegram user (a channel that can edit), then edited."""
        owner, ws = await self._owner_ws()
        created = await self.client.post(
            f"/api/v1/workspaces/{ws}/channels",
            json={"provider": "telegram", "bot_token": TELEGRAM_TOKEN},
            headers=owner.headers,
        )
        sent = await self.client.post(
            f"/api/v1/workspaces/{ws}/messages",
            json={"channel_id": created.json()["data"]["id"], "to": "100000001", "text": "Hi"},
            headers=owner.headers,
        )
        message_id = uuid.UUID(sent.json()["data"]["id"])

        async def delivered() -> bool:
            async with self.runtime.db.unit_of_work(write=False, system=True) as db:
                return (await db.get(Message, message_id, populate_existing=True)).status == "sent"

        await eventually(delivered)
        return lambda: self.client.patch(
            f"/api/v1/workspaces/{ws}/messages/{message_id}",
            json={"text": "Hi again"},
            headers=owner.headers,
        )

    async def upload(self) -> Call:
        owner, ws = await self._owner_ws()
        channel = await self.api.create_channel(owner, ws)
        png = bytes.fromhex("89504e470d0a1a0a") + bytes(64)
        return lambda: self.client.post(
            f"/api/v1/workspaces/{ws}/channels/{channel['id']}/media",
            files={"file": ("a.png", png, "image/png")},
            headers=owner.headers,
        )

    async def update_plan(self) -> Call:
        admin = await self.api.register()
        await make_superadmin(self.runtime, admin)
        return lambda: self.client.patch(
            "/api/v1/admin/plans/pro", json={"bots": 30}, headers=admin.headers
        )

    async def change_workspace_plan(self) -> Call:
        admin = await self.api.register()
        await make_superadmin(self.runtime, admin)
        _, ws = await self._owner_ws()
        return lambda: self.client.put(
            f"/api/v1/admin/workspaces/{ws}/plan", json={"plan": "pro"}, headers=admin.headers
        )

    async def erase_contact(self) -> Call:
        owner, ws, _, conversation = await self._conversation()
        return lambda: self.client.delete(
            f"/api/v1/workspaces/{ws}/contacts/{conversation['contact_id']}",
            headers=owner.headers,
        )

    async def _rule(self) -> tuple[Any, str, dict[str, Any]]:
        owner, ws = await self._owner_ws()
        response = await self.client.post(
            f"/api/v1/workspaces/{ws}/automations",
            json={"name": "R", "event": "conversation.created", "actions": [{"type": "resolve"}]},
            headers=owner.headers,
        )
        return owner, ws, response.json()["data"]

    async def create_automation(self) -> Call:
        owner, ws = await self._owner_ws()
        return lambda: self.client.post(
            f"/api/v1/workspaces/{ws}/automations",
            json={"name": "R", "event": "conversation.created", "actions": [{"type": "resolve"}]},
            headers=owner.headers,
        )

    async def update_automation(self) -> Call:
        owner, ws, rule = await self._rule()
        return lambda: self.client.patch(
            f"/api/v1/workspaces/{ws}/automations/{rule['id']}",
            json={"enabled": False},
            headers=owner.headers,
        )

    async def delete_automation(self) -> Call:
        owner, ws, rule = await self._rule()
        return lambda: self.client.delete(
            f"/api/v1/workspaces/{ws}/automations/{rule['id']}", headers=owner.headers
        )

    async def _team(self) -> tuple[Any, str, dict[str, Any]]:
        owner, ws = await self._owner_ws()
        response = await self.client.post(
            f"/api/v1/workspaces/{ws}/teams", json={"name": "T"}, headers=owner.headers
        )
        return owner, ws, response.json()["data"]

    async def create_team(self) -> Call:
        owner, ws = await self._owner_ws()
        return lambda: self.client.post(
            f"/api/v1/workspaces/{ws}/teams",
            json={"name": "T", "member_ids": [str(owner.user_id)]},
            headers=owner.headers,
        )

    async def update_team(self) -> Call:
        owner, ws, team = await self._team()
        return lambda: self.client.patch(
            f"/api/v1/workspaces/{ws}/teams/{team['id']}",
            json={"name": "U"},
            headers=owner.headers,
        )

    async def delete_team(self) -> Call:
        owner, ws, team = await self._team()
        return lambda: self.client.delete(
            f"/api/v1/workspaces/{ws}/teams/{team['id']}", headers=owner.headers
        )

    async def _segment(self) -> tuple[Any, str, dict[str, Any]]:
        owner, ws = await self._owner_ws()
        response = await self.client.post(
            f"/api/v1/workspaces/{ws}/segments",
            json={"name": "S", "definition": {}},
            headers=owner.headers,
        )
        return owner, ws, response.json()["data"]

    async def create_segment(self) -> Call:
        owner, ws = await self._owner_ws()
        return lambda: self.client.post(
            f"/api/v1/workspaces/{ws}/segments",
            json={"name": "S", "definition": {"conditions": []}},
            headers=owner.headers,
        )

    async def update_segment(self) -> Call:
        owner, ws, segment = await self._segment()
        return lambda: self.client.patch(
            f"/api/v1/workspaces/{ws}/segments/{segment['id']}",
            json={"name": "T"},
            headers=owner.headers,
        )

    async def delete_segment(self) -> Call:
        owner, ws, segment = await self._segment()
        return lambda: self.client.delete(
            f"/api/v1/workspaces/{ws}/segments/{segment['id']}", headers=owner.headers
        )

    async def merge_contacts(self) -> Call:
        owner, ws, _, conversation = await self._conversation()
        other = uuid.uuid4()  # the same person, known without a channel identity yet
        async with self.runtime.db.unit_of_work(system=True) as db:
            db.add(Contact(id=other, workspace_id=uuid.UUID(ws), name="Cleo (web)"))
        return lambda: self.client.post(
            f"/api/v1/workspaces/{ws}/contacts/{conversation['contact_id']}/merge",
            json={"contact_id": str(other)},
            headers=owner.headers,
        )

    async def _broadcast(self, *steps: tuple[str, Any]) -> tuple[Any, str, dict[str, Any]]:
        """A draft to one number (a template: no window needed), taken through `steps`
        (action, body) first."""
        owner, ws = await self._owner_ws()
        channel = await self.api.create_channel(owner, ws)
        template = {"name": "hello_world", "language": "en_US", "components": []}
        created = await self.client.post(
            f"/api/v1/workspaces/{ws}/broadcasts",
            json={
                "name": "B",
                "channel_id": channel["id"],
                "message": {"type": "template", "template": template},
                "audience": {"type": "list", "phones": ["+15550001234"]},
            },
            headers=owner.headers,
        )
        assert created.status_code == 201, created.text
        broadcast = created.json()["data"]
        for action, body in steps:
            response = await self.client.post(
                f"/api/v1/workspaces/{ws}/broadcasts/{broadcast['id']}/{action}",
                json=body,
                headers=owner.headers,
            )
            assert response.status_code == 200, response.text
        return owner, ws, broadcast

    async def _broadcast_call(self, action: str, body: Any, *steps: tuple[str, Any]) -> Call:
        owner, ws, broadcast = await self._broadcast(*steps)
        url = f"/api/v1/workspaces/{ws}/broadcasts/{broadcast['id']}/{action}"
        return lambda: self.client.post(url, json=body, headers=owner.headers)

    async def create_broadcast(self) -> Call:
        owner, ws = await self._owner_ws()
        channel = await self.api.create_channel(owner, ws)
        body = {
            "name": "B",
            "channel_id": channel["id"],
            "message": {"type": "text", "text": "hi"},
            "audience": {"type": "list", "phones": ["+15550001234"]},
        }
        return lambda: self.client.post(
            f"/api/v1/workspaces/{ws}/broadcasts", json=body, headers=owner.headers
        )

    async def start_broadcast(self) -> Call:
        return await self._broadcast_call("start", LATER)

    async def pause_broadcast(self) -> Call:
        return await self._broadcast_call("pause", None, ("start", LATER))

    async def resume_broadcast(self) -> Call:
        return await self._broadcast_call("resume", None, ("start", LATER), ("pause", None))

    async def cancel_broadcast(self) -> Call:
        return await self._broadcast_call("cancel", None)

    async def test_send_broadcast(self) -> Call:
        return await self._broadcast_call("test-send", {"to": "+15550001234"})

    async def import_contacts(self) -> Call:
        owner, ws = await self._owner_ws()
        return lambda: self.client.post(
            f"/api/v1/workspaces/{ws}/contacts/import",
            files={"file": ("c.csv", b"phone,name\n+15550001111,Eve\n", "text/csv")},
            headers=owner.headers,
        )

    async def business_hours(self) -> Call:
        owner, ws = await self._owner_ws()
        return lambda: self.client.put(
            f"/api/v1/workspaces/{ws}/business-hours",
            json={
                "timezone": "Europe/Paris",
                "days": {"mon": [{"start": "09:00", "end": "17:00"}]},
            },
            headers=owner.headers,
        )

    async def branding(self) -> Call:
        owner, ws = await self._owner_ws()
        return lambda: self.client.put(
            f"/api/v1/workspaces/{ws}/branding",
            json={"name": "Acme Help", "primary_color": "#0b7a5a"},
            headers=owner.headers,
        )

    async def upload_logo(self) -> Call:
        owner, ws = await self._owner_ws()
        return await self.upload_logo_for(owner, ws)

    async def delete_logo(self) -> Call:
        owner, ws = await self._owner_ws()
        await (await self.upload_logo_for(owner, ws))()
        return lambda: self.client.delete(
            f"/api/v1/workspaces/{ws}/branding/logo", headers=owner.headers
        )

    async def upload_logo_for(self, owner: Any, ws: str) -> Call:
        return lambda: self.client.put(
            f"/api/v1/workspaces/{ws}/branding/logo",
            files={"file": ("logo.png", png(), "image/png")},
            headers=owner.headers,
        )

    async def retention(self) -> Call:
        owner, ws = await self._owner_ws()
        return lambda: self.client.put(
            f"/api/v1/workspaces/{ws}/retention",
            json={"retention_days": 30, "archive_before_delete": True},
            headers=owner.headers,
        )

    async def _bot(self) -> tuple[Any, str, dict[str, Any]]:
        from tests.bot.flows import support_flow
        from tests.bot.helpers import create_bot

        owner, ws = await self._owner_ws()
        return owner, ws, await create_bot(self.api, owner, ws, support_flow())

    async def create_bot(self) -> Call:
        owner, ws = await self._owner_ws()
        return lambda: self.client.post(
            f"/api/v1/workspaces/{ws}/bots", json={"name": "B"}, headers=owner.headers
        )

    async def update_bot(self) -> Call:
        owner, ws, bot = await self._bot()
        return lambda: self.client.patch(
            f"/api/v1/workspaces/{ws}/bots/{bot['id']}", json={"name": "C"}, headers=owner.headers
        )

    async def delete_bot(self) -> Call:
        owner, ws, bot = await self._bot()
        return lambda: self.client.delete(
            f"/api/v1/workspaces/{ws}/bots/{bot['id']}", headers=owner.headers
        )

    async def publish_bot(self) -> Call:
        owner, ws, bot = await self._bot()
        return lambda: self.client.post(
            f"/api/v1/workspaces/{ws}/bots/{bot['id']}/versions", json={}, headers=owner.headers
        )

    async def simulate_bot(self) -> Call:
        owner, ws, bot = await self._bot()
        return lambda: self.client.post(
            f"/api/v1/workspaces/{ws}/bots/{bot['id']}/simulate",
            json={"messages": [{"text": "hi"}]},
            headers=owner.headers,
        )

    async def _template(self) -> tuple[Any, str, dict[str, Any], dict[str, Any]]:
        owner, ws = await self._owner_ws()
        channel = await self.api.create_channel(owner, ws, business_account_id=SANDBOX_WABA)
        template = await self.client.post(
            f"/api/v1/workspaces/{ws}/templates",
            json={**TEMPLATE, "channel_id": channel["id"]},
            headers=owner.headers,
        )
        assert template.status_code == 201, template.text
        return owner, ws, channel, template.json()["data"]

    async def create_template(self) -> Call:
        owner, ws = await self._owner_ws()
        channel = await self.api.create_channel(owner, ws, business_account_id=SANDBOX_WABA)
        return lambda: self.client.post(
            f"/api/v1/workspaces/{ws}/templates",
            json={**TEMPLATE, "channel_id": channel["id"]},
            headers=owner.headers,
        )

    async def delete_template(self) -> Call:
        owner, ws, _, template = await self._template()
        return lambda: self.client.delete(
            f"/api/v1/workspaces/{ws}/templates/{template['id']}", headers=owner.headers
        )

    async def preview_template(self) -> Call:
        owner, ws, _, template = await self._template()
        return lambda: self.client.post(
            f"/api/v1/workspaces/{ws}/templates/{template['id']}/preview",
            json={},
            headers=owner.headers,
        )

    async def sync_templates(self) -> Call:
        owner, ws, channel, _ = await self._template()
        return lambda: self.client.post(
            f"/api/v1/workspaces/{ws}/channels/{channel['id']}/templates/sync",
            headers=owner.headers,
        )

    async def revoke_key(self) -> Call:
        owner, ws = await self._owner_ws()
        key = (await self.api.create_key(owner, ws, ["workspace:read"]))["api_key"]
        return lambda: self.client.delete(
            f"/api/v1/workspaces/{ws}/api-keys/{key['id']}", headers=owner.headers
        )

    async def _ai(self) -> tuple[Any, str, dict[str, str]]:
        owner, ws = await self._owner_ws()
        return owner, ws, await ai_objects(self.api, owner, ws)

    async def _ai_call(self, method: str, path: str, **kwargs: Any) -> Call:
        owner, ws, ids = await self._ai()
        url = f"/api/v1/workspaces/{ws}/ai{path.format(**ids)}"
        return lambda: self.client.request(method, url, headers=owner.headers, **kwargs)

    async def create_intent(self) -> Call:
        return await self._ai_call("POST", "/intents", json={"name": "bye", "examples": ["bye"]})

    async def update_intent(self) -> Call:
        return await self._ai_call("PATCH", "/intents/{intent_id}", json={"examples": ["hey"]})

    async def delete_intent(self) -> Call:
        return await self._ai_call("DELETE", "/intents/{intent_id}")

    async def train_intents(self) -> Call:
        return await self._ai_call("POST", "/intents/train")

    async def activate_model(self) -> Call:
        owner, ws, ids = await self._ai()
        model_url = f"/api/v1/workspaces/{ws}/ai/models/{ids['model_id']}"

        async def ready() -> bool:
            got = await self.client.get(model_url, headers=owner.headers)
            return bool(got.json()["data"]["status"] == "ready")

        await eventually(ready, timeout=60)
        return lambda: self.client.post(f"{model_url}/activate", headers=owner.headers)

    async def create_knowledge(self) -> Call:
        return await self._ai_call("POST", "/knowledge", json={"question": "q", "answer": "a"})

    async def update_knowledge(self) -> Call:
        return await self._ai_call("PATCH", "/knowledge/{entry_id}", json={"answer": "b"})

    async def delete_knowledge(self) -> Call:
        return await self._ai_call("DELETE", "/knowledge/{entry_id}")

    async def answer(self) -> Call:
        return await self._ai_call("POST", "/answer", json={"question": "Do you ship abroad?"})

    async def _webhook_endpoint(self) -> tuple[Any, str, str]:
        owner, ws = await self._owner_ws()
        response = await self.client.post(
            f"/api/v1/workspaces/{ws}/webhook-endpoints",
            json={"url": "https://hooks.example.com/in", "event_types": ["*"]},
            headers=owner.headers,
        )
        assert response.status_code == 201, response.text
        return (
            owner,
            ws,
            f"/api/v1/workspaces/{ws}/webhook-endpoints/"
            + str(response.json()["data"]["endpoint"]["id"]),
        )

    async def create_webhook_endpoint(self) -> Call:
        owner, ws = await self._owner_ws()
        return lambda: self.client.post(
            f"/api/v1/workspaces/{ws}/webhook-endpoints",
            json={"url": "https://hooks.example.com/in", "event_types": ["message.received"]},
            headers=owner.headers,
        )

    async def update_webhook_endpoint(self) -> Call:
        owner, _, path = await self._webhook_endpoint()
        return lambda: self.client.patch(path, json={"enabled": False}, headers=owner.headers)

    async def delete_webhook_endpoint(self) -> Call:
        owner, _, path = await self._webhook_endpoint()
        return lambda: self.client.delete(path, headers=owner.headers)

    async def rotate_webhook_secret(self) -> Call:
        owner, _, path = await self._webhook_endpoint()
        return lambda: self.client.post(f"{path}/rotate-secret", headers=owner.headers)

    async def replay_webhook_delivery(self) -> Call:
        owner, ws, path = await self._webhook_endpoint()
        channel = await self.api.create_channel(owner, ws)
        await self.api.inbound_text(channel["id"], "15550007778", "hi", name="Rae")

        async def first_delivery() -> str | None:
            items = (await self.client.get(f"{path}/deliveries", headers=owner.headers)).json()
            return str(items["data"]["items"][0]["id"]) if items["data"]["items"] else None

        delivery = await eventually(first_delivery)
        return lambda: self.client.post(
            f"{path}/deliveries/{delivery}/replay", headers=owner.headers
        )


ROUTES: dict[tuple[str, str], tuple[str, str]] = {
    ("POST", "/api/v1/auth/register"): ("register", "auth.register"),
    ("POST", "/api/v1/auth/login"): ("login", "auth.login"),
    ("POST", "/api/v1/auth/2fa/verify"): ("verify", "auth.login"),
    ("POST", "/api/v1/auth/logout"): ("logout", "auth.logout"),
    ("POST", "/api/v1/auth/logout-all"): ("logout_all", "auth.logout_all"),
    ("POST", "/api/v1/auth/2fa/setup"): ("setup_2fa", "auth.2fa_setup"),
    ("POST", "/api/v1/auth/2fa/enable"): ("enable_2fa", "auth.2fa_enabled"),
    ("POST", "/api/v1/auth/2fa/disable"): ("disable_2fa", "auth.2fa_disabled"),
    ("POST", "/api/v1/auth/password/forgot"): ("forgot", "auth.password_reset_requested"),
    ("POST", "/api/v1/auth/password/reset"): ("reset", "auth.password_reset"),
    ("POST", "/api/v1/workspaces"): ("create_workspace", "workspace.create"),
    ("PATCH", "/api/v1/workspaces/{ws}"): ("update_workspace", "workspace.update"),
    ("DELETE", "/api/v1/workspaces/{ws}"): ("delete_workspace", "workspace.delete"),
    ("PATCH", "/api/v1/workspaces/{ws}/members/{user_id}"): ("update_member", "member.update"),
    ("DELETE", "/api/v1/workspaces/{ws}/members/{user_id}"): ("remove_member", "member.remove"),
    ("POST", "/api/v1/workspaces/{ws}/leave"): ("leave", "member.leave"),
    ("PUT", "/api/v1/workspaces/{ws}/members/{user_id}/channels"): (
        "assign_channels",
        "member.channels",
    ),
    ("POST", "/api/v1/workspaces/{ws}/invitations"): ("invite", "invitation.create"),
    ("DELETE", "/api/v1/workspaces/{ws}/invitations/{invitation_id}"): (
        "revoke_invitation",
        "invitation.revoke",
    ),
    ("POST", "/api/v1/invitations/accept"): ("accept", "invitation.accept"),
    ("POST", "/api/v1/workspaces/{ws}/api-keys"): ("create_key", "api_key.create"),
    ("DELETE", "/api/v1/workspaces/{ws}/api-keys/{key_id}"): ("revoke_key", "api_key.revoke"),
    ("POST", "/api/v1/workspaces/{ws}/channels"): ("create_channel", "channel.create"),
    ("POST", "/api/v1/workspaces/{ws}/channels/sandbox"): (
        "create_sandbox_channel",
        "channel.create",
    ),
    ("POST", "/api/v1/workspaces/{ws}/channels/{channel_id}/sandbox"): (
        "reconnect_sandbox_channel",
        "channel.sandbox_connect",
    ),
    ("PATCH", "/api/v1/workspaces/{ws}/channels/{channel_id}"): (
        "update_channel",
        "channel.update",
    ),
    ("DELETE", "/api/v1/workspaces/{ws}/channels/{channel_id}"): (
        "delete_channel",
        "channel.delete",
    ),
    ("PATCH", "/api/v1/workspaces/{ws}/conversations/{conversation_id}"): (
        "update_conversation",
        "conversation.update",
    ),
    ("POST", "/api/v1/workspaces/{ws}/conversations/{conversation_id}/messages"): (
        "reply",
        "message.send",
    ),
    ("POST", "/api/v1/workspaces/{ws}/messages"): ("send", "message.send"),
    ("POST", "/api/v1/workspaces/{ws}/messages/{message_id}/resend"): ("resend", "message.resend"),
    ("PATCH", "/api/v1/workspaces/{ws}/messages/{message_id}"): ("edit_sent", "message.edit"),
    ("POST", "/api/v1/workspaces/{ws}/channels/{channel_id}/media"): (
        "upload",
        "channel.media_upload",
    ),
    ("POST", "/api/v1/workspaces/{ws}/ai/intents"): ("create_intent", "ai_intent.create"),
    ("PATCH", "/api/v1/workspaces/{ws}/ai/intents/{intent_id}"): (
        "update_intent",
        "ai_intent.update",
    ),
    ("DELETE", "/api/v1/workspaces/{ws}/ai/intents/{intent_id}"): (
        "delete_intent",
        "ai_intent.delete",
    ),
    ("POST", "/api/v1/workspaces/{ws}/ai/intents/train"): ("train_intents", "ai_model.train"),
    ("POST", "/api/v1/workspaces/{ws}/ai/models/{model_id}/activate"): (
        "activate_model",
        "ai_model.activate",
    ),
    ("POST", "/api/v1/workspaces/{ws}/ai/knowledge"): ("create_knowledge", "knowledge.create"),
    ("PATCH", "/api/v1/workspaces/{ws}/ai/knowledge/{entry_id}"): (
        "update_knowledge",
        "knowledge.update",
    ),
    ("DELETE", "/api/v1/workspaces/{ws}/ai/knowledge/{entry_id}"): (
        "delete_knowledge",
        "knowledge.delete",
    ),
    ("POST", "/api/v1/workspaces/{ws}/ai/answer"): ("answer", "ai.answer"),
    ("POST", "/api/v1/workspaces/{ws}/webhook-endpoints"): (
        "create_webhook_endpoint",
        "webhook_endpoint.create",
    ),
    ("PATCH", "/api/v1/workspaces/{ws}/webhook-endpoints/{endpoint_id}"): (
        "update_webhook_endpoint",
        "webhook_endpoint.update",
    ),
    ("DELETE", "/api/v1/workspaces/{ws}/webhook-endpoints/{endpoint_id}"): (
        "delete_webhook_endpoint",
        "webhook_endpoint.delete",
    ),
    ("POST", "/api/v1/workspaces/{ws}/webhook-endpoints/{endpoint_id}/rotate-secret"): (
        "rotate_webhook_secret",
        "webhook_endpoint.rotate_secret",
    ),
    (
        "POST",
        "/api/v1/workspaces/{ws}/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/replay",
    ): ("replay_webhook_delivery", "webhook_delivery.replay"),
    ("POST", "/api/v1/workspaces/{ws}/automations"): ("create_automation", "automation.create"),
    ("PATCH", "/api/v1/workspaces/{ws}/automations/{rule_id}"): (
        "update_automation",
        "automation.update",
    ),
    ("DELETE", "/api/v1/workspaces/{ws}/automations/{rule_id}"): (
        "delete_automation",
        "automation.delete",
    ),
    ("POST", "/api/v1/workspaces/{ws}/teams"): ("create_team", "team.create"),
    ("PATCH", "/api/v1/workspaces/{ws}/teams/{team_id}"): ("update_team", "team.update"),
    ("DELETE", "/api/v1/workspaces/{ws}/teams/{team_id}"): ("delete_team", "team.delete"),
    ("POST", "/api/v1/workspaces/{ws}/segments"): ("create_segment", "segment.create"),
    ("POST", "/api/v1/workspaces/{ws}/contacts/{contact_id}/merge"): (
        "merge_contacts",
        "contact.merge",
    ),
    ("POST", "/api/v1/workspaces/{ws}/broadcasts"): ("create_broadcast", "broadcast.create"),
    ("POST", "/api/v1/workspaces/{ws}/broadcasts/{broadcast_id}/start"): (
        "start_broadcast",
        "broadcast.start",
    ),
    ("POST", "/api/v1/workspaces/{ws}/broadcasts/{broadcast_id}/pause"): (
        "pause_broadcast",
        "broadcast.pause",
    ),
    ("POST", "/api/v1/workspaces/{ws}/broadcasts/{broadcast_id}/resume"): (
        "resume_broadcast",
        "broadcast.resume",
    ),
    ("POST", "/api/v1/workspaces/{ws}/broadcasts/{broadcast_id}/cancel"): (
        "cancel_broadcast",
        "broadcast.cancel",
    ),
    ("POST", "/api/v1/workspaces/{ws}/broadcasts/{broadcast_id}/test-send"): (
        "test_send_broadcast",
        "broadcast.test_send",
    ),
    ("PATCH", "/api/v1/workspaces/{ws}/segments/{segment_id}"): (
        "update_segment",
        "segment.update",
    ),
    ("DELETE", "/api/v1/workspaces/{ws}/segments/{segment_id}"): (
        "delete_segment",
        "segment.delete",
    ),
    ("POST", "/api/v1/workspaces/{ws}/contacts/import"): ("import_contacts", "contact.import"),
    ("PUT", "/api/v1/workspaces/{ws}/business-hours"): (
        "business_hours",
        "business_hours.update",
    ),
    ("PUT", "/api/v1/workspaces/{ws}/branding"): ("branding", "branding.update"),
    ("PUT", "/api/v1/workspaces/{ws}/branding/logo"): ("upload_logo", "branding.logo"),
    ("DELETE", "/api/v1/workspaces/{ws}/branding/logo"): ("delete_logo", "branding.logo"),
    ("PUT", "/api/v1/workspaces/{ws}/retention"): ("retention", "retention.update"),
    ("POST", "/api/v1/workspaces/{ws}/bots"): ("create_bot", "bot.create"),
    ("PATCH", "/api/v1/workspaces/{ws}/bots/{bot_id}"): ("update_bot", "bot.update"),
    ("DELETE", "/api/v1/workspaces/{ws}/bots/{bot_id}"): ("delete_bot", "bot.delete"),
    ("POST", "/api/v1/workspaces/{ws}/bots/{bot_id}/versions"): ("publish_bot", "bot.publish"),
    ("POST", "/api/v1/workspaces/{ws}/bots/{bot_id}/simulate"): ("simulate_bot", "bot.simulate"),
    ("DELETE", "/api/v1/workspaces/{ws}/contacts/{contact_id}"): (
        "erase_contact",
        "contact.erase",
    ),
    ("POST", "/api/v1/workspaces/{ws}/templates"): ("create_template", "template.create"),
    ("DELETE", "/api/v1/workspaces/{ws}/templates/{template_id}"): (
        "delete_template",
        "template.delete",
    ),
    ("POST", "/api/v1/workspaces/{ws}/templates/{template_id}/preview"): (
        "preview_template",
        "template.preview",
    ),
    ("POST", "/api/v1/workspaces/{ws}/channels/{channel_id}/templates/sync"): (
        "sync_templates",
        "template.sync",
    ),
    ("PATCH", "/api/v1/admin/plans/{name}"): ("update_plan", "plan.update"),
    ("PUT", "/api/v1/admin/workspaces/{workspace_id}/plan"): (
        "change_workspace_plan",
        "workspace.plan_change",
    ),
}
# Provider webhooks are not a person's action: the raw event itself is their record.
NOT_AUDITED = {
    ("POST", "/webhooks/{provider}/{channel_id}"),
    # The platform Slack app's provider requests: a webhook like the one above.
    ("POST", "/webhooks/slack-app"),
    # A count of an unsaved audience: a POST only because a definition is a JSON body.
    ("POST", "/api/v1/workspaces/{ws}/segments/preview-count"),
    # A recipient's one-click unsubscribe: anonymous, and recorded in the consent ledger (as a
    # STOP keyword is), which is where opt-outs are audited; the audit log is members' actions.
    ("POST", "/email/unsubscribe/{token}"),
    # The website chat widget's visitors: anonymous people of a customer's site, not members.
    # What they say is stored as raw events through the channel intake (as a provider's
    # webhook is), which is their record.
    ("POST", "/widget/{channel_id}/session"),
    ("POST", "/widget/{channel_id}/messages"),
    ("POST", "/widget/{channel_id}/uploads"),
    ("POST", "/widget/{channel_id}/read"),
    ("POST", "/widget/{channel_id}/profile"),
    # Opting back in through the same link: the consent ledger again (`opt_in`).
    ("POST", "/email/resubscribe/{token}"),
    # A typing indicator: shown to the customer for a few seconds, nothing stored or changed.
    ("POST", "/api/v1/workspaces/{ws}/conversations/{conversation_id}/typing"),
}


def test_every_state_changing_route_has_a_scenario(app: FastAPI) -> None:
    changing = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if method.upper() in {"POST", "PUT", "PATCH", "DELETE"}
    }
    assert changing - NOT_AUDITED == set(ROUTES)


@pytest.mark.parametrize("route", sorted(ROUTES), ids=lambda r: f"{r[0]} {r[1]}")
async def test_route_writes_exactly_one_entry(
    route: tuple[str, str],
    client: httpx.AsyncClient,
    api: Api,
    smtp: SmtpSink,
    runtime: Runtime,
    wa: FakeGraph,
    tg: FakeBotApi,
) -> None:
    scenario, action = ROUTES[route]
    call = await getattr(Scenarios(client, api, smtp, runtime), scenario)()
    before = len(await _entries(runtime))
    response = await call()
    assert response.status_code < 300, response.text
    after = await _entries(runtime)
    assert len(after) == before + 1, [e.action for e in after[before:]]
    entry = after[-1]
    assert entry.action == action
    assert entry.request_id == response.headers["x-request-id"]
    assert entry.ip == "127.0.0.1"
    assert entry.actor_type in {"user", "anonymous"}


async def test_entries_name_actor_target_changes_and_redact_secrets(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    agent = await api.add_member(owner, ws, "agent")
    await client.patch(
        f"/api/v1/workspaces/{ws}/members/{agent.user_id}",
        json={"role": "manager"},
        headers={**owner.headers, "user-agent": "audit-test/1.0"},
    )
    entry = (await _entries(runtime))[-1]
    assert (entry.actor_type, entry.actor_id, entry.actor_label) == (
        "user",
        str(owner.user_id),
        owner.email,
    )
    assert (entry.target_type, entry.target_id) == ("user", str(agent.user_id))
    assert entry.changes == {"role": {"before": "agent", "after": "manager"}}
    assert entry.user_agent == "audit-test/1.0"

    from botplatform.audit.service import diff, redact

    assert redact({"password": "x", "token": "y", "name": "n"}) == {
        "password": "[redacted]",
        "token": "[redacted]",
        "name": "n",
    }
    assert diff({"app_secret": "a"}, {"app_secret": "b"}) == {
        "app_secret": {"before": "[redacted]", "after": "[redacted]"}
    }


async def test_api_key_actions_name_the_key(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    created = await api.create_key(owner, ws, ["members:manage", "members:read"])
    response = await client.post(
        f"/api/v1/workspaces/{ws}/invitations",
        json={"email": "k@example.com", "role": "viewer"},
        headers={"Authorization": f"Bearer {created['key']}"},
    )
    assert response.status_code == 201
    entry = (await _entries(runtime))[-1]
    assert entry.actor_type == "api_key"
    assert entry.actor_id == created["api_key"]["id"]
    assert created["key"] not in json.dumps(entry.changes) + (entry.actor_label or "")


async def test_audit_logs_endpoint_filters_and_pages(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    other = await api.create_workspace(owner, "Other")
    for index in range(3):
        await client.patch(
            f"/api/v1/workspaces/{ws}", json={"name": f"N{index}"}, headers=owner.headers
        )
    url = f"/api/v1/workspaces/{ws}/audit-logs"
    page = (
        await client.get(
            url, params={"action": "workspace.update", "limit": 2}, headers=owner.headers
        )
    ).json()["data"]
    assert [i["changes"]["name"]["after"] for i in page["items"]] == ["N2", "N1"]  # newest first
    rest = (
        await client.get(
            url,
            params={"action": "workspace.update", "cursor": page["next_cursor"]},
            headers=owner.headers,
        )
    ).json()["data"]
    assert [i["changes"]["name"]["after"] for i in rest["items"]] == ["N0"]
    everything = (await client.get(url, headers=owner.headers)).json()["data"]["items"]
    assert {i["action"] for i in everything} == {"workspace.create", "workspace.update"}
    assert all(other not in json.dumps(i) for i in everything)  # only this workspace's entries
    manager = await api.add_member(owner, ws, "manager")
    assert (await client.get(url, headers=manager.headers)).status_code == 403
    naive = await client.get(url, params={"since": "2020-01-01T00:00:00"}, headers=owner.headers)
    assert naive.status_code == 200


async def test_audit_log_file(client: httpx.AsyncClient, api: Api, settings: Settings) -> None:
    owner = await api.register()
    await api.create_workspace(owner, "Logged")
    for handler in logging.getLogger().handlers:
        handler.flush()
    lines = [json.loads(line) for line in (settings.log_dir / "audit.log").read_text().splitlines()]
    mine = [line for line in lines if line.get("actor_id") == str(owner.user_id)]
    assert [line["action"] for line in mine][-1] == "workspace.create"
    assert all(line["logger"] == "botplatform.audit" for line in lines)


def _verify(settings: Settings) -> Any:
    env = {
        "DATABASE_URL": settings.database_url,
        "DATABASE_OWNER_URL": settings.database_owner_url,
        "REDIS_URL": settings.redis_url,
        "SECRET_KEY": settings.signing_key,
        "LOG_DIR": str(settings.log_dir),
        "LOG_TO_STDOUT": "false",
    }
    return CliRunner().invoke(cli, ["audit", "verify"], env=env)


async def test_verify_catches_an_edited_and_a_deleted_entry(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, settings: Settings
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    for index in range(3):
        await client.patch(
            f"/api/v1/workspaces/{ws}", json={"name": f"V{index}"}, headers=owner.headers
        )
    intact = await anyio.to_thread.run_sync(_verify, settings)
    assert intact.exit_code == 0, intact.output
    assert "5 entries verified" in intact.output

    async with runtime.db.unit_of_work(system=True) as db:  # someone edits history
        await db.execute(update(AuditLog).where(AuditLog.seq == 3).values(ip="10.9.9.9"))
    edited = await anyio.to_thread.run_sync(_verify, settings)
    assert edited.exit_code == 1
    assert "BROKEN at entry 3" in edited.output and "hash does not match" in edited.output

    async with runtime.db.unit_of_work(system=True) as db:
        await db.execute(update(AuditLog).where(AuditLog.seq == 3).values(ip="127.0.0.1"))
    assert (await anyio.to_thread.run_sync(_verify, settings)).exit_code == 0
    async with runtime.db.unit_of_work(system=True) as db:  # someone removes an entry
        await db.execute(delete(AuditLog).where(AuditLog.seq == 4))
    deleted = await anyio.to_thread.run_sync(_verify, settings)
    assert deleted.exit_code == 1
    assert "entry 4 is missing" in deleted.output

    async with runtime.db.unit_of_work(system=True) as db:  # or cuts off the tail
        await db.execute(delete(AuditLog).where(AuditLog.seq >= 4))
    truncated = await anyio.to_thread.run_sync(_verify, settings)
    assert truncated.exit_code == 1
    assert "missing" in truncated.output


async def test_concurrent_writes_keep_one_chain(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    import asyncio

    owner = await api.register()
    ws = await api.create_workspace(owner)
    await asyncio.gather(
        *(
            client.patch(f"/api/v1/workspaces/{ws}", json={"name": f"C{i}"}, headers=owner.headers)
            for i in range(10)
        )
    )
    entries = await _entries(runtime)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        from botplatform.audit.service import verify

        checked, broken = await verify(db)
    assert broken is None and checked == len(entries)
    async with runtime.db.unit_of_work(write=False, system=True) as db:
        assert (await db.execute(select(func.count()).select_from(AuditLog))).scalar() == len(
            entries
        )
