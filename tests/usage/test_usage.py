"""The usage endpoint, who may read it, tenant isolation, and the counters under concurrency."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import select

from botplatform.kit.errors import QuotaExceeded
from botplatform.kit.scoping import enter_workspace
from botplatform.models import UsageCounter
from botplatform.runtime import Runtime
from botplatform.usage import repository, service
from tests.conftest import Api, set_quota
from tests.fakes.openai import FakeOpenAI


async def test_usage_shows_every_quota_with_used_and_remaining(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    await api.create_channel(owner, ws)
    await api.add_member(owner, ws, "agent")
    response = await client.get(f"/api/v1/workspaces/{ws}/usage", headers=owner.headers)
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    now = datetime.now(UTC)
    assert data["plan"] == "starter" and data["period"] == f"{now.year:04d}-{now.month:02d}"
    assert data["period_start"].startswith(f"{now.year:04d}-{now.month:02d}-01T00:00:00")
    quotas = {q["name"]: q for q in data["quotas"]}
    assert list(quotas) == [
        "messages_per_month",
        "channels",
        "members",
        "bots",
        "broadcasts_per_month",
        "recipients_per_broadcast",
        "recipients_per_month",
        "ai_tokens_per_month",
        "api_requests_per_minute",
        "retention_days",
    ]
    assert quotas["channels"] == {"name": "channels", "limit": 3, "used": 1, "remaining": 2}
    assert quotas["members"] == {"name": "members", "limit": 10, "used": 2, "remaining": 8}
    assert quotas["messages_per_month"]["used"] == 0
    assert quotas["api_requests_per_minute"] == {
        "name": "api_requests_per_minute",
        "limit": 600,
        "used": None,
        "remaining": None,
    }


async def test_usage_needs_billing_read_and_stays_in_its_workspace(
    client: httpx.AsyncClient, api: Api
) -> None:
    owner_a, owner_b = await api.register(), await api.register()
    ws_a = await api.create_workspace(owner_a, "A")
    ws_b = await api.create_workspace(owner_b, "B")
    await api.create_channel(owner_b, ws_b)
    viewer = await api.add_member(owner_a, ws_a, "viewer")
    analyst = await api.add_member(owner_a, ws_a, "analyst")
    denied = await client.get(f"/api/v1/workspaces/{ws_a}/usage", headers=viewer.headers)
    assert denied.status_code == 403
    assert denied.json()["error"]["details"]["permission"] == "billing:read"
    allowed = await client.get(f"/api/v1/workspaces/{ws_a}/usage", headers=analyst.headers)
    assert allowed.status_code == 200
    # A's owner asking for B's usage: 404, and nothing of B's in the answer.
    crossed = await client.get(f"/api/v1/workspaces/{ws_b}/usage", headers=owner_a.headers)
    assert crossed.status_code == 404
    assert "channels" not in crossed.text
    own = await client.get(f"/api/v1/workspaces/{ws_a}/usage", headers=owner_a.headers)
    channels = next(q for q in own.json()["data"]["quotas"] if q["name"] == "channels")
    assert channels["used"] == 0


async def test_ai_tokens_are_counted_and_the_quota_refuses_the_model(
    client: httpx.AsyncClient, api: Api, runtime: Runtime, openai: FakeOpenAI
) -> None:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    url = f"/api/v1/workspaces/{ws}/ai/answer"
    first = await client.post(url, json={"question": "Opening hours?"}, headers=owner.headers)
    assert first.json()["data"]["outcome"] == "ok", first.text
    spent = first.json()["data"]["prompt_tokens"] + first.json()["data"]["completion_tokens"]
    usage = await client.get(f"/api/v1/workspaces/{ws}/usage", headers=owner.headers)
    tokens = next(q for q in usage.json()["data"]["quotas"] if q["name"] == "ai_tokens_per_month")
    assert tokens["used"] == spent > 0
    await set_quota(runtime, "starter", ai_tokens_per_month=spent)
    capped = await client.post(url, json={"question": "Opening hours?"}, headers=owner.headers)
    assert capped.json()["data"]["outcome"] == "quota_exceeded"
    assert len(openai.requests) == 1
    ai_usage = await client.get(f"/api/v1/workspaces/{ws}/ai/usage", headers=owner.headers)
    assert ai_usage.json()["data"]["monthly_token_limit"] == spent


async def _workspace(api: Api) -> uuid.UUID:
    owner = await api.register()
    return uuid.UUID(await api.create_workspace(owner))


async def _reserve(runtime: Runtime, ws: uuid.UUID) -> bool:
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        return await service.reserve_outbound(db, ws) is None


async def _add(runtime: Runtime, ws: uuid.UUID) -> None:
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        await service.count_inbound(db, ws, 1)
        await service.add_ai_tokens(db, ws, 7)


async def _counter(runtime: Runtime, ws: uuid.UUID) -> UsageCounter:
    async with runtime.db.unit_of_work(system=True) as db:
        statement = select(UsageCounter).where(UsageCounter.workspace_id == ws)
        return (await db.execute(statement)).scalar_one()


async def test_concurrent_increments_add_up_and_never_overshoot(api: Api, runtime: Runtime) -> None:
    if runtime.settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite has a single writer; concurrency is PostgreSQL's question")
    ws = await _workspace(api)
    await asyncio.gather(*(_add(runtime, ws) for _ in range(30)))
    counter = await _counter(runtime, ws)
    assert (counter.messages_inbound, counter.ai_tokens) == (30, 210)

    await set_quota(runtime, "starter", messages_per_month=40)
    results = await asyncio.gather(*(_reserve(runtime, ws) for _ in range(25)))
    assert results.count(True) == 10
    counter = await _counter(runtime, ws)
    assert counter.messages_inbound + counter.messages_outbound == 40


async def test_reservations_stop_at_the_limit(api: Api, runtime: Runtime) -> None:
    ws = await _workspace(api)
    await set_quota(runtime, "starter", messages_per_month=2)
    assert [await _reserve(runtime, ws) for _ in range(3)] == [True, True, False]
    await set_quota(runtime, "starter", messages_per_month=0)
    other = await _workspace(api)
    assert await _reserve(runtime, other) is False  # a zero quota: not even the first


async def test_broadcast_reservations_check_recipients_and_the_month(
    api: Api, runtime: Runtime
) -> None:
    ws = await _workspace(api)
    await set_quota(runtime, "starter", broadcasts_per_month=1, recipients_per_broadcast=10)
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        with pytest.raises(QuotaExceeded) as too_many:
            await service.reserve_broadcast(db, ws, 11)
        assert too_many.value.details["quota"] == "recipients_per_broadcast"
        await service.reserve_broadcast(db, ws, 10)
        with pytest.raises(QuotaExceeded) as second:
            await service.reserve_broadcast(db, ws, 1)
        assert second.value.details["quota"] == "broadcasts_per_month"
    assert (await _counter(runtime, ws)).broadcasts == 1


async def test_broadcast_recipients_are_counted_per_month(api: Api, runtime: Runtime) -> None:
    ws = await _workspace(api)
    await set_quota(runtime, "starter", broadcasts_per_month=None, recipients_per_month=25)
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        with pytest.raises(QuotaExceeded) as too_big:  # the month's first: refused too
            await service.reserve_broadcast(db, ws, 26)
        assert too_big.value.details == {
            "quota": "recipients_per_month",
            "limit": 25,
            "used": 0,
            "plan": "starter",
        }
        await service.reserve_broadcast(db, ws, 10)
        await service.reserve_broadcast(db, ws, 15)  # exactly the limit
        with pytest.raises(QuotaExceeded) as spent:
            await service.reserve_broadcast(db, ws, 1)
        assert spent.value.details["quota"] == "recipients_per_month"
        assert spent.value.details["used"] == 25
    counter = await _counter(runtime, ws)
    assert (counter.broadcasts, counter.broadcast_recipients) == (2, 25)
    # Both month quotas at once: the broadcast count refuses first, nothing is counted.
    await set_quota(runtime, "starter", broadcasts_per_month=2, recipients_per_month=None)
    async with runtime.db.unit_of_work() as db:
        await enter_workspace(db, ws)
        with pytest.raises(QuotaExceeded) as third:
            await service.reserve_broadcast(db, ws, 1)
        assert third.value.details["quota"] == "broadcasts_per_month"
    counter = await _counter(runtime, ws)
    assert (counter.broadcasts, counter.broadcast_recipients) == (2, 25)


def test_periods_are_calendar_months_in_utc() -> None:
    assert repository.period_of(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == "2026-12"
    start, end = service._period_bounds(datetime(2026, 12, 15, tzinfo=UTC))
    assert (start, end) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    start, end = service._period_bounds(datetime(2026, 3, 15, tzinfo=UTC))
    assert end == datetime(2026, 4, 1, tzinfo=UTC)
