"""The broadcast section of the report (e) has three parts: its generated head
(bench/broadcast.py), the real-processes block (bench/broadcast_procs.py, between its own
markers) and hand-written notes (`### ` headings). Each writer replaces only its own part."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.sandbox.test_bench_fake_graph import bench_module

MACHINE = {"cpu": "CPU", "cores": 2, "ram_gib": 4, "os": "Linux"}

REPORT = (
    "# Benchmarks\n\nbefore\n\n<!-- broadcast:start -->\n## (e) Broadcasts (issue 15)\n\n"
    "old generated figures\n\n### (e) What the figures say\n\nhand-written notes\n\n"
    "<!-- broadcast:end -->\n\n## After\n\nafter\n"
)


def _procs_results() -> dict[str, Any]:
    fairness = {
        "recipients": 10_000,
        "samples": 40,
        "idle_p99_ms": 50,
        "busy_p99_ms": 90,
        "idle_median_ms": 30,
        "busy_median_ms": 40,
        "ratio": 1.8,
        "ratio_floored": 1.8,
        "still_running": True,
        "broadcast_sends_meanwhile": 2_000,
        "load_1m": {"idle": 1.0, "busy_start": 1.5, "busy_end": 2.0},
    }
    throughput = {
        "recipients": 10_000,
        "cap_msg_s": 1_000,
        "killed_after_sends": 5_000,
        "materialise_s": 2.0,
        "sustained_msg_s": 200.0,
        "peak_msg_s": 400,
        "over_cap_seconds": 0,
        "duplicates": 0,
        "lost": 0,
        "delivery_unknown": 3,
        "delivery_unknown_that_arrived": 3,
        "platform_cpu_ms_per_send": 6.0,
        "cpu_ms_per_send": {"serve": 1.0, "workers": 1.0},
        "load_1m": {"start": 1.0, "at_kill": 2.0, "end": 2.0},
    }
    return {"started_at": "2026-12-05 09:00 UTC", "fairness": fairness, "throughput": throughput}


def _broadcast_results() -> dict[str, Any]:
    return {"resilience": {"passed": True, "tests": {"test_x": "PASSED"}}}


def test_each_writer_replaces_only_its_own_part(tmp_path: Path) -> None:
    procs, broadcast = bench_module("broadcast_procs"), bench_module("broadcast")
    output = tmp_path / "benchmarks.md"
    output.write_text(REPORT)

    procs.write_section(_procs_results(), output, MACHINE)
    text = output.read_text()
    assert "old generated figures" in text and "hand-written notes" in text
    assert text.index("old generated figures") < text.index("<!-- broadcast-procs:start -->")
    assert text.index("<!-- broadcast-procs:end -->") < text.index("### (e) What the figures")
    assert "ratio **1.80**" in text
    procs.write_section(_procs_results(), output, MACHINE)
    assert output.read_text() == text  # a second run replaces its block, nothing else

    broadcast.write_section(_broadcast_results(), output, MACHINE)
    rewritten = output.read_text()
    assert "old generated figures" not in rewritten
    assert "test_x: PASSED" in rewritten
    for kept in ("ratio **1.80**", "hand-written notes", "## After\n\nafter\n", "before\n"):
        assert kept in rewritten
    assert rewritten.count("<!-- broadcast:end -->") == 1
    broadcast.write_section(_broadcast_results(), output, MACHINE)
    assert output.read_text() == rewritten
