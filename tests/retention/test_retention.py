"""Retention: the policy through the API, and the job deleting exactly the messages older
than N days of one workspace, in batches, with their media files, archived first (gzipped
JSON lines, readable) when asked, and nothing deleted when the archive cannot be written."""

from __future__ import annotations

import gzip
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from botplatform.kit.clock import utcnow
from botplatform.media.storage import MediaStorage, media_key
from botplatform.models import AuditLog, Contact, Conversation, Message
from botplatform.retention import service
from botplatform.runtime import Runtime
from tests.conftest import Account, Api, eventually, set_quota


@dataclass
class Tenant:
    owner: Account
    ws: str
    old_ids: set[str]  # created 40 days ago
    new_ids: set[str]  # created 10 days ago


async def _messages(runtime: Runtime, ws: str) -> set[str]:
    async with runtime.db.unit_of_work(system=True) as db:
        statement = select(Message.id).where(Message.workspace_id == uuid.UUID(ws))
        return {str(i) for i in (await db.execute(statement)).scalars()}


async def _count(runtime: Runtime, model: Any, ws: str) -> int:
    async with runtime.db.unit_of_work(system=True) as db:
        statement = (
            select(func.count()).select_from(model).where(model.workspace_id == uuid.UUID(ws))
        )
        return int((await db.execute(statement)).scalar_one())


async def _age(runtime: Runtime, ids: set[str], days: int, key: str | None = None) -> None:
    async with runtime.db.unit_of_work(system=True) as db:
        values: dict[str, Any] = {"created_at": utcnow() - timedelta(days=days)}
        if key:
            values.update(media_key=key, media_mime="image/png", media_status="stored")
        await db.execute(
            update(Message).where(Message.id.in_([uuid.UUID(i) for i in ids])).values(**values)
        )


async def _tenant(
    api: Api, runtime: Runtime, name: str, phone_id: str, old: int, new: int
) -> Tenant:
    """A workspace with `old` messages of 40 days and `new` of 10 days, from two contacts."""
    owner = await api.register()
    ws = await api.create_workspace(owner, name)
    channel = await api.create_channel(owner, ws, phone_number_id=phone_id)
    for index in range(old + new):
        phone = "1555000111" + str(index % 2)
        text = f"{name} message {index}"
        await api.inbound_text(channel["id"], phone, text, name=f"C{index % 2}")
    await eventually(lambda: _has(runtime, ws, old + new))
    everything = sorted(await _messages(runtime, ws))
    old_ids, new_ids = set(everything[:old]), set(everything[old:])
    await _age(runtime, old_ids, 40)
    await _age(runtime, new_ids, 10)
    return Tenant(owner, ws, old_ids, new_ids)


async def _has(runtime: Runtime, ws: str, count: int) -> bool:
    return len(await _messages(runtime, ws)) == count


async def _policy(
    client: httpx.AsyncClient, tenant: Tenant, days: int | None, archive: bool
) -> None:
    response = await client.put(
        f"/api/v1/workspaces/{tenant.ws}/retention",
        json={"retention_days": days, "archive_before_delete": archive},
        headers=tenant.owner.headers,
    )
    assert response.status_code == 200, response.text


async def _put_media(runtime: Runtime, ws: str, data: bytes) -> str:
    key = media_key(uuid.UUID(ws), hashlib.sha256(data).hexdigest(), "png")
    await runtime.media.put(key, data, "image/png")
    return key


