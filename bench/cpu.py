"""Where the CPU went during a phase, from /proc: per process under test (its whole session,
threads and children included), the PostgreSQL backends serving the bench database, the load
generator, and whatever else ran on the machine meanwhile (two cores are shared, so a busy
neighbour matters).

PostgreSQL backends are found by their process title (`postgres: USER DATABASE HOST(PORT)
...`), sampled through the phase so that a connection opened and closed in it still counts:
only backends of the bench database reached over TCP (the platform's), never the harness's
own checks, which connect over the Unix socket (`[local]`), nor another database's."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
QUIET_WINDOW_SECONDS = 2.0
PG_BACKENDS = "PostgreSQL backends"
SAMPLE_SECONDS = 1.0


def _stat_fields(pid: str) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # the process ended between listing and reading
        return None
    # The command name (field 2) may contain spaces; everything after its ")" is split-safe.
    return text.rsplit(")", 1)[1].split()


def _cpu(fields: list[str]) -> float:
    # After ")": state, ppid, pgrp, session, ...; utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\x00", b" ").decode()
    except OSError:
        return ""


def session_seconds() -> dict[int, float]:
    """CPU seconds of every live process, summed per session."""
    by_session: dict[int, float] = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit() and (fields := _stat_fields(pid)) is not None:
            session = int(fields[3])
            by_session[session] = by_session.get(session, 0.0) + _cpu(fields)
    return by_session


def pg_backends(database: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving `database` over TCP."""
    found: dict[int, float] = {}
    marker = f" {database} "
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if "(postgres)" not in stat:  # the command name, cheaper than every cmdline
            continue
        title = _cmdline(pid)
        if title.startswith("postgres: ") and marker in title and "[local]" not in title:
            found[int(pid)] = _cpu(stat.rsplit(")", 1)[1].split())
    return found


def _machine_busy_seconds() -> float:
    """CPU seconds spent not idle, summed over all cores, since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


@dataclass
class _Backends:
    """First and last CPU seen of each backend; one born during the phase starts at 0."""

    first: dict[int, float] = field(default_factory=dict)
    last: dict[int, float] = field(default_factory=dict)

    def seconds(self) -> float:
        return sum(last - self.first.get(pid, 0.0) for pid, last in self.last.items())


class Meter:
    """Measures one phase: `start()`, the load, `stop()` → CPU seconds per label."""

    def __init__(self, sessions: dict[str, int], database: str | None = None) -> None:
        self.sessions = sessions
        self.database = database
        self._backends = _Backends()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._started = time.monotonic()
        self._busy = _machine_busy_seconds()
        self._by_session = session_seconds()
        if self.database:
            self._backends.first = pg_backends(self.database)
            self._backends.last = dict(self._backends.first)
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()

    def _sample(self) -> None:
        assert self.database
        while not self._stop.wait(SAMPLE_SECONDS):
            self._backends.last.update(pg_backends(self.database))

    def stop(self, extra: dict[str, float]) -> dict[str, float]:
        """CPU seconds per label, plus `extra` (apparatus measured elsewhere: the load
        generator, the harness), the rest of the machine and the wall time."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._backends.last.update(pg_backends(self.database or ""))
        by_session = session_seconds()
        result = {
            label: by_session.get(sid, 0.0) - self._by_session.get(sid, 0.0)
            for label, sid in self.sessions.items()
        }
        if self.database:
            result[PG_BACKENDS] = self._backends.seconds()
        result |= extra
        busy = _machine_busy_seconds() - self._busy
        result["other processes"] = max(0.0, busy - sum(result.values()))
        result["wall"] = time.monotonic() - self._started
        return {label: round(seconds, 3) for label, seconds in result.items()}


def wait_for_quiet(
    max_wait_seconds: float = 10.0,
    threshold_cores: float = 0.15,
    window_seconds: float = QUIET_WINDOW_SECONDS,
) -> tuple[float, float]:
    """Waits (bounded) until the machine is nearly idle before a phase starts, so that a
    neighbour's burst (another job on the shared machine) does not land in the measurement.
    Call it while the servers under test are idle. Returns (seconds waited, cores in use)."""
    started = time.monotonic()
    while True:
        before = _machine_busy_seconds()
        time.sleep(window_seconds)
        cores = (_machine_busy_seconds() - before) / window_seconds
        waited = time.monotonic() - started
        if cores <= threshold_cores or waited >= max_wait_seconds:
            return round(waited, 1), round(cores, 2)
