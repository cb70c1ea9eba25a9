"""The contact page's Export link and Erase button, over plain HTTP on both backends: they
call the API's privacy endpoints (permissions, audit, CSRF included)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from sqlalchemy import Select, func, select

from botplatform.models import AuditLog, Contact
from botplatform.runtime import Runtime
from tests.conftest import Api
from tests.dashboard.helpers import browser_login, csrf_of, unlabelled_controls


async def _count(runtime: Runtime, statement: Select[Any]) -> int:
    async with runtime.db.unit_of_work(system=True) as db:
        return int((await db.execute(statement)).scalar_one())


async def test_contact_page_exports_and_erases(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    await api.inbound_text(channel["id"], "15550004444", "page secret", name="Paula Page")
    contact_id = (await api.conversation_of(owner, ws, "Paula Page"))["contact_id"]
    agent = await api.add_member(owner, ws, "agent")
    url = f"/app/w/{ws}/contacts/{contact_id}"

    await browser_login(client, agent.email, agent.password)
    seen = await client.get(url)
    assert seen.status_code == 200 and "Erase this contact" not in seen.text
    assert "/export" not in seen.text
    assert (await client.get(f"{url}/export")).status_code == 403
    refused = await client.post(f"{url}/erase", data={"csrf_token": csrf_of(seen.text)})
    assert refused.status_code == 403
    client.cookies.clear()

    await browser_login(client, owner.email, owner.password)
    page = await client.get(url)
    assert page.status_code == 200
    assert f'href="{url}/export"' in page.text and "data-confirm=" in page.text
    assert unlabelled_controls(page.text) == []
    exported = await client.get(f"{url}/export")
    assert exported.status_code == 200
    assert "attachment" in exported.headers["content-disposition"]
    data = json.loads(exported.text)
    assert data["contact"]["name"] == "Paula Page"
    assert [m["text"] for m in data["conversations"][0]["messages"]] == ["page secret"]
    export_entries = select(func.count()).where(AuditLog.action == "contact.export")
    assert await _count(runtime, export_entries) == 1

    forged = await client.post(f"{url}/erase", data={"csrf_token": "0" * 64})
    assert forged.status_code == 403
    contacts = select(func.count()).where(Contact.id == uuid.UUID(contact_id))
    assert await _count(runtime, contacts) == 1

    erased = await client.post(f"{url}/erase", data={"csrf_token": csrf_of(page.text)})
    assert erased.status_code == 303
    assert erased.headers["location"].startswith(f"/app/w/{ws}/contacts")
    assert await _count(runtime, contacts) == 0
    erase_entries = select(func.count()).where(AuditLog.action == "contact.erase")
    assert await _count(runtime, erase_entries) == 1
    assert (await client.get(url)).status_code == 404
