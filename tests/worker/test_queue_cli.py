"""`botplatform queue status | dead | retry-dead | clean`, run as an operator would, against
the same database and queue as the running app."""

from __future__ import annotations

import uuid
from datetime import timedelta

import anyio.to_thread
import pytest
from click.testing import Result
from typer.testing import CliRunner

from botplatform.cli import app
from botplatform.config import Settings
from botplatform.kit.clock import utcnow
from botplatform.models import DeadJob
from botplatform.runtime import Runtime
from botplatform.worker.jobs import JobContext, job
from botplatform.worker.sweeper import sweep_once
from tests.conftest import eventually

runner = CliRunner()


@job("test_revived", max_retries=0)
async def revived(ctx: JobContext, key: str) -> None:
    await ctx.runtime.kv.put(f"revived:{key}", "yes")


def _env(settings: Settings) -> dict[str, str]:
    return {
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "SECRET_KEY": settings.signing_key,
        "LOG_DIR": str(settings.log_dir),
        "LOG_TO_STDOUT": "false",
    }


async def _cli(settings: Settings, *args: str) -> Result:
    # In a thread: the command runs its own event loop, while this one keeps serving the
    # app's in-process worker.
    return await anyio.to_thread.run_sync(
        lambda: runner.invoke(app, ["queue", *args], env=_env(settings))
    )


async def _add_dead(runtime: Runtime, key: str, age: timedelta = timedelta(0)) -> uuid.UUID:
    async with runtime.db.unit_of_work() as db:
        row = DeadJob(
            job="test_revived",
            queue="default",
            args=[key],
            message_id=uuid.uuid4().hex,
            last_error="ValueError: boom",
            attempts=3,
            first_enqueued_at=utcnow() - age,
            failed_at=utcnow() - age,
        )
        db.add(row)
    return row.id


@pytest.mark.usefixtures("client")
async def test_status_dead_and_retry(settings: Settings, runtime: Runtime) -> None:
    key = uuid.uuid4().hex
    dead_id = await _add_dead(runtime, key)

    status = await _cli(settings, "status")
    assert status.exit_code == 0, status.output
    header, *rows = [
        line for line in status.output.splitlines() if line.startswith(("queue", "default"))
    ]
    assert header.split() == ["queue", "waiting", "delayed", "in", "flight", "failed", "dead"]
    assert rows[0].split()[-1] == "1"

    listed = await _cli(settings, "dead")
    assert str(dead_id) in listed.output and "ValueError: boom" in listed.output

    retried = await _cli(settings, "retry-dead", "--id", str(dead_id))
    assert retried.exit_code == 0, retried.output
    if not settings.redis_url:
        # Embedded: the CLI cannot reach the server's in-process queue; the server's sweeper
        # sends what the CLI marked.
        assert "within a minute" in retried.output
        async with runtime.db.unit_of_work() as db:
            await sweep_once(JobContext(runtime, db, "sweep", 1, 1))
    else:
        assert "1 dead job(s) sent again" in retried.output
    assert await eventually(lambda: runtime.kv.get(f"revived:{key}")) == "yes"

    again = await _cli(settings, "retry-dead", "--id", str(dead_id))
    assert again.exit_code == 1  # already retried


@pytest.mark.usefixtures("client")
async def test_clean_older_than(settings: Settings, runtime: Runtime) -> None:
    await _add_dead(runtime, "old", timedelta(days=10))
    await _add_dead(runtime, "new")
    cleaned = await _cli(settings, "clean", "--older-than", "7d")
    assert cleaned.exit_code == 0, cleaned.output
    assert "removed 1 dead job(s)" in cleaned.output
    everything = await _cli(settings, "clean", "--older-than", "0")
    assert "removed 1 dead job(s)" in everything.output
    bad = await _cli(settings, "clean", "--older-than", "soon")
    assert bad.exit_code == 2


@pytest.mark.usefixtures("client")
async def test_status_costs_under_a_second_of_cpu_on_every_backend(settings: Settings) -> None:
    # Redis and the database are read through their bare clients: no app, no job registry.
    from tests.test_cli import _cpu_seconds

    def run() -> float:
        return _cpu_seconds("queue", "status", env=_env(settings), expect="webhooks")

    assert min([await anyio.to_thread.run_sync(run) for _ in range(3)]) < 1.0


def test_every_declared_job_runs_on_a_listed_queue() -> None:
    from botplatform.worker.jobs import REGISTRY, load_task_modules
    from botplatform.worker.queues import QUEUES

    load_task_modules()
    assert {spec.queue for spec in REGISTRY.values()} <= set(QUEUES)
    with pytest.raises(ValueError, match=r"not in worker\.queues\.QUEUES"):
        job("test_nowhere", queue="nowhere")
