"""What one broadcast send costs in CPU: one broadcast of `--recipients` to one channel capped
at `--rate` msg/s, against the fake Graph API (its status webhooks off: the send path alone),
on a throwaway PostgreSQL and Redis (tests/broadcast/stack.py) with `--workers` worker
processes. Measured from /proc while the provider sees the sends: the worker processes' CPU
seconds and the PostgreSQL backends' (the harness's process — app and fake provider — is
counted apart), divided by the sends; and the rate. With `--py-spy DIR`, each worker is sampled
(`py-spy record --format raw`) meanwhile.

`uv run --frozen --group bench python bench/broadcast_cpu.py --recipients 3000`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.broadcast import ArrivalGraph, start_broadcast  # noqa: E402
from bench.cpu import _cpu, _stat_fields  # noqa: E402
from tests.broadcast.helpers import (  # noqa: E402
    lift_broadcast_quotas,
)
from tests.broadcast.stack import own_stack  # noqa: E402
from tests.conftest import eventually  # noqa: E402


def _parents() -> dict[int, int]:
    """Every live process's parent, by pid."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(entry.name)
            if fields:
                parents[int(entry.name)] = int(fields[1])
    return parents


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its descendants: the live ones (a worker's bulk child,
    which does the sending: worker/bulk.py) and the reaped ones (cutime, cstime)."""
    parents = _parents()
    tree, grown = {pid}, True
    while grown:
        children = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= children
        grown = bool(children)
    total = 0.0
    for member in tree:
        fields = _stat_fields(str(member))
        if fields:
            total += _cpu(fields)
    fields = _stat_fields(str(pid))
    if fields:
        total += (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    return total


def _postgres_cpu(data_directory: Path) -> float:
    """CPU seconds of the throwaway cluster's processes (its postmaster, whose pid opens
    postmaster.pid, and every process it started), not of another cluster on the host."""
    postmaster = int((data_directory / "postmaster.pid").read_text().split()[0])
    return sum(
        _cpu(fields)
        for pid, parent in _parents().items()
        if pid == postmaster or parent == postmaster
        if (fields := _stat_fields(str(pid)))
    )


def _spies(pids: list[int], directory: Path) -> list[subprocess.Popen[bytes]]:
    """py-spy recording each process (raw, 100 Hz, idle frames kept) into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or "py-spy"
    options = ["record", "--format", "raw", "--rate", "100", "--idle"]
    return [
        subprocess.Popen(  # noqa: S603 - our own tool on our own processes
            [spy, *options, "-o", str(directory / f"process-{pid}.txt"), "--pid", str(pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in pids
    ]


async def run(recipients: int, rate: int, workers: int, spy: Path | None) -> dict[str, Any]:
    async with own_stack(graph=ArrivalGraph) as stack:
        graph = stack.wa
        assert isinstance(graph, ArrivalGraph)
        graph.auto_status = False
        await lift_broadcast_quotas(stack.runtime)
        for _ in range(workers):
            stack.start_worker()
        await start_broadcast(stack, graph, recipients, rate)
        await eventually(lambda: len(graph.arrivals) >= 1, timeout=600, interval=0.01)
        pids = [w.pid for w in stack.workers]
        harness = os.getpid()  # the app (its worker off) and the fake Graph API
        spies = _spies([*pids, harness], spy) if spy is not None else []
        before_workers = sum(_tree_cpu(pid) for pid in pids)
        before_pg = _postgres_cpu(stack.postgres.directory / "data")
        before_harness = time.process_time()
        before_sends, started = len(graph.arrivals), time.monotonic()
        load_start = os.getloadavg()[0]
        target = int(recipients * 0.95)
        await eventually(lambda: len(graph.arrivals) >= target, timeout=7_200, interval=0.05)
        elapsed = time.monotonic() - started
        sends = len(graph.arrivals) - before_sends
        workers_cpu = sum(_tree_cpu(pid) for pid in pids) - before_workers
        pg_cpu = _postgres_cpu(stack.postgres.directory / "data") - before_pg
        harness_cpu = time.process_time() - before_harness
        for process in spies:
            process.send_signal(2)
        for process in spies:
            process.wait(30)
        arrivals = [moment for moment, _ in graph.arrivals]
        first, last = arrivals[0], arrivals[-1]
    return {
        "recipients": recipients,
        "cap_msg_s": rate,
        "worker_processes": workers,
        "sends_measured": sends,
        "seconds": round(elapsed, 1),
        "msg_s_measured": round(sends / elapsed, 1),
        "sustained_msg_s": round(len(arrivals) / max(last - first, 1e-9), 1),
        "worker_cpu_ms_per_send": round(1000 * workers_cpu / max(sends, 1), 2),
        "postgres_cpu_ms_per_send": round(1000 * pg_cpu / max(sends, 1), 2),
        "harness_cpu_ms_per_send": round(1000 * harness_cpu / max(sends, 1), 2),
        "load_average_1m": [round(load_start, 2), round(os.getloadavg()[0], 2)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=3_000)
    parser.add_argument("--rate", type=int, default=1_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--py-spy", type=Path, default=None)
    args = parser.parse_args()
    figures = asyncio.run(run(args.recipients, args.rate, args.workers, args.py_spy))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