async def test_policy_is_validated_audited_and_refused_without_permission(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    url = f"/api/v1/workspaces/{ws}/retention"
    first = await client.get(url, headers=owner.headers)
    assert first.json()["data"] == {
        "retention_days": None,
        "archive_before_delete": False,
        "plan_ceiling_days": 90,  # the starter plan's
    }
    above = await client.put(url, json={"retention_days": 91}, headers=owner.headers)
    assert above.status_code == 422
    assert above.json()["error"]["code"] == "retention_above_plan"
    await set_quota(runtime, "starter", retention_days=None)  # a plan without a ceiling
    for days in (0, -1, 3651, "ten", 1.5):
        bad = await client.put(url, json={"retention_days": days}, headers=owner.headers)
        assert bad.status_code == 422, days
    saved = await client.put(
        url, json={"retention_days": 30, "archive_before_delete": True}, headers=owner.headers
    )
    assert saved.status_code == 200
    assert saved.json()["data"]["retention_days"] == 30
    for edge in (1, 3650):
        assert (
            await client.put(url, json={"retention_days": edge}, headers=owner.headers)
        ).status_code == 200
    async with runtime.db.unit_of_work(system=True) as db:
        audited = await db.execute(
            select(func.count()).where(AuditLog.action == "retention.update")
        )
        assert audited.scalar_one() == 3
    for role in ("developer", "manager", "agent", "analyst", "viewer"):
        member = await api.add_member(owner, ws, role)
        assert (await client.get(url, headers=member.headers)).status_code == 200
        refused = await client.put(url, json={"retention_days": 5}, headers=member.headers)
        assert refused.status_code == 403, role
    admin = await api.add_member(owner, ws, "admin")
    assert (
        await client.put(url, json={"retention_days": None}, headers=admin.headers)
    ).status_code == 200


async def test_deletes_only_this_workspaces_old_messages_in_batches_with_their_media(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await _tenant(api, runtime, "A", "100000000000001", old=5, new=2)
    b = await _tenant(api, runtime, "B", "100000000000002", old=3, new=1)
    own_key = await _put_media(runtime, a.ws, b"\x89PNG only old")
    shared_key = await _put_media(runtime, a.ws, b"\x89PNG old and new")
    old_sorted = sorted(a.old_ids)
    await _age(runtime, {old_sorted[0]}, 40, own_key)
    await _age(runtime, {old_sorted[1]}, 40, shared_key)
    await _age(runtime, {sorted(a.new_ids)[0]}, 10, shared_key)
    await _policy(client, a, 30, archive=False)
    conversations, contacts = (
        await _count(runtime, Conversation, a.ws),
        await _count(runtime, Contact, a.ws),
    )
    monkeypatch.setattr(service, "BATCH", 2)

    result = await service.run(runtime, uuid.UUID(a.ws))

    assert result.deleted == 5 and result.batches == 3 and result.archive_key is None
    assert await _messages(runtime, a.ws) == a.new_ids
    # Workspace B has old messages too, but no policy: untouched.
    assert await _messages(runtime, b.ws) == b.old_ids | b.new_ids
    # Conversations and contacts stay, even those left without messages.
    assert await _count(runtime, Conversation, a.ws) == conversations
    assert await _count(runtime, Contact, a.ws) == contacts
    assert result.media_files == 1  # the shared file is still carried by a newer message

    async def own_file_gone() -> bool:
        return not await runtime.media.exists(own_key)

    await eventually(own_file_gone)
    assert await runtime.media.exists(shared_key)
    again = await service.run(runtime, uuid.UUID(a.ws))  # a second copy of the job: nothing
    assert again.deleted == 0
    # Keep forever: nothing is deleted even far in the future.
    await _policy(client, a, None, archive=False)
    later = await service.run(runtime, uuid.UUID(a.ws), now=utcnow() + timedelta(days=999))
    assert later.deleted == 0 and await _messages(runtime, a.ws) == a.new_ids


async def test_archive_is_written_and_readable_before_anything_is_deleted(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await _tenant(api, runtime, "A", "100000000000003", old=4, new=1)
    await _policy(client, a, 30, archive=True)
    seen_at_write: list[set[str]] = []
    real: MediaStorage = runtime.media

    class Watching:
        """The real storage, noting which messages still existed when the archive was put."""

        async def put(self, key: str, data: bytes, content_type: str) -> None:
            seen_at_write.append(await _messages(runtime, a.ws))
            await real.put(key, data, content_type)

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    monkeypatch.setattr(runtime, "media", Watching())
    monkeypatch.setattr(service, "BATCH", 3)
    result = await service.run(runtime, uuid.UUID(a.ws))

    assert seen_at_write == [a.old_ids | a.new_ids]  # written while every message existed
    assert result.archive_key and result.archive_key.startswith(f"ws/{a.ws}/archives/")
    assert result.archived == result.deleted == 4 and result.batches == 2
    assert await _messages(runtime, a.ws) == a.new_ids
    data, content_type = await real.get(result.archive_key)
    assert content_type == "application/gzip"
    lines = gzip.decompress(data).decode().splitlines()
    records = [json.loads(line) for line in lines]
    assert {r["id"] for r in records} == a.old_ids
    assert all(r["workspace_id"] == a.ws and r["contact_id"] for r in records)
    assert all(r["text"].startswith("A message") for r in records)
    assert [r["created_at"] for r in records] == sorted(r["created_at"] for r in records)
    # Nothing more is due: no second, empty archive.
    assert (await service.run(runtime, uuid.UUID(a.ws))).archive_key is None


async def test_a_failed_archive_deletes_nothing(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await _tenant(api, runtime, "A", "100000000000004", old=3, new=1)
    await _policy(client, a, 30, archive=True)
    real: MediaStorage = runtime.media

    class Broken:
        async def put(self, key: str, data: bytes, content_type: str) -> None:
            raise OSError("storage is down")

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    monkeypatch.setattr(runtime, "media", Broken())
    with pytest.raises(OSError, match="storage is down"):
        await service.run(runtime, uuid.UUID(a.ws))
    assert await _messages(runtime, a.ws) == a.old_ids | a.new_ids


async def test_a_run_is_bounded_and_the_scheduled_sweep_finishes_the_rest(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await _tenant(api, runtime, "A", "100000000000005", old=5, new=1)
    b = await _tenant(api, runtime, "B", "100000000000006", old=2, new=1)
    await _policy(client, a, 30, archive=True)
    await _policy(client, b, 60, archive=False)  # B's old messages are younger than 60 days
    monkeypatch.setattr(service, "RUN_LIMIT", 3)
    monkeypatch.setattr(service, "BATCH", 2)

    first = await service.run(runtime, uuid.UUID(a.ws))
    assert first.deleted == 3 and first.more  # and the next run was queued

    async def done() -> bool:
        return await _messages(runtime, a.ws) == a.new_ids

    await eventually(done)
    # The scheduler's daily job queues a run for every workspace with a policy.
    await _age(runtime, a.new_ids, 40)
    runtime.jobs.send("retention_sweep")

    async def swept() -> bool:
        return await _messages(runtime, a.ws) == set()

    await eventually(swept)
    assert await _messages(runtime, b.ws) == b.old_ids | b.new_ids


async def test_a_plan_lowered_after_the_policy_caps_the_next_run(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    tenant = await _tenant(api, runtime, "Lowered", "5550100", old=3, new=2)
    await _policy(client, tenant, 60, archive=False)  # nothing is 60 days old
    await set_quota(runtime, "starter", retention_days=20)  # the plan now keeps 20 days
    await service.run(runtime, uuid.UUID(tenant.ws))
    assert set(await _messages(runtime, tenant.ws)) == tenant.new_ids
