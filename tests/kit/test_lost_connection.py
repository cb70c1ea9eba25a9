"""A pooled connection the server closed (a restart, PgBouncer giving up on it) fails the
request that meets it with 503, and is then dropped from the pool: the next unit of work
works, on the hot path's own statements too. PostgreSQL only (SQLite has no server)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from botplatform.config import Settings
from botplatform.kit import core
from botplatform.kit.handlers import _connection_lost
from botplatform.models import Plan
from botplatform.runtime import Runtime


async def test_a_connection_closed_under_the_pool_is_dropped_after_one_failure(
    client: httpx.AsyncClient, runtime: Runtime, settings: Settings
) -> None:
    if settings.is_sqlite:
        pytest.skip("no server to lose on SQLite")
    database = runtime.db
    with pytest.raises(DBAPIError) as failed:
        async with database.unit_of_work(system=True) as db:
            raw = await (await db.connection()).get_raw_connection()
            await raw.dbapi_connection._connection.close()  # what a server restart leaves
            await core.run(db, select(Plan.name).where(Plan.name == "starter"))
    assert failed.value.connection_invalidated
    assert _connection_lost(failed.value)
    # Every connection the pool hands out afterwards works: the dead one was discarded.
    for _ in range(database.engine.pool.size() + 2):
        async with database.unit_of_work(system=True) as db:
            assert (await db.execute(text("SELECT 1"))).scalar() == 1
            found = await core.run(db, select(Plan.name).where(Plan.name == "starter"))
            assert found.scalar() == "starter"
