"""The bulk lanes in a process of their own: each `botplatform worker` process (with Redis)
starts one child that consumes only the `broadcasts` and `statuses` queues, niced
`WORKER_BULK_NICE` more than itself, while the parent consumes the message path's queues.

Inside one process, a broadcast's chunks and the flood of statuses it brings back share the
event loop and the interpreter with customers' messages: priorities order the jobs, not the
CPU. Apart, the kernel's scheduler gives the message path the CPU first, and the bulk work
takes what is left.

The parent supervises its child: started with the worker, started again if it dies, stopped
(SIGTERM, then SIGKILL after the grace) when the worker stops. A parent that dies without
stopping it (SIGKILL, OOM) is noticed by the kernel: the child asks for SIGTERM on its
parent's death (`PR_SET_PDEATHSIG`, Linux) and stops as gracefully as it would have been
stopped; where that call does not exist, a thread watches its parent id instead."""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.process import BaseProcess

from botplatform.kit.logging import get_logger

log = get_logger("botplatform.worker")

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
#: A child that dies sooner than this after its start waits this long before the next start.
RESTART_AFTER_SECONDS = 1.0
#: How long a stopping child may take (its jobs' grace and the runtime's close), then SIGKILL.
STOP_GRACE_SECONDS = 60.0
#: How often the fallback watcher looks at the parent id.
WATCH_PARENT_SECONDS = 1.0


def bulk_niceness(worker_nice: int, bulk_nice: int) -> int:
    return min(19, worker_nice + bulk_nice)


def die_with_parent(parent_pid: int) -> None:
    """This process gets SIGTERM when its parent dies; if the parent is already gone (it died
    before the call), it stops at once."""
    if not _ask_kernel(signal.SIGTERM):
        threading.Thread(
            target=_watch_parent, args=(parent_pid,), name="watch-parent", daemon=True
        ).start()
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGTERM)


def _ask_kernel(signum: int) -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0)) == 0
    except (OSError, AttributeError):  # not Linux
        return False


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(WATCH_PARENT_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)


class BulkChild:
    """The parent's handle on its bulk child; `keep_alive` and `stop` run on one thread (the
    one that started it: the kernel's parent-death signal follows the starting thread)."""

    def __init__(self, threads: int, index: int) -> None:
        self.threads, self.index = threads, index
        self.process: BaseProcess | None = None
        self.started_at = 0.0
        self.starts = 0

    def start(self) -> None:
        from botplatform.worker.runner import bulk_process

        context = multiprocessing.get_context("spawn")
        process = context.Process(
            target=bulk_process,
            args=(self.threads, self.index, os.getpid()),
            name=f"worker-{self.index}-bulk",
        )
        process.start()
        self.process, self.started_at = process, time.monotonic()
        self.starts += 1
        log.info("bulk_worker_started", pid=process.pid, starts=self.starts)

    def keep_alive(self) -> None:
        """Starts the child again if it died (not sooner than RESTART_AFTER_SECONDS after
        its last start: a child that cannot start does not spin)."""
        process = self.process
        if process is None or process.is_alive():
            return
        if time.monotonic() - self.started_at < RESTART_AFTER_SECONDS:
            return
        log.warning("bulk_worker_died", pid=process.pid, exitcode=process.exitcode)
        process.close()
        self.start()

    def ask_to_stop(self) -> None:
        """SIGTERM, without waiting: it stops its jobs while the parent stops its own."""
        process = self.process
        if process is not None and process.is_alive():
            process.terminate()

    def stop(self, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.is_alive():
            process.terminate()  # SIGTERM: it stops gracefully
            process.join(grace_seconds)
        if process.is_alive():
            process.kill()
            process.join(5)
