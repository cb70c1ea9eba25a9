"""A lane: how many jobs of one kind a worker process runs at once, out of its threads, so
that a flood of them (a broadcast, its delivery statuses) leaves the other threads to the
message path. A job that finds its lane full queues itself again a moment later and
returns, holding no thread. A process that runs no message path (a worker's bulk child) gives
its lanes every thread (`JobQueue.lane_share`): there a bounce only costs Redis round trips."""

from __future__ import annotations

import math
import threading


class Lane:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0

    def enter(self, threads: int, share: float) -> bool:
        with self._lock:
            if self._running >= max(1, math.floor(threads * share)):
                return False
            self._running += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self._running -= 1
