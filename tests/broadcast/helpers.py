"""A workspace with a WhatsApp channel on the fake Graph API, contacts, and broadcasts made
through the API, as a user would."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

from botplatform.models import Channel, Contact
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.conftest import Account, Api, eventually

TEMPLATE = {
    "type": "template",
    "template": {
        "name": "spring_sale",
        "language": "en_US",
        "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "{{first}}"}]},
        ],
    },
    "variables": {"first": {"attribute": "name", "default": "friend"}},
}


@dataclass
class Shop:
    api: Api
    owner: Account
    ws: str
    channel: dict[str, Any]

    @property
    def base(self) -> str:
        return f"/api/v1/workspaces/{self.ws}/broadcasts"

    async def create(self, phones: list[str], **extra: Any) -> dict[str, Any]:
        body = {
            "name": "Spring sale",
            "channel_id": self.channel["id"],
            "message": TEMPLATE,
            "audience": {"type": "list", "phones": phones},
            **extra,
        }
        response = await self.api.http.post(self.base, json=body, headers=self.owner.headers)
        assert response.status_code == 201, response.text
        return dict(response.json()["data"])

    async def post(self, broadcast_id: str, action: str, body: Any = None) -> Any:
        return await self.api.http.post(
            f"{self.base}/{broadcast_id}/{action}", json=body, headers=self.owner.headers
        )

    async def start(self, broadcast_id: str, body: Any = None) -> dict[str, Any]:
        response = await self.post(broadcast_id, "start", body)
        assert response.status_code == 200, response.text
        return dict(response.json()["data"])

    async def get(self, broadcast_id: str) -> dict[str, Any]:
        response = await self.api.http.get(
            f"{self.base}/{broadcast_id}", headers=self.owner.headers
        )
        assert response.status_code == 200, response.text
        return dict(response.json()["data"])

    async def recipients(self, broadcast_id: str, **filters: str) -> list[dict[str, Any]]:
        response = await self.api.http.get(
            f"{self.base}/{broadcast_id}/recipients",
            params={"limit": 200, **filters},
            headers=self.owner.headers,
        )
        assert response.status_code == 200, response.text
        return list(response.json()["data"]["items"])

    async def finished(self, broadcast_id: str, timeout: float = 30) -> dict[str, Any]:
        async def done() -> dict[str, Any] | None:
            found = await self.get(broadcast_id)
            return found if found["status"] in ("completed", "cancelled", "failed") else None

        return dict(await eventually(done, timeout=timeout, interval=0.2))


async def shop(api: Api, wa: FakeGraph, **channel: Any) -> Shop:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    created = await api.create_channel(owner, ws, **channel)
    wa.webhook_url = f"http://testserver/webhooks/whatsapp/{created['id']}"
    return Shop(api, owner, ws, created)


def phones(count: int, start: int = 0) -> list[str]:
    return [f"+1555{start + index:07d}" for index in range(count)]


def sends(wa: FakeGraph) -> list[dict[str, Any]]:
    return [item for item in wa.sent if item["type"] == "template"]


def per_recipient(wa: FakeGraph) -> Counter[str]:
    return Counter(item["to"] for item in sends(wa))


async def add_contacts(runtime: Runtime, ws: str, numbers: list[str], tag: str) -> None:
    """Opted-in WhatsApp contacts with `tag`, inserted in bulk (as an import would leave
    them): a large audience set up in seconds, not one inbound message each."""
    from sqlalchemy import insert

    from botplatform.kit.clock import utcnow
    from botplatform.models import ContactIdentity

    now, workspace_id = utcnow(), uuid.UUID(ws)
    contacts = [
        {
            "id": uuid.uuid4(),
            "workspace_id": workspace_id,
            "name": f"Customer {index}",
            "attributes": {},
            "tags": [tag],
            "opted_out": False,
            "email_opted_out": False,
            "created_at": now,
            "updated_at": now,
        }
        for index in range(len(numbers))
    ]
    identities = [
        {
            "id": uuid.uuid4(),
            "workspace_id": workspace_id,
            "contact_id": contact["id"],
            "provider": "whatsapp",
            "external_id": number.lstrip("+"),
            "created_at": now,
            "updated_at": now,
        }
        for contact, number in zip(contacts, numbers, strict=True)
    ]
    async with runtime.db.unit_of_work(system=True) as db:
        for start in range(0, len(contacts), 1_000):
            await db.execute(insert(Contact), contacts[start : start + 1_000])
            await db.execute(insert(ContactIdentity), identities[start : start + 1_000])


async def lift_broadcast_quotas(runtime: Runtime) -> None:
    """The starter plan without the quotas a large broadcast would meet (for this test)."""
    from tests.conftest import set_quota

    await set_quota(
        runtime,
        "starter",
        recipients_per_broadcast=None,
        recipients_per_month=None,
        messages_per_month=None,
    )


async def tagged_segment(shop: Shop, tag: str) -> dict[str, Any]:
    """A broadcast audience: a saved segment of the contacts with `tag`."""
    definition = {
        "match": "all",
        "conditions": [{"type": "tags", "operator": "has_any", "values": [tag]}],
    }
    response = await shop.api.http.post(
        f"/api/v1/workspaces/{shop.ws}/segments",
        json={"name": f"Tagged {tag}", "definition": definition},
        headers=shop.owner.headers,
    )
    assert response.status_code == 201, response.text
    return {"type": "segment", "segment_id": response.json()["data"]["id"]}


async def set_channel(runtime: Runtime, channel_id: str, **config: Any) -> None:
    async with runtime.db.unit_of_work(system=True) as db:
        channel = await db.get(Channel, uuid.UUID(channel_id))
        assert channel is not None
        channel.config = {**channel.config, **config}


async def update_contact(runtime: Runtime, ws: str, phone: str, **values: Any) -> uuid.UUID:
    """Sets fields of the contact behind `phone` (created by the broadcast or an inbound)."""
    from sqlalchemy import select

    from botplatform.models import ContactIdentity

    async with runtime.db.unit_of_work(system=True) as db:
        identity = (
            await db.execute(
                select(ContactIdentity).where(
                    ContactIdentity.workspace_id == uuid.UUID(ws),
                    ContactIdentity.external_id == phone.lstrip("+"),
                )
            )
        ).scalar_one()
        contact = await db.get(Contact, identity.contact_id)
        assert contact is not None
        for key, value in values.items():
            setattr(contact, key, value)
        return contact.id
