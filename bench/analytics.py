"""Analytics on PostgreSQL at scale: seeds one workspace with N messages (default 1M) over 90
days in a few INSERT … SELECT statements, rolls the 90 days up, then times each report over
the 90-day range (from the rollups, plus today live) and a live day counted from the rows.

    BENCH_DATABASE_URL=postgresql://postgres@HOST:5432/NAME \\
        uv run --frozen python -m bench.analytics [messages]

The database is dropped and created again: give it one of your own (it defaults to
TEST_DATABASE_URL, which the tests recreate anyway)."""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from botplatform.analytics import reports, service
from botplatform.analytics.timing import local_day
from botplatform.config import Settings
from botplatform.db import Database
from botplatform.kit.clock import utcnow
from botplatform.migrate import upgrade
from botplatform.models import Channel, Workspace

DAYS = 90
CONVERSATIONS = 50_000
REPEAT = 5


async def _recreate(url: str) -> None:
    base, name = url.rsplit("/", 1)
    connection = await asyncpg.connect(f"{base}/postgres")
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


SEED = [
    """INSERT INTO contacts (id, workspace_id, name, attributes, tags, opted_out,
         email_opted_out, created_at, updated_at)
       SELECT md5('contact' || g)::uuid, :ws, 'c' || g, '{}', '[]', false, false, now(), now()
       FROM generate_series(1, :conversations) g""",
    """INSERT INTO conversations (id, workspace_id, channel_id, contact_id, status,
         unread_count, labels, created_at, updated_at)
       SELECT md5('conversation' || g)::uuid, :ws, :channel, md5('contact' || g)::uuid,
         CASE WHEN g % 3 = 0 THEN 'open' ELSE 'resolved' END, 0, '[]',
         now() - interval '90 days' + (g::float / :conversations) * interval '90 days', now()
       FROM generate_series(1, :conversations) g""",
    # Message g belongs to conversation g % N, created along the 90 days; every other one out.
    """INSERT INTO messages (id, workspace_id, conversation_id, channel_id, direction, type,
         content, is_note, status, attempts, edited, deleted, sender_user_id,
         created_at, updated_at)
       SELECT gen_random_uuid(), :ws, md5('conversation' || (1 + g % :conversations))::uuid,
         :channel, CASE WHEN g % 2 = 0 THEN 'inbound' ELSE 'outbound' END,
         CASE WHEN g % 10 = 0 THEN 'image' ELSE 'text' END, '{}', false,
         CASE WHEN g % 2 = 0 THEN 'received' WHEN g % 7 = 0 THEN 'read' ELSE 'delivered' END,
         0, false, false, NULL,
         now() - interval '90 days' + (g::float / :messages) * interval '90 days',
         now() - interval '90 days' + (g::float / :messages) * interval '90 days'
       FROM generate_series(1, :messages) g""",
    """INSERT INTO conversation_cycles (id, workspace_id, conversation_id, channel_id,
         opened_at, reopened, resolved_at, created_at, updated_at)
       SELECT gen_random_uuid(), :ws, c.id, c.channel_id, c.created_at, false,
         CASE WHEN c.status = 'resolved' THEN c.created_at + interval '3 hours' END,
         c.created_at, c.created_at
       FROM conversations c WHERE c.workspace_id = :ws""",
]


async def _seed(db: AsyncSession, messages: int) -> tuple[Workspace, float]:
    workspace = Workspace(name="Bench", slug=f"bench-{uuid.uuid4().hex[:8]}")
    db.add(workspace)
    await db.flush()
    channel = Channel(workspace_id=workspace.id, provider="whatsapp", name="Bench", config={})
    db.add(channel)
    await db.flush()
    params = {
        "ws": workspace.id,
        "channel": channel.id,
        "messages": messages,
        "conversations": CONVERSATIONS,
    }
    started = time.perf_counter()
    for statement in SEED:
        await db.execute(text(statement), params)
    await db.execute(text("ANALYZE"))
    return workspace, time.perf_counter() - started


async def _timed(db: AsyncSession, workspace: Workspace, name: str) -> float:
    today = local_day("UTC", utcnow())
    window = reports.Window(workspace, today - timedelta(days=DAYS - 1), today)
    samples = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        await reports.REPORTS[name](db, window)
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def main(messages: int) -> None:
    url = os.environ.get("BENCH_DATABASE_URL") or os.environ["TEST_DATABASE_URL"]
    await _recreate(url)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=url,
            secret_key="bench-secret-key-not-for-production",  # noqa: S106 - a bench's own
            data_dir=Path(tmp),
            log_dir=Path(tmp),
        )
        await asyncio.to_thread(upgrade, settings)
        database = Database(settings)
        try:
            await _run(database, messages)
        finally:
            await database.dispose()


async def _run(database: Database, messages: int) -> None:
    async with database.unit_of_work(system=True) as db:
        workspace, seeded = await _seed(db, messages)
    print(f"seeded {messages:,} messages, {CONVERSATIONS:,} conversations in {seeded:.1f} s")
    async with database.unit_of_work(system=True) as db:
        row = await db.get(Workspace, workspace.id)
        assert row is not None
        started = time.perf_counter()
        days = await service.rebuild(db, row, local_day("UTC", utcnow()) - timedelta(days=DAYS))
        print(f"rollup of {len(days)} days: {time.perf_counter() - started:.1f} s")
    async with database.unit_of_work(system=True) as db:
        await db.execute(text("ANALYZE"))  # as autovacuum would after the rollup's writes
    results: dict[str, Any] = {}
    async with database.unit_of_work(system=True) as db:
        row = await db.get(Workspace, workspace.id)
        assert row is not None
        for name in reports.REPORTS:
            results[name] = await _timed(db, row, name)
            print(f"{name:14} {DAYS}-day range: median {results[name]:.0f} ms of {REPEAT}")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000))
