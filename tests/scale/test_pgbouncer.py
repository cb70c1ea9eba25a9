"""Behind PgBouncer in transaction pooling mode (Debian's pgbouncer, a real process): the
message path (webhook in, auto-reply out, through the hot path's own statements and its
one-round-trip BEGIN + tenant setting) and the API's lists work while many clients share two
server connections, and no tenant setting leaks from one transaction to the next client.
PostgreSQL only by nature."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from botplatform.config import Settings
from botplatform.main import create_app
from botplatform.runtime import Runtime
from botplatform.sandbox import FakeGraph
from tests.conftest import APP_ROLE, PG_URL, Api, _clean, eventually
from tests.scale.servers import Bouncer, pgbouncer


@pytest.fixture(scope="module")
def bouncer(settings: Settings) -> Iterator[Bouncer]:
    if not settings.redis_url:
        pytest.skip("PgBouncer stands in front of PostgreSQL only")
    with pgbouncer(PG_URL, ["postgres", APP_ROLE], pool_size=2) as running:
        yield running


@pytest.fixture(scope="module")
async def pooled_app(settings: Settings, bouncer: Bouncer) -> AsyncIterator[FastAPI]:
    through = settings.model_copy(
        update={
            "database_url": bouncer.url(settings.database_url),
            "database_pool_mode": "transaction",
        }
    )
    through.__dict__.pop("database_dsn", None)  # a cached property of the copied settings
    application = create_app(through)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=60):
        yield application


@pytest.fixture
async def pooled(pooled_app: FastAPI) -> AsyncIterator[Api]:
    transport = httpx.ASGITransport(app=pooled_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield Api(http)
    runtime: Runtime = pooled_app.state.runtime
    await _clean(runtime)


async def test_messages_in_and_replies_out_through_pgbouncer(pooled: Api, wa: FakeGraph) -> None:
    owner = await pooled.register()
    ws = await pooled.create_workspace(owner)
    channel = await pooled.create_channel(owner, ws, auto_reply="Thanks, we read everything.")
    customers = [f"1555300{n:04d}" for n in range(12)]
    # At once: twelve webhooks, each a transaction of the hot path, on two server connections.
    await asyncio.gather(
        *(pooled.inbound_text(channel["id"], wa_id, "Hello?", name=wa_id) for wa_id in customers)
    )
    await eventually(lambda: len(wa.sent) >= len(customers), timeout=30)
    assert sorted(sent["to"] for sent in wa.sent) == customers
    assert {sent["body"]["text"]["body"] for sent in wa.sent} == {"Thanks, we read everything."}

    async def listed() -> list[dict[str, object]]:
        response = await pooled.http.get(
            f"/api/v1/workspaces/{ws}/conversations", params={"limit": 50}, headers=owner.headers
        )
        assert response.status_code == 200, response.text
        return list(response.json()["data"]["items"])

    lists = await asyncio.gather(*(listed() for _ in range(8)))
    assert all(len(items) == len(customers) for items in lists)
    contacts = await pooled.http.get(f"/api/v1/workspaces/{ws}/contacts", headers=owner.headers)
    assert contacts.status_code == 200 and len(contacts.json()["data"]["items"]) == 12


async def test_a_tenant_setting_ends_with_its_transaction(bouncer: Bouncer) -> None:
    url = bouncer.url(PG_URL)
    # statement_cache_size=0: what the app's engine uses behind a pooler in transaction mode.
    first = await asyncpg.connect(url, statement_cache_size=0)
    second = await asyncpg.connect(url, statement_cache_size=0)
    try:
        async with first.transaction():
            await first.execute(
                "SELECT set_config('app.workspace_id', '00000000-0000-0000-0000-000000000001',"
                " true)"
            )
        for _ in range(4):  # whichever server connection each lands on
            for client in (first, second):
                seen = await client.fetchval("SELECT current_setting('app.workspace_id', true)")
                assert seen in (None, "")
    finally:
        await first.close()
        await second.close()
