"""The platform as a benchmark target: its environment per backend, its own databases
(created and dropped here), a channel set up through the public API, and the checks that
every acknowledged webhook was really stored and processed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import redis
from common import ACCESS_TOKEN, APP_SECRET, HOST, PHONE_NUMBER_ID, VERIFY_TOKEN, WABA_ID
from servers import base_env, botplatform_command

from botplatform.plans.defaults import QUOTA_FIELDS

PG_ADMIN_DSN = f"postgresql://postgres@{HOST}:5432/postgres"
PG_DATABASE = "botplatform_bench"
PG_DSN = f"postgresql://postgres@{HOST}:5432/{PG_DATABASE}"
# Apart from the databases the test suites use (15..13, and more for checkouts beside them).
# BENCH_REDIS_URL points the run at another server (a Redis of its own on a shared machine).
REDIS_URL = os.environ.get("BENCH_REDIS_URL", f"redis://{HOST}:6379/5")
# The plan the bench workspace is moved to, with every quota lifted: the starter plan's
# 10,000 messages a month would otherwise stop auto-replies (quota_exceeded) after a few
# runs on one database, silently, since inbound is never refused for a quota.
UNCAPPED_PLAN = "enterprise"
BENCH_EMAIL = "bench@example.com"
AUTO_REPLY_TEXT = "Thanks, we got your message."
# The highest send rate the API accepts per number; the default (80/s, Meta's standard
# throughput) would cap end-to-end replies at 80/s whatever the platform could do.
SEND_RATE_PER_SECOND = 1000


@dataclass(frozen=True)
class Backend:
    name: str  # "sqlite" or "postgres"
    label: str

    @property
    def is_postgres(self) -> bool:
        return self.name == "postgres"


SQLITE = Backend("sqlite", "embedded (SQLite, in-process worker)")
POSTGRES = Backend("postgres", "production (PostgreSQL + Redis, separate worker)")


@dataclass(frozen=True)
class Channel:
    id: str
    workspace_id: str
    token: str
    webhook_url: str


def platform_env(backend: Backend, run_dir: Path, graph_url: str) -> dict[str, str]:
    env = {
        "APP_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(32),
        "DATA_DIR": str(run_dir / "data"),
        "LOG_DIR": str(run_dir / "logs"),
        "LOG_LEVEL": "WARNING",
        "LOG_TO_STDOUT": "false",
        # Off for every target alike: 1000 webhooks/min per workspace would otherwise cap (a).
        "RATE_LIMIT_ENABLED": "false",
        "WHATSAPP_API_BASE_URL": graph_url,
    }
    if backend.is_postgres:
        env |= {
            "DATABASE_URL": PG_DSN,
            "REDIS_URL": REDIS_URL,
            "AUTO_MIGRATE": "false",
            "WORKER_IN_PROCESS": "false",
            "SCHEDULER_IN_PROCESS": "false",
        }
    return base_env(env)


# -- backing services -------------------------------------------------------------------------


async def _recreate_database(drop_only: bool) -> None:
    connection = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        if not drop_only:
            await connection.execute(f'CREATE DATABASE "{PG_DATABASE}"')
    finally:
        await connection.close()


def reset_backing_services(backend: Backend, env: dict[str, str], cwd: Path) -> None:
    """A fresh database (and Redis db 5) for each run, migrated before `serve` starts."""
    if not backend.is_postgres:
        return
    asyncio.run(_recreate_database(drop_only=False))
    redis.Redis.from_url(REDIS_URL).flushdb()
    subprocess.run(  # noqa: S603 - our own interpreter
        botplatform_command("db", "migrate"),
        env=env,
        cwd=cwd,
        check=True,
        timeout=180,
        capture_output=True,
    )


def drop_backing_services(backend: Backend) -> None:
    if not backend.is_postgres:
        return
    asyncio.run(_recreate_database(drop_only=True))
    redis.Redis.from_url(REDIS_URL).flushdb()


# -- setup through the public API --------------------------------------------------------------


def _data(response: httpx.Response) -> dict[str, object]:
    if response.status_code >= 300:
        raise RuntimeError(
            f"{response.request.url} answered {response.status_code}: {response.text}"
        )
    return dict(response.json()["data"])


def lift_quotas(client: httpx.Client, workspace_id: str, env: dict[str, str], cwd: Path) -> None:
    """Makes the bench user a superadmin (`botplatform create-admin`, as an operator would),
    lifts every quota of UNCAPPED_PLAN and moves the workspace onto it."""
    subprocess.run(  # noqa: S603 - our own interpreter
        botplatform_command("create-admin", "--email", BENCH_EMAIL),
        env=env,
        cwd=cwd,
        check=True,
        timeout=180,
        capture_output=True,
    )
    _data(client.patch(f"/admin/plans/{UNCAPPED_PLAN}", json=dict.fromkeys(QUOTA_FIELDS)))
    _data(client.put(f"/admin/workspaces/{workspace_id}/plan", json={"plan": UNCAPPED_PLAN}))


def create_channel(base_url: str, env: dict[str, str], cwd: Path) -> Channel:
    """A user, a workspace on a plan without quotas and a WhatsApp channel, as a user (and
    the operator, for the plan) would create them."""
    with httpx.Client(base_url=f"{base_url}/api/v1", timeout=60.0) as client:
        login = _data(
            client.post(
                "/auth/register",
                json={
                    "email": BENCH_EMAIL,
                    "password": secrets.token_urlsafe(18),
                    "name": "Bench",
                },
            )
        )
        client.headers["Authorization"] = f"Bearer {login['access_token']}"
        workspace = _data(client.post("/workspaces", json={"name": "Bench workspace"}))
        lift_quotas(client, str(workspace["id"]), env, cwd)
        channel = _data(
            client.post(
                f"/workspaces/{workspace['id']}/channels",
                json={
                    "name": "Bench number",
                    "phone_number_id": PHONE_NUMBER_ID,
                    "business_account_id": WABA_ID,
                    "access_token": ACCESS_TOKEN,
                    "app_secret": APP_SECRET,
                    "verify_token": VERIFY_TOKEN,
                    "send_rate_per_second": SEND_RATE_PER_SECOND,
                },
            )
        )
    return Channel(
        id=str(channel["id"]),
        workspace_id=str(workspace["id"]),
        token=str(login["access_token"]),
        webhook_url=f"{base_url}/webhooks/whatsapp/{channel['id']}",
    )


def set_auto_reply(base_url: str, channel: Channel, text: str) -> None:
    """Turns the channel's auto-reply on (`text`) or off (`""`)."""
    with httpx.Client(base_url=f"{base_url}/api/v1", timeout=60.0) as client:
        _data(
            client.patch(
                f"/workspaces/{channel.workspace_id}/channels/{channel.id}",
                json={"auto_reply": text},
                headers={"Authorization": f"Bearer {channel.token}"},
            )
        )


