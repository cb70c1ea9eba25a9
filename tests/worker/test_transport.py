"""The job transport does not poll: an idle `botplatform worker` (Redis) sleeps in the kernel
(< 1% of a core), an idle embedded `botplatform serve` wakes a bounded number of times a
second, and a job sent to an idle worker starts at once, because every enqueue wakes the
blocked consumer. Delays still fire on time although the consumer that holds them is
blocked."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from botplatform.config import Settings
from botplatform.email.service import queue_email
from botplatform.runtime import Runtime
from botplatform.worker.jobs import JobContext, enqueue, job
from tests.conftest import SmtpSink, eventually
from tests.serving import free_port
from tests.worker.test_crash import ISOLATED_REDIS, _start_worker, _worker_env
from tests.worker.test_crash import isolated_queue as isolated_queue  # the fixture

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
IDLE_WINDOW_SECONDS = 5.0
IDLE_CORE_SHARE_MAX = 0.01
# The embedded serve is held to a count of wake-ups, which does not depend on the machine,
# rather than to a share of a core, which does: uvicorn alone, with no app, wakes 10 times a
# second (its own tick) and took 0.8% of a core idle on a slow machine where the embedded serve
# took 2-4% with ~60 wake-ups a second, and 0.6% on a faster one (docs/benchmarks.md, (d), where
# each process's idle CPU is measured). A consumer polling every 10 ms, as dramatiq's did, is
# 100 wake-ups a second on its own; the share of a core stays a coarse guard against a busy loop.
IDLE_WAKEUPS_PER_SECOND_MAX = 120
EMBEDDED_CORE_SHARE_GUARD = 0.05
STARTED: dict[str, float] = {}


@job("test_note_start", max_retries=0)
async def note_start(ctx: JobContext, key: str) -> None:
    STARTED[key] = time.monotonic()


def _cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _starts(log_dir: Path, ids: dict[str, float]) -> list[tuple[str, float]]:
    """(email id, wall-clock time) of each job a worker thread received, from the log."""
    starts = []
    for line in (log_dir / "combined.log").read_text().splitlines():
        entry = json.loads(line)
        if not str(entry.get("event", "")).startswith("Received message"):
            continue
        for email_id in ids:
            if email_id in entry["event"]:
                at = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00"))
                starts.append((email_id, at.timestamp()))
    return starts


async def _idle_core_share(pid: int) -> float:
    share, _ = await _idle_share_and_wakeups(pid)
    return share


def _wakeups(pid: int) -> int:
    """Times the process's threads went to sleep and were woken (voluntary context
    switches, summed over its threads): a blocked thread adds one per wake-up."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        for line in status.read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                total += int(line.split()[1])
    return total


async def _idle_share_and_wakeups(pid: int) -> tuple[float, float]:
    """Over the idle window: the share of a core the process used, and its wake-ups a second."""
    cpu, woken = _cpu_seconds(pid), _wakeups(pid)
    await asyncio.sleep(IDLE_WINDOW_SECONDS)
    share = (_cpu_seconds(pid) - cpu) / IDLE_WINDOW_SECONDS
    return share, (_wakeups(pid) - woken) / IDLE_WINDOW_SECONDS


@pytest.mark.usefixtures("client", "isolated_queue")
async def test_idle_worker_process_sleeps_and_a_job_wakes_it_at_once(
    settings: Settings, smtp: SmtpSink, tmp_path: Path
) -> None:
    if not settings.redis_url:
        pytest.skip("separate worker processes exist in production mode (Redis) only")
    sender = Runtime.create(
        settings.model_copy(update={"redis_url": ISOLATED_REDIS, "worker_in_process": False})
    )
    env = _worker_env(settings, smtp, tmp_path)
    # A long idle bound makes a missed wake-up obvious (seconds, not milliseconds); full CPU
    # priority keeps a busy shared host's scheduling out of the measured latency.
    env.update(QUEUE_HEARTBEAT_TIMEOUT_MS="60000", QUEUE_IDLE_WAIT_MS="4000", WORKER_NICE="0")
    env.update(LOG_LEVEL="DEBUG")
    log_dir = Path(env["LOG_DIR"])
    worker = _start_worker(env)
    try:

        async def send_one() -> tuple[float, str, str]:
            address = f"wake-{uuid.uuid4().hex[:8]}@example.com"
            async with sender.db.unit_of_work() as db:
                email = await queue_email(db, kind="test", to=address, subject="Hi", text="x")
            return time.time(), address, str(email.id)  # the job left with the commit

        _, first, _ = await send_one()  # proves the worker is up and consuming
        await eventually(lambda: smtp.to(first), timeout=120)  # a busy host starts slowly
        await asyncio.sleep(1.5)  # every consumer has found its queue empty and blocks

        share = await _idle_core_share(worker.pid)
        print(f"idle worker process: {share:.2%} of a core")
        assert share < IDLE_CORE_SHARE_MAX, f"an idle worker used {share:.1%} of a core"

        sent: dict[str, float] = {}
        for _ in range(5):
            await asyncio.sleep(random.uniform(0.2, 0.9))
            sent_at, address, email_id = await send_one()
            sent[email_id] = sent_at
            await eventually(lambda address=address: smtp.to(address), interval=0.01)
        # A worker thread takes the job (dramatiq's debug line "Received message …") within
        # milliseconds of the commit; a poll or a timed-out block would take up to 4 seconds.
        latencies = [started - sent[email_id] for email_id, started in _starts(log_dir, sent)]
        assert len(latencies) == len(sent)
        print("enqueue → start, worker process (ms):", [round(x * 1000, 1) for x in latencies])
        assert statistics.median(latencies) < 0.05, latencies
        assert max(latencies) < 0.5, latencies
        # A blocking read that outlived the client's read timeout would restart the consumer.
        assert "Consumer encountered" not in (log_dir / "combined.log").read_text()

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0  # a blocked consumer still stops gracefully
    finally:
        if worker.poll() is None:
            worker.kill()
        await sender.close()


