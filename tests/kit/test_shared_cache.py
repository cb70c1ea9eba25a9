"""The in-process cache of what rarely changes (`kit.shared_cache`): a change committed by one
process reaches the others within moments through Redis; a rolled-back one drops nothing;
the TTL bounds a write no one announced; a lost subscription drops everything; and an entry
belongs to its workspace."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy import update

from botplatform.channel import cache as channel_cache
from botplatform.channel.cache import ChannelView
from botplatform.config import Settings
from botplatform.kit.scoping import enter_workspace
from botplatform.models import Channel
from botplatform.runtime import Runtime
from tests.conftest import Account, Api, eventually


async def _view(runtime: Runtime, ws: str, channel_id: str) -> ChannelView:
    async with runtime.db.unit_of_work(write=False) as db:
        await enter_workspace(db, uuid.UUID(ws))
        view = await channel_cache.get(db, uuid.UUID(ws), uuid.UUID(channel_id))
    assert view is not None
    return view


async def _rename(runtime: Runtime, ws: str, channel_id: str, name: str) -> None:
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, uuid.UUID(ws))
        row = await db.get(Channel, uuid.UUID(channel_id))
        assert row is not None
        row.name = name


def _held(runtime: Runtime, ws: str, channel_id: str) -> bool:
    return runtime.cache.holds(channel_cache.KIND, uuid.UUID(ws), channel_id)


async def _channel(api: Api, **extra: Any) -> tuple[Account, str, str]:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    created = await api.create_channel(owner, ws, **extra)
    return owner, ws, str(created["id"])


async def test_a_change_committed_in_one_process_reaches_another(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, settings: Settings
) -> None:
    if not settings.redis_url:
        pytest.skip("one process in embedded mode: invalidation is local (tested below)")
    owner, ws, channel_id = await _channel(api, auto_reply="Hello")
    other = Runtime.create(settings)  # another process: its own database pool and cache
    await other.start()
    try:
        assert other.cache.listening
        first = await _view(other, ws, channel_id)
        assert first.config["auto_reply"] == "Hello" and _held(other, ws, channel_id)
        assert await _view(other, ws, channel_id) is first  # kept: no second load

        changed_at = time.monotonic()
        patched = await client.patch(
            f"/api/v1/workspaces/{ws}/channels/{channel_id}",
            json={"auto_reply": "Bye"},
            headers=owner.headers,
        )
        assert patched.status_code == 200, patched.text
        await eventually(lambda: not _held(other, ws, channel_id), timeout=2, interval=0.005)
        assert time.monotonic() - changed_at < 2
        assert (await _view(other, ws, channel_id)).config["auto_reply"] == "Bye"

        # And the other way round: the app's process follows a change made in `other`.
        await _view(runtime, ws, channel_id)
        assert _held(runtime, ws, channel_id)
        await _rename(other, ws, channel_id, "Renamed elsewhere")
        await eventually(lambda: not _held(runtime, ws, channel_id), timeout=2, interval=0.005)
        assert (await _view(runtime, ws, channel_id)).name == "Renamed elsewhere"
    finally:
        await other.close()


async def test_only_a_commit_drops_and_a_transaction_sees_its_own_change(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    _, ws, channel_id = await _channel(api)
    kept = await _view(runtime, ws, channel_id)

    class Abandon(Exception):
        pass

    with pytest.raises(Abandon):
        async with runtime.db.unit_of_work() as db:
            await enter_workspace(db, uuid.UUID(ws))
            row = await db.get(Channel, uuid.UUID(channel_id))
            assert row is not None
            row.name = "Never committed"
            # Read through the cache in the same transaction: its own change, unflushed...
            inside = await channel_cache.get(db, uuid.UUID(ws), uuid.UUID(channel_id))
            assert inside is not None and inside.name == "Never committed"
            await db.flush()
            # ...and flushed; never stored for the others.
            inside = await channel_cache.get(db, uuid.UUID(ws), uuid.UUID(channel_id))
            assert inside is not None and inside.name == "Never committed"
            raise Abandon
    assert await _view(runtime, ws, channel_id) is kept  # rolled back: nothing dropped

    await _rename(runtime, ws, channel_id, "Committed")
    assert not _held(runtime, ws, channel_id)  # dropped in this process at the commit
    assert (await _view(runtime, ws, channel_id)).name == "Committed"


async def test_the_ttl_bounds_a_write_nobody_announced(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    _, ws, channel_id = await _channel(api)
    ttl = runtime.cache.ttl
    runtime.cache.ttl = 0.5
    try:
        assert (await _view(runtime, ws, channel_id)).name == "Support"
        async with runtime.db.unit_of_work() as db:  # a Core UPDATE, as psql would do
            await enter_workspace(db, uuid.UUID(ws))
            await db.execute(
                update(Channel).where(Channel.id == uuid.UUID(channel_id)).values(name="Quiet")
            )
        assert (await _view(runtime, ws, channel_id)).name == "Support"  # not announced
        await eventually(
            lambda: _name_is(runtime, ws, channel_id, "Quiet"), timeout=3, interval=0.1
        )
    finally:
        runtime.cache.ttl = ttl


async def _name_is(runtime: Runtime, ws: str, channel_id: str, name: str) -> bool:
    return (await _view(runtime, ws, channel_id)).name == name


async def test_an_entry_belongs_to_its_workspace(
    client: httpx.AsyncClient, api: Api, runtime: Runtime
) -> None:
    _, ws, channel_id = await _channel(api)
    _, other_ws, _ = await _channel(api)
    await _view(runtime, ws, channel_id)
    assert _held(runtime, ws, channel_id)
    async with runtime.db.unit_of_work(write=False) as db:
        await enter_workspace(db, uuid.UUID(other_ws))
        found = await channel_cache.get(db, uuid.UUID(other_ws), uuid.UUID(channel_id))
    assert found is None  # another workspace asking for this channel gets nothing


async def test_a_lost_subscription_drops_everything_and_comes_back(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, settings: Settings
) -> None:
    if not settings.redis_url:
        pytest.skip("no subscription in embedded mode")
    _, ws, channel_id = await _channel(api)
    await _view(runtime, ws, channel_id)
    assert _held(runtime, ws, channel_id)
    admin = aioredis.Redis.from_url(settings.redis_url)
    try:
        await admin.client_kill_filter(_type="pubsub")
    finally:
        await admin.aclose()
    # Messages may have been missed meanwhile: the entry is gone, whatever happens next...
    await eventually(lambda: not _held(runtime, ws, channel_id), timeout=5)
    # ...and once subscribed again, the cache keeps values again.
    await eventually(lambda: runtime.cache.listening, timeout=15)
    await _view(runtime, ws, channel_id)
    assert _held(runtime, ws, channel_id)
