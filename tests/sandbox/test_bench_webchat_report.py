"""The benchmark's webchat section (f) is written between its own markers: `--only webchat
--webchat-report` replaces it alone (twice gives the same file), and a full rewrite keeps it
and the other sections measured apart (scale-out, broadcasts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.sandbox.test_bench_fake_graph import bench_module

MACHINE = {"cpu": "CPU", "cores": 2, "ram_gib": 4, "os": "Linux"}


def _results() -> dict[str, Any]:
    step = {"offered_rate": 20.0, "achieved_rate": 20.0, "messages": 1200, "arrived": 1200}
    step |= {"p50_ms": 30.0, "p95_ms": 60.0, "p99_ms": 90.0, "max_ms": 120.0}
    rss = {"platform serve": 600.0, "platform worker": 480.0, "Redis server": 15.0}
    webchat = {
        "idle_sockets": 10_000,
        "active_visitors": 100,
        "open_seconds": 40.0,
        "rss_warm_mib": rss | {"platform serve": 230.0},
        "rss_idle_mib": rss,
        "rss_after_mib": rss,
        "processes": {"platform serve": 1, "platform worker": 3, "Redis server": 1},
        "serve_idle_cpu_share": 0.05,
        "steps": [step],
        "sockets_held_at_end": 10_101,
        "load_average": [3.0, 3.0, 3.0],
        "worker_processes": 2,
    }
    return {"machine": MACHINE, "started_at": "2026-12-04 15:00 UTC", "webchat": webchat}


def test_the_section_replaces_only_itself(tmp_path: Path) -> None:
    report = bench_module("report_webchat")
    output = tmp_path / "benchmarks.md"
    before = "# Benchmarks\n\n## Scale-out on loopback\n\nkept\n"
    output.write_text(before)
    report.write_section(_results(), output)
    once = output.read_text()
    report.write_section(_results(), output)
    assert output.read_text() == once
    assert once.startswith(before)
    assert "| idle widget sockets held by one app process | 10,000 under 1 GB" in once
    assert once.count("**met**") == 2
    assert "| platform worker (3 processes) |" in once


def test_a_full_rewrite_keeps_the_sections_measured_apart(tmp_path: Path) -> None:
    sections = bench_module("sections")
    text = (
        "# Old\n\n## Scale-out on loopback\n\nscale\n\n<!-- broadcast:start -->\n## (e) B\n\n"
        "b\n<!-- broadcast:end -->\n\n<!-- webchat:start -->\n## (f) W\n\nw\n<!-- webchat:end -->\n"
    )
    path = tmp_path / "benchmarks.md"
    path.write_text(text)
    scale = sections.without_markers(sections.section_of(path, "## Scale-out on loopback"))
    assert scale == "## Scale-out on loopback\n\nscale\n"
    assert sections.marked_block(text, "broadcast").startswith("<!-- broadcast:start -->\n")
    assert sections.marked_block(text, "webchat").endswith("w\n<!-- webchat:end -->\n")
    assert sections.marked_block(text, "missing") == ""
