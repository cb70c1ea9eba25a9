"""The bulk lanes in a niced child process of each worker (worker/bulk.py): started with the
worker, niced further, the only consumer of `broadcasts` and `statuses`, started again when
it dies, and gone when its parent is SIGKILLed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis

from botplatform.config import Settings
from botplatform.runtime import Runtime
from botplatform.worker.bulk import bulk_niceness
from botplatform.worker.queues import redis_depth
from tests.conftest import eventually
from tests.worker.test_crash import ISOLATED_REDIS, _niceness, isolated_queue  # noqa: F401


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _bulk_child(parent: int) -> int | None:
    """The parent's living bulk child (not multiprocessing's resource tracker)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is None or int(fields[1]) != parent or fields[0] in ("Z", "X"):
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in command:
            return int(entry.name)
    return None


def _env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update(
        DATABASE_URL=settings.database_url,
        REDIS_URL=ISOLATED_REDIS,
        SECRET_KEY=settings.signing_key,
        WORKER_THREADS="2",
        WORKER_NICE="1",
        WORKER_BULK_NICE="4",
        QUEUE_IDLE_WAIT_MS="500",
        LOG_DIR=str(tmp_path / "logs"),
        LOG_TO_STDOUT="false",
    )
    return env


@pytest.mark.usefixtures("isolated_queue")
async def test_the_bulk_lanes_run_in_a_niced_supervised_child(
    settings: Settings, tmp_path: Path
) -> None:
    if not settings.redis_url:
        pytest.skip("separate worker processes exist in production mode (Redis) only")
    sender = Runtime.create(
        settings.model_copy(update={"redis_url": ISOLATED_REDIS, "worker_in_process": False})
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "botplatform", "worker"], env=_env(settings, tmp_path)
    )
    child: int | None = None
    try:
        child = await eventually(lambda: _bulk_child(worker.pid), timeout=60, interval=0.2)
        assert child is not None
        assert _niceness(worker.pid) == 1
        # It lowers its priority as it starts.
        await eventually(lambda: _niceness(child) == bulk_niceness(1, 4) == 5, timeout=30)

        queues = redis.Redis.from_url(ISOLATED_REDIS)

        def waiting(queue: str) -> int:
            return redis_depth(queues, queue)["waiting"]

        # The child stopped: a status job waits, while the parent takes the message path's.
        os.kill(child, signal.SIGSTOP)
        try:
            workspace = str(uuid.uuid4())
            sender.jobs.send("process_status_events", workspace, [])
            sender.jobs.send("process_inbound_events", workspace, [])
            await eventually(lambda: waiting("default") == 0, timeout=60)
            await asyncio.sleep(1.5)
            assert waiting("statuses") == 1  # the parent does not consume the bulk lanes
        finally:
            os.kill(child, signal.SIGCONT)
        await eventually(lambda: waiting("statuses") == 0, timeout=30)
        queues.close()

        # A dead child is started again.
        os.kill(child, signal.SIGKILL)
        first = child
        child = await eventually(
            lambda: (pid := _bulk_child(worker.pid)) is not None and pid != first and pid,
            timeout=60,
            interval=0.2,
        )
        assert isinstance(child, int)
        await eventually(lambda: _niceness(child) == 5, timeout=30)

        # Its parent SIGKILLed, the child is not left behind.
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        await eventually(lambda: not _alive(child), timeout=60, interval=0.2)
    finally:
        for pid in (worker.pid, child):
            if pid is not None and _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if worker.poll() is None:
            worker.wait(timeout=10)
        await sender.close()


@pytest.mark.usefixtures("isolated_queue")
async def test_a_stopped_worker_stops_its_child_and_one_process_mode_has_none(
    settings: Settings, tmp_path: Path
) -> None:
    if not settings.redis_url:
        pytest.skip("separate worker processes exist in production mode (Redis) only")
    env = _env(settings, tmp_path)
    worker = subprocess.Popen([sys.executable, "-m", "botplatform", "worker"], env=env)
    try:
        child = await eventually(lambda: _bulk_child(worker.pid), timeout=60, interval=0.2)
        worker.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(worker.wait, 60) == 0  # a graceful stop
        await eventually(lambda: not _alive(child), timeout=10, interval=0.1)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=10)
    single = subprocess.Popen(
        [sys.executable, "-m", "botplatform", "worker"], env={**env, "WORKER_BULK_APART": "false"}
    )
    try:
        started = tmp_path / "logs"
        await eventually(lambda: any(started.glob("*")), timeout=60)
        await asyncio.sleep(3)
        assert _bulk_child(single.pid) is None
    finally:
        single.send_signal(signal.SIGTERM)
        single.wait(timeout=60)
