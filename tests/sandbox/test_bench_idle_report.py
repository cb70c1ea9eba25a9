"""The benchmark's idle section (d): a command of several processes (`botplatform worker`
with its worker processes and their bulk children) is judged per process, the target being
about each process, with the command's total shown beside it, without a verdict; and the
bench tells a worker process, a bulk child and the command itself apart."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from typing import Any

from tests.sandbox.test_bench_fake_graph import bench_module


def _idle(worker: dict[str, Any]) -> dict[str, Any]:
    measured = {
        "platform worker": worker,
        "platform serve": {"cpu_s": 0.08, "core_pct": 0.27},
        "Redis server": {"cpu_s": 0.1, "core_pct": 0.33},
        "window": {"cpu_s": 30.0, "core_pct": 100.0},
    }
    return {"started_at": "2026-12-08 02:00 UTC", "idle": {"postgres": {"idle": measured}}}


def test_a_command_of_several_processes_is_judged_per_process() -> None:
    report = bench_module("report_details")
    worker = {
        "cpu_s": 0.36,
        "core_pct": 1.2,
        "processes": [
            {"role": "the command", "cpu_s": 0.01, "core_pct": 0.03},
            {"role": "worker process 1", "cpu_s": 0.1, "core_pct": 0.33},
            {"role": "worker process 2", "cpu_s": 0.33, "core_pct": 1.1},
            {"role": "bulk child 1", "cpu_s": 0.05, "core_pct": 0.17},
        ],
    }
    rows = [line for line in report.idle_section(_idle(worker)) if line.startswith("| postgres")]
    assert rows[0] == "| postgres | platform worker, all 4 processes | 0.36 over 30 s | 1.20% | — |"
    # The busiest first, each with its own verdict.
    assert rows[1].startswith("| postgres | platform worker: worker process 2 | 0.33 over 30 s")
    assert rows[1].endswith("| 1.10% | **missed** |")
    assert rows[2].endswith("| 0.33% | **met** |")
    assert "| platform serve | 0.08 over 30 s | 0.27% | **met** |" in rows[-2]
    assert rows[-1].endswith("| 0.33% | — |")  # Redis is no platform process


def test_a_lone_process_keeps_its_one_row() -> None:
    report = bench_module("report_details")
    rows = [
        line
        for line in report.idle_section(_idle({"cpu_s": 0.06, "core_pct": 0.2}))
        if line.startswith("| postgres | platform worker")
    ]
    assert rows == ["| postgres | platform worker | 0.06 over 30 s | 0.20% | **met** |"]


def _spin(seconds: float) -> None:
    time.sleep(1.0)  # inside the measured window
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
    time.sleep(30)


def _command() -> None:
    """A session leader with a spawned child that spawns its own (a worker and its bulk
    child, as `botplatform worker` starts them)."""
    context = multiprocessing.get_context("spawn")
    child = context.Process(target=_child)
    child.start()
    child.join()


def _child() -> None:
    context = multiprocessing.get_context("spawn")
    grandchild = context.Process(target=_spin, args=(0.3,))
    grandchild.start()
    _spin(0.0)


def _roles(idle: Any, session: int) -> set[str]:
    return {idle.process_role(pid, session) for pid in idle.session_processes(session)}


def test_the_processes_of_a_command_are_measured_and_named() -> None:
    idle = bench_module("idle")
    code = "import tests.sandbox.test_bench_idle_report as t; t._command()"
    command = subprocess.Popen(
        [sys.executable, "-c", code], start_new_session=True, cwd=os.getcwd()
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "bulk child" not in _roles(idle, command.pid):
            time.sleep(0.05)
        measured = idle.measure({"platform worker": command.pid}, window_seconds=2.0)
    finally:
        command.kill()
        command.wait()
    processes = {p["role"]: p for p in measured["platform worker"]["processes"]}
    assert {"the command", "worker process", "bulk child"} <= set(processes), processes
    # The grandchild spins for 0.3 s of CPU during the window; the others sleep.
    assert processes["bulk child"]["cpu_s"] > 0.1, processes
    total = measured["platform worker"]["cpu_s"]
    assert abs(total - sum(p["cpu_s"] for p in processes.values())) < 0.02
