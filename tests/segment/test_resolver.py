"""The interface the broadcast engine calls: count, keyset batches, resolve_segment."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import insert

from botplatform.kit.clock import utcnow
from botplatform.kit.errors import NotFound, Unprocessable
from botplatform.kit.scoping import enter_workspace
from botplatform.models import Contact
from botplatform.models.base import table_of
from botplatform.runtime import Runtime
from botplatform.segment import service
from botplatform.segment.schemas import SegmentDefinition
from tests.conftest import Api

VIP = {"conditions": [{"type": "tags", "operator": "has_any", "values": ["vip"]}]}


async def _bulk(
    runtime: Runtime, ws: uuid.UUID, count: int, *, every_out: int = 0
) -> set[uuid.UUID]:
    """`count` contacts tagged vip (every `every_out`-th opted out); the opted-in ids."""
    now = utcnow()
    rows = [
        {
            "id": uuid.uuid4(),
            "workspace_id": ws,
            "name": f"c{i}",
            "attributes": {"n": i},
            "tags": ["vip"],
            "opted_out": bool(every_out) and i % every_out == 0,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(count)
    ]
    async with runtime.db.unit_of_work(system=True) as db:
        await db.execute(insert(table_of(Contact)), rows)
    return {row["id"] for row in rows if not row["opted_out"]}


async def _workspace(api: Api) -> uuid.UUID:
    owner = await api.register()
    return uuid.UUID(await api.create_workspace(owner))


async def test_batches_cover_every_contact_exactly_once_across_commits(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    ws, other = await _workspace(api), await _workspace(api)
    wanted = await _bulk(runtime, ws, 2345, every_out=7)
    await _bulk(runtime, other, 300)  # another tenant's vips: never in the audience
    seen: list[uuid.UUID] = []
    sizes = []
    # A plain (not system) unit of work, committed between batches, as a broadcast
    # materialising its recipients does: each batch re-enters the workspace.
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        assert await service.count(db, ws, VIP) == len(wanted)
        async for ids in service.iter_contact_ids(db, ws, VIP, batch_size=500):
            sizes.append(len(ids))
            assert ids == sorted(ids)
            assert not seen or ids[0] > seen[-1]
            seen.extend(ids)
            await db.commit()
    assert len(seen) == len(set(seen)) == len(wanted)
    assert set(seen) == wanted
    assert sizes == [500, 500, 500, 500, len(wanted) - 2000]


async def test_an_exact_multiple_of_the_batch_size_and_one_at_a_time(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    ws = await _workspace(api)
    wanted = await _bulk(runtime, ws, 6)
    async with runtime.db.unit_of_work(write=False) as db:
        batches = [ids async for ids in service.iter_contact_ids(db, ws, VIP, batch_size=3)]
        assert [len(b) for b in batches] == [3, 3]
        single = [ids async for ids in service.iter_contact_ids(db, ws, VIP, batch_size=1)]
        assert [i for b in single for i in b] == sorted(wanted)
        none = {"conditions": [{"type": "tags", "operator": "has_any", "values": ["nobody"]}]}
        assert [ids async for ids in service.iter_contact_ids(db, ws, none)] == []
        with pytest.raises(ValueError, match="batch_size"):
            [ids async for ids in service.iter_contact_ids(db, ws, VIP, batch_size=0)]


async def test_resolve_segment_is_tenant_scoped_and_validates_definitions(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    other = await _workspace(api)
    created = await client.post(
        f"/api/v1/workspaces/{ws}/segments",
        json={"name": "VIPs", "definition": VIP},
        headers=owner.headers,
    )
    segment_id = uuid.UUID(created.json()["data"]["id"])
    await _bulk(runtime, uuid.UUID(ws), 4)
    await _bulk(runtime, other, 9)
    async with runtime.db.unit_of_work(write=False) as db:
        definition = await service.resolve_segment(db, uuid.UUID(ws), segment_id)
        assert isinstance(definition, SegmentDefinition)
        assert await service.count(db, uuid.UUID(ws), definition) == 4
        with pytest.raises(NotFound):
            await service.resolve_segment(db, other, segment_id)
        with pytest.raises(Unprocessable) as bad:
            await service.count(db, uuid.UUID(ws), {"conditions": [{"type": "nope"}]})
        assert bad.value.details[0]["field"].startswith("conditions.0")
