"""Scenario (d): what the platform costs when nothing happens. Every process of a started
platform (serve, worker, scheduler), the PostgreSQL backends serving its database and the
Redis server it uses, measured from /proc (utime + stime) over a window with no traffic."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import asyncpg

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
WINDOW_SECONDS = 30.0
SETTLE_SECONDS = 5.0  # after the smoke test: its jobs finish, consumers find empty queues


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name; None once it has gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of one process (all its threads); None once it has gone."""
    fields = _stat(pid)
    return None if fields is None else (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def session_cpu_seconds(session: int) -> float:
    """CPU seconds of every live process in a session (a process under test and its
    children: the bench starts each in its own session)."""
    return sum(session_processes(session).values())


def session_processes(session: int) -> dict[int, float]:
    """CPU seconds of each live process in a session, by pid."""
    found = {}
    for entry in os.listdir("/proc"):
        fields = _stat(entry) if entry.isdigit() else None
        if fields is not None and int(fields[3]) == session:
            found[int(entry)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return found


def _numbered(roles: list[str]) -> list[str]:
    """ "worker process 1", "worker process 2" where a role comes more than once."""
    seen: dict[str, int] = {}
    numbered = []
    for role in roles:
        seen[role] = seen.get(role, 0) + 1
        numbered.append(f"{role} {seen[role]}" if roles.count(role) > 1 else role)
    return numbered


def process_role(pid: int, session: int) -> str:
    """What one process of a session is: the command itself, or, under `botplatform worker`,
    a worker process, a worker's bulk child (worker/bulk.py) or multiprocessing's resource
    tracker."""
    if pid == session:
        return "the command"
    fields = _stat(pid)
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        fields = None
    if fields is None:
        return "gone"
    parent = int(fields[1])
    if "resource_tracker" in command:
        return "resource tracker"
    if "spawn_main" in command:
        return "worker process" if parent == session else "bulk child"
    return "child process"


async def _backend_pids(dsn: str, database: str) -> set[int]:
    connection = await asyncpg.connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await connection.close()
    return {int(row["pid"]) for row in rows}


def postgres_backend_pids(dsn: str, database: str) -> set[int]:
    """The server processes of the connections the platform holds to its database."""
    return asyncio.run(_backend_pids(dsn, database))


def measure(
    sessions: dict[str, int],
    pg: tuple[str, str] | None = None,
    window_seconds: float = WINDOW_SECONDS,
) -> dict[str, dict[str, Any]]:
    """CPU seconds and share of one core per label over `window_seconds` of no traffic.
    `sessions`: label → session id of a process under test (the run's own Redis server is
    one of them); `pg`: (admin DSN, database)."""
    before = {label: session_processes(sid) for label, sid in sessions.items()}
    backends = postgres_backend_pids(*pg) if pg else set()
    pg_before = {pid: cpu_seconds(pid) for pid in backends}
    started = time.monotonic()
    time.sleep(window_seconds)
    wall = time.monotonic() - started
    after = {label: session_processes(sid) for label, sid in sessions.items()}
    used = {label: sum(after[label].values()) - sum(before[label].values()) for label in sessions}
    if pg:
        total = 0.0
        for pid, first in pg_before.items():
            last = cpu_seconds(pid)
            if first is not None and last is not None:
                total += last - first
        used[f"PostgreSQL backends ({len(pg_before)})"] = total
    # A command of several processes (`botplatform worker`: its worker processes, each with
    # its bulk child) also gets each process's own figure, the one the target is about.
    each: dict[str, list[dict[str, Any]]] = {}
    for label, sid in sessions.items():
        kept = sorted(set(before[label]) & set(after[label]))
        if len(kept) > 1:
            roles = _numbered([process_role(pid, sid) for pid in kept])
            each[label] = [
                {
                    "role": role,
                    "cpu_s": round(after[label][pid] - before[label][pid], 3),
                    "core_pct": round(100 * (after[label][pid] - before[label][pid]) / wall, 2),
                }
                for pid, role in zip(kept, roles, strict=True)
            ]
    return {
        label: {"cpu_s": round(seconds, 3), "core_pct": round(100 * seconds / wall, 2)}
        | ({"processes": each[label]} if label in each else {})
        for label, seconds in used.items()
    } | {"window": {"cpu_s": round(wall, 1), "core_pct": 100.0}}
