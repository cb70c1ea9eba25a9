"""The platform as a benchmark target: its environment per backend, its own databases
(created and dropped here), a channel set up through the public API, and the checks that
every acknowledged webhook was really stored and processed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from common import ACCESS_TOKEN, APP_SECRET, HOST, PHONE_NUMBER_ID, VERIFY_TOKEN, WABA_ID
from servers import base_env, botplatform_command

from botplatform.plans.defaults import QUOTA_FIELDS

PG_PORT = 5432
# The harness's own checks go over the Unix socket, so that the CPU meter (bench/cpu.py),
# which counts the backends of the bench database reached over TCP, never counts them.
PG_SOCKET_DIR = os.environ.get("BENCH_PG_SOCKET_DIR", "/var/run/postgresql")
PG_ADMIN_DSN = f"postgresql://postgres@/postgres?host={PG_SOCKET_DIR}&port={PG_PORT}"
# One database per checkout (named after its folder), so that two checkouts benchmarking on
# one PostgreSQL server never drop each other's; BENCH_PG_DATABASE chooses another name.
_CHECKOUT = re.sub(r"[^a-z0-9]+", "_", Path(__file__).resolve().parents[1].name.lower())
PG_DATABASE = os.environ.get("BENCH_PG_DATABASE", f"botplatform_bench_{_CHECKOUT}"[:63])
PG_HARNESS_DSN = f"postgresql://postgres@/{PG_DATABASE}?host={PG_SOCKET_DIR}&port={PG_PORT}"
# The bench starts a Redis server of its own for each platform run (servers.start_redis):
# its whole CPU belongs to the platform, and nobody else's keys or clients are touched.
REDIS_DB = 5
# How often `analyzing` runs ANALYZE during a PostgreSQL run: autoanalyze's stand-in.
ANALYZE_EVERY_SECONDS = 15.0
# The plan the bench workspace is moved to, with every quota lifted: the starter plan's
# 10,000 messages a month would otherwise stop auto-replies (quota_exceeded) after a few
# runs on one database, silently, since inbound is never refused for a quota.
UNCAPPED_PLAN = "enterprise"
BENCH_EMAIL = "bench@example.com"
AUTO_REPLY_TEXT = "Thanks, we got your message."
# The highest send rate the API accepts per number; the default (80/s, Meta's standard
# throughput) would cap end-to-end replies at 80/s whatever the platform could do.
SEND_RATE_PER_SECOND = 1000
#: Settings given to every platform process on top of the bench's own (`quick.py --env`), to
#: compare a setting's cost.
PLATFORM_ENV_OVERRIDES: dict[str, str] = {}


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


def platform_dsn(port: int) -> str:
    """The platform's database URL through TCP on `port` (the counting relay's, or 5432)."""
    return f"postgresql://postgres@{HOST}:{port}/{PG_DATABASE}"


def platform_env(
    backend: Backend,
    run_dir: Path,
    graph_url: str,
    *,
    database_url: str = "",
    redis_url: str = "",
    worker_processes: int = 2,
) -> dict[str, str]:
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
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "WORKER_PROCESSES": str(worker_processes),
            # The default (10) lets `serve` go first on a machine of its own; on this shared
            # one it would also put the workers behind every neighbour's test run, and the
            # wall rates would measure the neighbours. CPU per message is the same either way.
            "WORKER_NICE": "0",
            "AUTO_MIGRATE": "false",
            "WORKER_IN_PROCESS": "false",
            "SCHEDULER_IN_PROCESS": "false",
        }
    return base_env(env | PLATFORM_ENV_OVERRIDES)


# -- backing services -------------------------------------------------------------------------


async def recreate_database(drop_only: bool, database: str = PG_DATABASE) -> None:
    """Drops `database` (connections and all) and, unless `drop_only`, creates it empty."""
    connection = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        if not drop_only:
            await connection.execute(f'CREATE DATABASE "{database}"')
    finally:
        await connection.close()


def reset_backing_services(backend: Backend, env: dict[str, str], cwd: Path) -> None:
    """A fresh database for each run, migrated before `serve` starts (Redis is new too)."""
    if not backend.is_postgres:
        return
    asyncio.run(recreate_database(drop_only=False))
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
    asyncio.run(recreate_database(drop_only=True))


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


def bench_flow() -> dict[str, object]:
    """Scenario (c)'s bot: "hi" → reply buttons; "Sales" → an `ask` step (an email address,
    validated) → a closing message that uses the answer. Three inbound messages, three replies
    (bench/load.py's flow mode plays the customer)."""
    return {
        "triggers": [{"type": "keyword", "keywords": ["hi"], "node": "menu"}],
        "nodes": [
            {
                "id": "menu",
                "type": "send_buttons",
                "text": "Hi {{contact.name}}! What do you need?",
                "buttons": [
                    {"id": "sales", "title": "Sales"},
                    {"id": "support", "title": "Support"},
                ],
                "save_as": "topic",
            },
            {
                "id": "ask_email",
                "type": "ask",
                "question": "Your email, please?",
                "attribute": "email",
                "validation": "email",
                "max_attempts": 2,
            },
            {
                "id": "thanks",
                "type": "end",
                "message": "Thanks! We will write to {{contact.email}}.",
            },
            {"id": "bye", "type": "end", "message": "See our help center."},
            {"id": "gave_up", "type": "end", "message": "Let's try again later."},
        ],
        "edges": [
            {"from": "menu", "to": "ask_email", "port": "sales"},
            {"from": "menu", "to": "bye", "port": "support"},
            {"from": "ask_email", "to": "thanks", "port": "next"},
            {"from": "ask_email", "to": "gave_up", "port": "invalid"},
        ],
    }


def publish_bench_bot(base_url: str, channel: Channel) -> str:
    """Creates scenario (c)'s bot through the API and publishes it (what a user's "Publish"
    does); returns the bot's id."""
    headers = {"Authorization": f"Bearer {channel.token}"}
    base = f"/workspaces/{channel.workspace_id}/bots"
    with httpx.Client(base_url=f"{base_url}/api/v1", timeout=60.0, headers=headers) as client:
        bot = _data(client.post(base, json={"name": "Bench bot", "flow": bench_flow()}))
        _data(client.post(f"{base}/{bot['id']}/versions", json={}))
    return str(bot["id"])


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
    connection = await asyncpg.connect(PG_HARNESS_DSN)
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


@contextlib.contextmanager
def analyzing(
    dsn: str = PG_HARNESS_DSN, every_seconds: float = ANALYZE_EVERY_SECONDS
) -> Iterator[None]:
    """`ANALYZE` of the run's database every `every_seconds`, as autovacuum's autoanalyze
    would do on a production server. This machine's PostgreSQL runs with `autovacuum = off`
    (its CI configuration): tables that grow from nothing during a run are never analyzed,
    and the planner, believing them tiny, chose plans that scanned a workspace's whole table
    (a broadcast's status batches: 7.7 ms a query at 26,000 messages, more as they grew).
    Through the Unix socket: not counted with the platform's backends, as autovacuum's
    workers would not be."""
    stop = threading.Event()

    async def loop() -> None:
        connection = await asyncpg.connect(dsn)
        try:
            while not stop.is_set():
                await connection.execute("ANALYZE")
                await asyncio.to_thread(stop.wait, every_seconds)
        finally:
            await connection.close()

    thread = threading.Thread(target=lambda: asyncio.run(loop()), name="analyze", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)
