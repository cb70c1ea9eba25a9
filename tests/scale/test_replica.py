"""A streaming read replica (DATABASE_REPLICA_URL), against real clusters made for this
module: a primary and a `pg_basebackup -R` standby of it. Lists are answered by the replica;
the caller who has just written reads the primary; a replica lagging beyond the threshold,
or down, hands its reads back to the primary. PostgreSQL only by nature."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

from botplatform import migrate
from botplatform.config import Settings
from botplatform.main import create_app
from botplatform.runtime import Runtime
from tests.conftest import (
    APP_ROLE,
    REDIS_URL,
    STRONG_PASSWORD,
    Account,
    Api,
    _missing,
    _recreate_postgres_database,
    app_role_url,
    base_settings,
    eventually,
)
from tests.scale.servers import HAS_PG_CREATECLUSTER, Cluster, primary_and_replica

# Our own Redis database (the suite's app and its worker use another one).
REPLICA_REDIS = REDIS_URL.rsplit("/", 1)[0] + "/12"


@pytest.fixture(scope="module")
def clusters(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, Cluster]]:
    if not settings.redis_url:
        pytest.skip("a streaming replica is PostgreSQL's")
    if not HAS_PG_CREATECLUSTER:
        _missing("pg_createcluster (Debian's postgresql-common) is not installed")
    with primary_and_replica() as (primary, replica):
        owner = primary.url(database="botplatform")
        asyncio.run(_recreate_postgres_database(owner))
        app_settings = base_settings(
            tmp_path_factory.mktemp("replica"),
            database_url=app_role_url(owner),
            database_owner_url=owner,
            database_replica_url=replica.url(APP_ROLE, "botplatform"),
            database_replica_max_lag_seconds=30,
            redis_url=REPLICA_REDIS,
            worker_in_process=False,
            # The suite's own: logging is set up per process, and the audit tests read it.
            log_dir=settings.log_dir,
        )
        migrate.upgrade(app_settings)
        yield app_settings, replica


@pytest.fixture(scope="module")
async def replicated(clusters: tuple[Settings, Cluster]) -> AsyncIterator[tuple[Api, Runtime]]:
    app_settings, _ = clusters
    application = create_app(app_settings)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield Api(http), application.state.runtime


async def _caught_up(replica: Cluster) -> bool:
    primary_position = await _on(replica, "SELECT pg_last_wal_receive_lsn()")
    replayed = await _on(replica, "SELECT pg_last_wal_replay_lsn()")
    return bool(primary_position == replayed)


async def _on(cluster: Cluster, sql: str) -> object:
    connection = await asyncpg.connect(cluster.url(database="botplatform"))
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


async def _actions(api: Api, account: Account, ws: str) -> list[str]:
    response = await api.http.get(f"/api/v1/workspaces/{ws}/audit-logs", headers=account.headers)
    assert response.status_code == 200, response.text
    return [entry["action"] for entry in response.json()["data"]["items"]]


async def _second_session(api: Api, account: Account) -> Account:
    """The same person logged in elsewhere: a caller that has not written anything."""
    response = await api.http.post(
        "/api/v1/auth/login", json={"email": account.email, "password": STRONG_PASSWORD}
    )
    assert response.status_code == 200, response.text
    token = response.json()["data"]["access_token"]
    return Account(account.email, account.password, token, account.user_id)


async def test_lists_come_from_the_replica_but_never_hide_your_own_writes(
    replicated: tuple[Api, Runtime], clusters: tuple[Settings, Cluster], tmp_path: Path
) -> None:
    api, runtime = replicated
    _, replica_cluster = clusters
    replica = runtime.db.replica
    assert replica is not None
    owner = await api.register()
    ws = await api.create_workspace(owner)
    elsewhere = await _second_session(api, owner)
    await eventually(lambda: _caught_up(replica_cluster), timeout=30)
    assert await replica.usable()

    await _on(replica_cluster, "SELECT pg_wal_replay_pause()")  # the replica now lags
    try:
        await api.create_channel(owner, ws)
        # The caller who wrote reads its write: the primary answers it for a moment.
        assert "channel.create" in await _actions(api, owner, ws)
        # Another caller's list comes from the replica, which has not replayed it yet.
        assert "channel.create" not in await _actions(api, elsewhere, ws)

        # Behind by more than the threshold: the primary answers everyone.
        replica.max_lag_seconds = 0.2
        await eventually(lambda: _not_usable(runtime), timeout=10)
        assert "channel.create" in await _actions(api, elsewhere, ws)
    finally:
        await _on(replica_cluster, "SELECT pg_wal_replay_resume()")
        replica.max_lag_seconds = 30

    await eventually(lambda: _caught_up(replica_cluster), timeout=30)
    await eventually(replica.usable, timeout=10)
    assert "channel.create" in await _actions(api, elsewhere, ws)  # replayed, from the replica

    # The replica goes away: its reads fall back to the primary at once.
    replica_cluster.ctl("stop", "-m", "immediate")
    assert "channel.create" in await _actions(api, elsewhere, ws)
    assert not await replica.usable()
    conversations = await api.http.get(
        f"/api/v1/workspaces/{ws}/conversations", headers=elsewhere.headers
    )
    assert conversations.status_code == 200, conversations.text
    # And back: it is used again once it answers.
    replica_cluster.ctl("start")
    await eventually(replica.usable, timeout=30)


async def _not_usable(runtime: Runtime) -> bool:
    replica = runtime.db.replica
    assert replica is not None
    return not await replica.usable()
