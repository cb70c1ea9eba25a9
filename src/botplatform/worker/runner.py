"""The `botplatform worker` and `botplatform scheduler` processes (production mode)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
from typing import Any

from botplatform.config import Settings, load_settings
from botplatform.kit import metrics
from botplatform.kit.logging import configure_logging, get_logger
from botplatform.runtime import Runtime
from botplatform.worker.bulk import BulkChild, bulk_niceness, die_with_parent
from botplatform.worker.queues import BULK_QUEUES, MESSAGE_QUEUES
from botplatform.worker.scheduler import Scheduler, schedules_for

log = get_logger("botplatform.worker")

#: The bulk children's metrics ports start this far above the workers' (WORKER_METRICS_PORT).
BULK_METRICS_OFFSET = 100


def _prepare(settings: Settings, metrics_port: int = 0) -> None:
    configure_logging(settings.log_dir, settings.log_level, settings.log_to_stdout)
    metrics.init_sentry(settings.sentry_dsn, settings.env, settings.sentry_traces_sample_rate)
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=settings.host)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handle(signum: int, _: Any) -> None:
        log.info("stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


def lower_priority(niceness: int) -> None:
    """Lowers this process's scheduling priority to `niceness` (never raises it)."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if niceness > current:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)


def worker_process(threads: int, index: int = 0) -> None:
    """One worker process: job coroutines run on a dedicated event loop thread that owns
    this process's database engine; dramatiq's threads consume the queues. With Redis and
    `WORKER_BULK_APART`, the bulk lanes run in a niced child process it supervises
    (worker/bulk.py), and this one consumes the message path's queues."""
    settings = load_settings()
    lower_priority(settings.worker_nice)
    apart = settings.worker_bulk_apart and bool(settings.redis_url)
    port = settings.worker_metrics_port + index if settings.worker_metrics_port else 0
    _prepare(settings, port)
    stop = _stop_on_signals()
    child = BulkChild(threads, index) if apart else None
    if child is not None:
        child.start()
    try:
        _consume(settings, threads, MESSAGE_QUEUES if apart else None, stop, child)
    finally:
        if child is not None:
            child.stop()


def bulk_process(threads: int, index: int, parent_pid: int) -> None:
    """A worker's bulk child (worker/bulk.py): the `broadcasts` and `statuses` queues."""
    die_with_parent(parent_pid)
    settings = load_settings()
    lower_priority(bulk_niceness(settings.worker_nice, settings.worker_bulk_nice))
    # Its metrics beside the parents' ports: WORKER_METRICS_PORT + BULK_METRICS_OFFSET + index.
    port = settings.worker_metrics_port + BULK_METRICS_OFFSET + index
    _prepare(settings, port if settings.worker_metrics_port else 0)
    _consume(settings, threads, BULK_QUEUES, _stop_on_signals(), None)


def _consume(
    settings: Settings,
    threads: int,
    queues: frozenset[str] | None,
    stop: threading.Event,
    child: BulkChild | None,
) -> None:
    """Runs the worker on `queues` (None: all) until `stop`, keeping `child` alive."""
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, name="job-loop", daemon=True)
    loop_thread.start()
    runtime = Runtime.create(settings)
    asyncio.run_coroutine_threadsafe(runtime.start(), loop).result(timeout=30)
    metrics.watch_queue_depth(runtime.jobs.depths)
    runtime.jobs.start_worker(loop, threads, queues)
    while not stop.wait(1):
        if child is not None:
            child.keep_alive()
    if child is not None:
        child.ask_to_stop()  # both stop their jobs at once; the parent joins it after
    asyncio.run_coroutine_threadsafe(runtime.close(), loop).result(timeout=120)
    loop.call_soon_threadsafe(loop.stop)
    loop_thread.join(timeout=5)
    log.info("worker_stopped")


def run_workers(processes: int, threads: int) -> None:
    if processes == 1:
        worker_process(threads)
        return
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=worker_process, args=(threads, index), name=f"worker-{index}")
        for index in range(processes)
    ]
    for child in children:
        child.start()
    stop = _stop_on_signals()
    while not stop.is_set() and any(child.is_alive() for child in children):
        stop.wait(1)
    for child in children:
        if child.is_alive():
            child.terminate()  # SIGTERM: each child stops gracefully
    for child in children:
        child.join()


def run_scheduler() -> None:
    settings = load_settings()
    _prepare(settings)

    async def main() -> None:
        runtime = Runtime.create(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        scheduler = Scheduler(
            runtime.kv,
            runtime.jobs.send,
            schedules_for(settings),
            lock_seconds=settings.scheduler_lock_seconds,
        )
        try:
            await scheduler.run(stop)
        finally:
            await runtime.close()

    asyncio.run(main())
