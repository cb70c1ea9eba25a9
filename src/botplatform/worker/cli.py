"""`botplatform queue …`: what is waiting, what died, and getting it going again."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from botplatform.kit.cli_help import Group

if TYPE_CHECKING:
    from botplatform.runtime import Runtime

# What the commands need (settings, models, the broker) is imported inside them: `--help`
# and the other commands of the CLI stay fast.

T = TypeVar("T")

queue_app = typer.Typer(
    help="Job queue: status, dead jobs, clean, retry-dead",
    no_args_is_help=True,
    rich_markup_mode=None,
    cls=Group,
)

_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text.strip())
    if not match:
        raise typer.BadParameter("use a number with s, m, h or d, e.g. 7d or 12h")
    return timedelta(seconds=int(match[1]) * _UNITS[match[2]])


def _run(work: Callable[[Runtime], Awaitable[T]]) -> T:
    from botplatform.config import load_settings
    from botplatform.runtime import run_with_runtime

    return run_with_runtime(load_settings(), work)


DEAD_COUNTS_SQL = "SELECT queue, count(*) FROM dead_jobs WHERE retried_at IS NULL GROUP BY queue"


def _dead_counts_postgres(dsn: str) -> dict[str, int]:
    """`dead_letters.count_by_queue` through asyncpg alone."""
    import asyncio

    import asyncpg  # type: ignore[import-untyped]

    async def count() -> list[Any]:
        url = dsn.replace("postgresql+asyncpg://", "postgresql://", 1)
        connection = await asyncpg.connect(url, timeout=10)
        try:
            return list(await connection.fetch(DEAD_COUNTS_SQL))
        finally:
            await connection.close()

    try:
        rows = asyncio.run(count())
    except asyncpg.UndefinedTableError as exc:  # not migrated yet
        typer.echo(f"error: {exc}; run `botplatform db migrate`", err=True)
        raise typer.Exit(1) from exc
    return {str(queue): int(number) for queue, number in rows}


def _dead_counts_sqlite(dsn: str) -> dict[str, int]:
    """`dead_letters.count_by_queue` on a SQLite file, without SQLAlchemy and the models."""
    import sqlite3

    connection = sqlite3.connect(dsn.split(":///", 1)[1], timeout=10)
    try:
        rows = connection.execute(DEAD_COUNTS_SQL).fetchall()
    except sqlite3.OperationalError as exc:  # not migrated yet
        typer.echo(f"error: {exc}; run `botplatform db migrate`", err=True)
        raise typer.Exit(1) from exc
    finally:
        connection.close()
    return {str(queue): int(count) for queue, count in rows}


@queue_app.command("status")
def status() -> None:
    """Per queue: waiting, delayed, in flight, failed (broker) and dead (recorded) jobs."""
    from botplatform.config import load_settings

    settings = load_settings()
    depths: dict[str, dict[str, int]]
    # Redis and the database are read through their bare clients: no app, models or job
    # registry is imported, so the command answers in well under a second.
    depths, live = {}, bool(settings.redis_url)
    if settings.redis_url:
        from botplatform.worker.queues import redis_depths

        depths = redis_depths(settings.redis_url)
    if settings.is_sqlite:
        dead = _dead_counts_sqlite(settings.database_dsn)
    else:
        dead = _dead_counts_postgres(settings.database_dsn)
    if not live:
        typer.echo(
            "embedded mode: live queue counts exist only inside `botplatform serve`;"
            " dead jobs come from the database."
        )
    from botplatform.worker.queues import QUEUES

    queues = sorted(set(depths) | set(dead) | set(QUEUES))
    typer.echo(
        f"{'queue':<16}{'waiting':>9}{'delayed':>9}{'in flight':>11}{'failed':>8}{'dead':>7}"
    )
    for queue in queues:
        counts = depths.get(queue, {})
        waiting, delayed, in_flight, failed = (
            str(counts.get(k, "-")) for k in ("waiting", "delayed", "in_flight", "failed")
        )
        typer.echo(
            f"{queue:<16}{waiting:>9}{delayed:>9}{in_flight:>11}{failed:>8}{dead.get(queue, 0):>7}"
        )


@queue_app.command("dead")
def dead(limit: Annotated[int, typer.Option(help="How many to list")] = 50) -> None:
    """List dead jobs, newest first."""
    from sqlalchemy import select

    from botplatform.models import DeadJob
    from botplatform.worker import dead_letters

    async def work(runtime: Runtime) -> list[dict[str, object]]:
        async with runtime.db.unit_of_work() as db:
            statement = select(DeadJob).order_by(DeadJob.failed_at.desc()).limit(limit)
            return [dead_letters.describe(row) for row in (await db.execute(statement)).scalars()]

    rows = _run(work)
    if not rows:
        typer.echo("no dead jobs")
    for row in rows:
        state = "retried" if row["retried"] else "dead"
        typer.echo(
            f"{row['id']}  {row['job']:<24} {row['attempts']:>3} attempts  "
            f"{row['failed_at']}  {state}  {row['error']}"
        )


@queue_app.command("retry-dead")
def retry_dead(
    dead_job_id: Annotated[str | None, typer.Option("--id", help="Only this dead job")] = None,
) -> None:
    """Send dead jobs again (all, or one with --id); their retry count starts over."""
    from botplatform.worker import dead_letters

    wanted = uuid.UUID(dead_job_id) if dead_job_id else None

    async def work(runtime: Runtime) -> tuple[int, int]:
        async with runtime.db.unit_of_work() as db:
            marked = await dead_letters.request_retry(db, wanted)
        sent = 0
        if runtime.jobs.is_redis:
            async with runtime.db.unit_of_work() as db:
                sent = await dead_letters.send_requested(runtime, db)
        return len(marked), sent

    marked, sent = _run(work)
    if dead_job_id and not marked:
        typer.echo(f"error: no dead job {dead_job_id} waiting for a retry", err=True)
        raise typer.Exit(1)
    if sent:
        typer.echo(f"{sent} dead job(s) sent again.")
    else:
        typer.echo(f"{marked} dead job(s) marked; the running server sends them within a minute.")


@queue_app.command("clean")
def clean(
    older_than: Annotated[str, typer.Option(help="Age, e.g. 7d, 12h, 0 for all")] = "7d",
) -> None:
    """Delete dead jobs (recorded and broker dead letters) older than the given age."""
    import anyio.to_thread

    from botplatform.kit.clock import utcnow
    from botplatform.worker import dead_letters

    age = parse_duration(older_than)

    async def work(runtime: Runtime) -> tuple[int, int]:
        async with runtime.db.unit_of_work() as db:
            removed = await dead_letters.clean(db, age)
        dropped = await anyio.to_thread.run_sync(runtime.jobs.drop_dead_letters, age)
        return removed, dropped

    removed, dropped = _run(work)
    typer.echo(
        f"removed {removed} dead job(s) and {dropped} broker dead letter(s) older than "
        f"{older_than} (before {(utcnow() - age).isoformat(timespec='seconds')})."
    )
