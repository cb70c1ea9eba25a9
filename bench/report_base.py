"""Turns one run's results into docs/benchmarks.md, CPU first: for each scenario the CPU per
message of every platform process next to pywa's in the same run, then the wall rates, the
SQL round trips, each target of issue 14 marked met or missed with its ratio, and (where a
target is missed) where the workers' CPU went."""

from __future__ import annotations

import math
from typing import Any

from figures import (
    BACKENDS,
    PLATFORM_LABELS,
    ROUND_TRIPS_MAX,
    References,
    best_step,
    ceiling_found,
    cpu_ms,
    messages_of,
    round_trips_per_message,
    sustained_rate,
    targets,
)

# A neighbour using more than this share of a core during a phase is flagged in the report.
# Below it is what a quiet machine shows anyway (kernel threads: loopback networking, WAL).
NOISY_CORES = 0.25


def num(value: float | None, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    return f"{value:,.{digits}f}"


def ratio(value: float | None, reference: float | None) -> str:
    if not value or not reference:
        return "—"
    return f"{value / reference:.2f}x"


def verdict(met: bool) -> str:
    return "**met**" if met else "**missed**"


def first_failure(end_to_end: dict[str, Any]) -> str:
    for step in end_to_end["steps"]:
        if not step["passed"]:
            return f"{num(step['offered_rps'])}/s: " + "; ".join(step["reasons"])
    return "none (every step passed)"


def machine_section(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    packages = ", ".join(f"{name} {version}" for name, version in m["packages"].items())
    return [
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| CPU | {m['cpu']}, {m['cores']} cores |",
        f"| RAM | {m['ram_gib']} GiB |",
        f"| OS | {m['os']} |",
        f"| Python | {m['python']} |",
        f"| PostgreSQL / Redis | {m['postgresql']} / {m['redis']} |",
        f"| packages | {packages} |",
        "",
    ]


# -- phases ------------------------------------------------------------------------------------


def phases(results: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(scenario, target, result) of every measured phase, in the order of the report."""
    out: list[tuple[str, str, dict[str, Any]]] = []
    if "bare" in results:
        out.append(("(a)", "bare ASGI (ceiling)", results["bare"]))
    if "pywa" in results:
        out.append(("(a)", "pywa no-op", results["pywa"]["inbound"]))
    for name in BACKENDS:
        if name in results:
            inbound = results[name]["inbound"]
            out.append(("(a)", f"platform {name}: acknowledging", inbound))
            out.append(("(a')", f"platform {name}: processing that backlog", inbound["processing"]))
    if "pywa" in results:
        out.append(("(b)", "pywa echo", results["pywa"]["end_to_end"]))
    for name in BACKENDS:
        if name in results:
            out.append(("(b)", f"platform {name}", results[name]["end_to_end"]))
    if "pywa" in results and "flow" in results["pywa"]:
        flow = results["pywa"]["flow"]
        out.append(("(c)", f"pywa echo, {flow_rate_label(flow)}", flow))
    for name in BACKENDS:
        if name in results and "flow" in results[name]:
            out.append(("(c)", f"platform {name}", results[name]["flow"]))
        if name in results and "flow_sustained" in results[name]:
            sustained = results[name]["flow_sustained"]
            out.append(("(c)", f"platform {name}, {flow_rate_label(sustained)}", sustained))
    return out


def flow_rate_label(result: dict[str, Any]) -> str:
    """How fast a bot-flow phase's messages were offered (three per conversation)."""
    return f"{3 * float(result['rate']):g} msg/s offered"


def conditions_section(results: dict[str, Any]) -> list[str]:
    """The machine is shared: say how busy the rest of it was during each phase."""
    noisy = []
    for scenario, label, result in phases(results):
        usage = result["cpu"]
        cores = usage["other processes"] / usage["wall"] if usage["wall"] else 0.0
        if cores > NOISY_CORES:
            noisy.append(f"{scenario} {label} ({cores:.2f} cores)")
    if not noisy:
        return [
            "Measurement conditions: no other process used more than "
            f"{NOISY_CORES:.2f} cores on average during any phase.",
            "",
        ]
    return [
        "**Measurement conditions: the machine was shared.** Each phase waits (a little) for "
        "the machine to quieten before it starts, but other processes (other checkouts' test "
        "runs) were busy during: " + "; ".join(noisy) + ". CPU per message is each process's "
        "own CPU time, which a neighbour changes little; wall rates and latencies are lower "
        "and longer than a quiet machine would give.",
        "",
    ]


# -- targets and CPU per message ---------------------------------------------------------------


def targets_section(results: dict[str, Any]) -> list[str]:
    lines = [
        "## Targets (issue 14)",
        "",
        "On the production backend: PostgreSQL, Redis, 2 worker processes. Each reference is "
        "pywa measured in the same run; CPU per message is the platform's total (serve, "
        "workers, PostgreSQL backends, Redis server), see the next section.",
        "",
        "| target | required | measured | ratio | verdict |",
        "|---|---|---|---|---|",
    ]
    for target in targets(results):
        shown = f"{target.ratio:.2f}x" if target.ratio is not None else "—"
        if target.name.endswith("round trips per auto-replied message") and target.ratio:
            shown = f"{target.ratio:.2f}x the limit"
        lines.append(
            f"| {target.name} | {target.required} | {target.measured} | {shown} "
            f"| **{target.verdict}** |"
        )
    return [*lines, ""]


def _wall(scenario: str, result: dict[str, Any]) -> str:
    if scenario == "(a)":
        return f"{num(result['rps'])} req/s, p99 {num(result['p99_ms'], 1)} ms"
    if scenario == "(a')":
        return f"{num(result['events'])} events in {result['drain_s']} s"
    if scenario == "(b)":
        best = best_step(result)
        if best is None:
            return "no step sustained"
        bound = "" if ceiling_found(result) else "+"
        return (
            f"{num(sustained_rate(result))}{bound}/s sustained, p99 {num(best['e2e_p99_ms'], 1)} ms"
        )
    return (
        f"{num(result['messages_per_s'], 1)} msg/s, {result['completed']}/"
        f"{result['conversations']} conversations, p99 {num(result['e2e_p99_ms'], 1)} ms"
    )


def cpu_per_message_section(results: dict[str, Any]) -> list[str]:
    warmup, refs = results["settings"]["warmup"], References.of(results)
    lines = [
        "## CPU per message",
        "",
        "CPU milliseconds per message (per acknowledged webhook in (a), per processed event "
        "in (a'), per inbound message in (b) and (c)), from `/proc/<pid>/stat` (utime + "
        "stime, all threads and child processes), over the whole phase divided by every "
        "message it sent (warm-up included). Platform total = serve + workers + the "
        "PostgreSQL backends serving the bench database + the run's own Redis server. The "
        "load generator, the fake Graph API, the SQL counting relay and the profiler are "
        "apparatus, listed apart in the last section. Reference for (a): pywa no-op; for "
        "(b) and (c): pywa echo.",
        "",
        "| scenario | target | messages | total CPU ms/msg | serve | workers | PostgreSQL "
        "| Redis | x pywa | wall |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for scenario, label, result in phases(results):
        pywa_like = label.startswith(("pywa", "bare"))
        labels = ("pywa", "bare app") if pywa_like else PLATFORM_LABELS
        total = cpu_ms(result, labels, warmup)
        parts = [
            num(cpu_ms(result, (part,), warmup), 2) if not pywa_like else "—"
            for part in PLATFORM_LABELS
        ]
        reference = refs.noop_ms if scenario == "(a)" else refs.echo_ms
        shown_ratio = ratio(total, reference) if scenario != "(a')" else "—"
        lines.append(
            f"| {scenario} | {label} | {num(messages_of(result, warmup))} | **{num(total, 2)}** "
            f"| {' | '.join(parts)} | {shown_ratio} | {_wall(scenario, result)} |"
        )
    lines += [
        "",
        "In (a) the production workers are paused (SIGSTOP) while the webhooks are "
        "acknowledged, so (a) is the acknowledgement path alone (serve, PostgreSQL, Redis); "
        "(a') is the processing of that backlog once they resume (no reply: auto-reply is "
        "off in (a)). Embedded (SQLite) runs its worker inside `serve`, so its (a) includes "
        "whatever processing happened meanwhile.",
        "",
    ]
    return lines


def sql_section(results: dict[str, Any]) -> list[str]:
    pg = results.get("postgres")
    if not pg:
        return []
    warmup = results["settings"]["warmup"]
    rows = [
        ("(a) acknowledging", pg["inbound"]),
        ("(a') processing", pg["inbound"]["processing"]),
        ("(b) auto-reply", pg["end_to_end"]),
    ]
    if "flow" in pg:
        rows.append(("(c) bot flow", pg["flow"]))
    if "flow_sustained" in pg:
        rows.append(
            (f"(c) bot flow, {flow_rate_label(pg['flow_sustained'])}", pg["flow_sustained"])
        )
    lines = [
        "## SQL round trips per message (PostgreSQL)",
        "",
        "Counted by a relay between the platform's processes and PostgreSQL "
        "(`bench/pgcount.py`), whatever library issues them: a round trip is a simple "
        "`Query` or a `Sync` closing a batch of extended-protocol messages (an "
        "`executemany` pipelines its rows before one Sync and counts once); statements are "
        "counted by their first word. The relay's own CPU is apparatus. Target: "
        f"≤ {ROUND_TRIPS_MAX:.0f} round trips per auto-replied message in (b).",
        "",
        "| phase | messages | round trips | per message | statements per message |",
        "|---|---|---|---|---|",
    ]
    for label, result in rows:
        sql, count = result.get("sql") or {}, messages_of(result, warmup)
        statements = ", ".join(
            f"{kind} {n / count:.1f}"
            for kind, n in sorted(sql.get("statements", {}).items(), key=lambda kv: -kv[1])
        )
        lines.append(
            f"| {label} | {num(count)} | {num(sql.get('round_trips'))} "
            f"| {num(round_trips_per_message(result, warmup), 1)} | {statements or '—'} |"
        )
    return [*lines, ""]