# -- what was stored --------------------------------------------------------------------------


@dataclass(frozen=True)
class EventCounts:
    total: int
    pending: int
    processed: int
    failed: int


COUNT_SQL = (
    "SELECT count(*), "
    "coalesce(sum(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), 0), "
    "coalesce(sum(CASE WHEN status = 'processed' THEN 1 ELSE 0 END), 0), "
    "coalesce(sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0) "
    "FROM inbound_events"
)


async def _pg_counts() -> tuple[int, int, int, int]:
    connection = await asyncpg.connect(PG_DSN)
    try:
        row = await connection.fetchrow(COUNT_SQL)
    finally:
        await connection.close()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def event_counts(backend: Backend, run_dir: Path) -> EventCounts:
    """Counts the stored raw events (read-only; superuser on PostgreSQL, so no RLS)."""
    if backend.is_postgres:
        return EventCounts(*asyncio.run(_pg_counts()))
    uri = f"file:{run_dir / 'data' / 'botplatform.db'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as connection:
        row = connection.execute(COUNT_SQL).fetchone()
    return EventCounts(*(int(value) for value in row))


def wait_processed(
    backend: Backend, run_dir: Path, timeout_seconds: float
) -> tuple[EventCounts, float]:
    """Waits (bounded) until no stored event is pending; the counts and the seconds waited."""
    started = time.monotonic()
    while True:
        counts = event_counts(backend, run_dir)
        waited = time.monotonic() - started
        if counts.pending == 0 or waited >= timeout_seconds:
            return counts, waited
        time.sleep(0.5)