@pytest.mark.usefixtures("client")
async def test_a_job_to_an_idle_in_process_worker_starts_at_once(runtime: Runtime) -> None:
    latencies = []
    for _ in range(5):
        await asyncio.sleep(random.uniform(0.3, 1.1))
        key = uuid.uuid4().hex
        async with runtime.db.unit_of_work() as db:
            enqueue(db, "test_note_start", key)
        sent_at = time.monotonic()
        await eventually(lambda key=key: key in STARTED, interval=0.005)
        latencies.append(STARTED[key] - sent_at)
    print("enqueue → start, in-process worker (ms):", [round(x * 1000, 1) for x in latencies])
    assert statistics.median(latencies) < 0.05, latencies
    assert max(latencies) < 0.5, latencies


@pytest.mark.usefixtures("client")
async def test_a_delay_fires_on_time_while_its_consumer_blocks(runtime: Runtime) -> None:
    """The consumer holding a delayed job blocks no longer than until the job's eta."""
    await asyncio.sleep(1.2)  # the delay queue's consumer is blocked on an empty queue
    key = uuid.uuid4().hex
    sent_at = time.monotonic()
    runtime.jobs.send("test_note_start", key, delay_ms=300)
    await eventually(lambda: key in STARTED, timeout=5, interval=0.005)
    late = STARTED[key] - sent_at - 0.3
    print(f"a 300 ms delay ran {late * 1000:.1f} ms after its eta")
    assert -0.01 < late < 0.05, f"ran {late * 1000:.0f} ms after its eta"


@pytest.mark.usefixtures("client")
async def test_idle_embedded_serve_sleeps(settings: Settings, tmp_path: Path) -> None:
    """`botplatform serve` in embedded mode: in-process worker and scheduler, no Redis."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_"))}
    env.update(
        DATABASE_URL=settings.database_url,
        SECRET_KEY=settings.signing_key,
        AUTO_MIGRATE="false",
        LOG_DIR=str(tmp_path / "logs"),
        LOG_TO_STDOUT="false",
    )
    serve = subprocess.Popen(
        [sys.executable, "-m", "botplatform", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "serve.err").open("wb"),
    )
    try:
        async with httpx.AsyncClient(timeout=2) as http:

            async def up() -> bool:
                try:
                    health = await http.get(f"http://127.0.0.1:{port}/health/live")
                except httpx.HTTPError:
                    return False
                return health.status_code == 200

            await eventually(up, timeout=120, interval=0.1)  # a busy shared host starts slowly
        await asyncio.sleep(1.5)
        # The in-process scheduler fires its every-minute jobs (sweeps) on the minute: real
        # work, not polling, so the window stays clear of it.
        into_minute = time.time() % 60
        if into_minute > 60 - IDLE_WINDOW_SECONDS - 2:
            await asyncio.sleep(60 - into_minute + 3)
        share, wakeups = await _idle_share_and_wakeups(serve.pid)
        print(f"idle embedded serve: {share:.2%} of a core, {wakeups:.0f} wake-ups a second")
        assert wakeups < IDLE_WAKEUPS_PER_SECOND_MAX, f"an idle embedded serve woke {wakeups}/s"
        assert share < EMBEDDED_CORE_SHARE_GUARD, f"an idle embedded serve used {share:.1%}"
    except AssertionError:
        print((tmp_path / "serve.err").read_text()[-3000:])
        raise
    finally:
        serve.terminate()
        serve.wait(timeout=30)


@pytest.mark.usefixtures("client", "isolated_queue")
async def test_a_stop_ends_the_consumers_blocking_reads(settings: Settings) -> None:
    """A stopping worker does not wait out the idle bound on its blocked consumers."""
    if not settings.redis_url:
        pytest.skip("the in-memory consumers block at most a second (transport.py)")
    idle = settings.model_copy(
        update={"redis_url": ISOLATED_REDIS, "queue_idle_wait_ms": 4000, "worker_in_process": False}
    )
    runtime = Runtime.create(idle)
    try:
        runtime.jobs.start_worker(asyncio.get_running_loop(), threads=2)
        await asyncio.sleep(1.0)  # every consumer has found its queue empty and blocks for 4 s
        started = time.monotonic()
        await runtime.jobs.stop_worker()
        took = time.monotonic() - started
    finally:
        await runtime.close()
    print(f"stopped in {took * 1000:.0f} ms")
    # Waiting out the blocks would take about 3 s; a worker thread's own check is at most 1 s.
    assert took < 1.8, f"stopping took {took:.1f} s"
