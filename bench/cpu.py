"""Where the CPU went during a phase, from /proc: per process under test (its whole session,
threads and children included), the database services, the load generator, and whatever
else ran on the machine meanwhile (two cores are shared, so a busy neighbour matters)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
DATABASE_COMMANDS = ("postgres", "redis-server")
QUIET_WINDOW_SECONDS = 2.0


def _stat_fields(pid: str) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # the process ended between listing and reading
        return None
    # The command name (field 2) may contain spaces; everything after its ")" is split-safe.
    return text.rsplit(")", 1)[1].split()


def _comm(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _processes() -> list[tuple[str, int, float]]:
    """(command name, session id, CPU seconds) of every live process."""
    rows = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or (fields := _stat_fields(pid)) is None:
            continue
        # After ")": state, ppid, pgrp, session, ...; utime and stime are fields 14 and 15.
        session, cpu_ticks = int(fields[3]), int(fields[11]) + int(fields[12])
        rows.append((_comm(pid), session, cpu_ticks / CLOCK_TICKS))
    return rows


def _machine_busy_seconds() -> float:
    """CPU seconds spent not idle, summed over all cores, since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS


@dataclass(frozen=True)
class Snapshot:
    at: float
    machine_busy: float
    by_session: dict[int, float]
    databases: float


def snapshot() -> Snapshot:
    by_session: dict[int, float] = {}
    databases = 0.0
    for comm, session, seconds in _processes():
        by_session[session] = by_session.get(session, 0.0) + seconds
        if comm in DATABASE_COMMANDS:
            databases += seconds
    return Snapshot(time.monotonic(), _machine_busy_seconds(), by_session, databases)


def usage(
    before: Snapshot,
    after: Snapshot,
    sessions: dict[str, int],
    load_generator_seconds: float,
    harness_seconds: float,
) -> dict[str, float]:
    """CPU seconds per label over the interval: each named session (process under test), the
    database services, the load generator, the harness's own checks (run.py counting rows),
    the rest of the machine, and the wall time."""
    result = {
        label: after.by_session.get(sid, 0.0) - before.by_session.get(sid, 0.0)
        for label, sid in sessions.items()
    }
    result["postgres+redis"] = after.databases - before.databases
    result["load generator"] = load_generator_seconds
    result["bench harness"] = harness_seconds
    busy = after.machine_busy - before.machine_busy
    result["other processes"] = max(0.0, busy - sum(result.values()))
    result["wall"] = after.at - before.at
    return {label: round(seconds, 2) for label, seconds in result.items()}


def wait_for_quiet(
    max_wait_seconds: float = 90.0,
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
