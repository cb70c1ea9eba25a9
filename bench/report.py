"""Turns one run's results into docs/benchmarks.md: machine, method, every figure, every ratio
to the references measured in the same run, and each target marked met or missed."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

# "A similar p99" for target (a), made explicit: no more than twice pywa's.
SIMILAR_P99_FACTOR = 2.0
INBOUND_TARGET = 1.0  # x pywa's no-op rate
END_TO_END_TARGET = 4.0  # x pywa's sustainable echo rate
BACKENDS = ("sqlite", "postgres")


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


# -- pieces of the results --------------------------------------------------------------------


def best_step(end_to_end: dict[str, Any]) -> dict[str, Any] | None:
    best = end_to_end.get("best")
    return dict(best) if best else None


def sustained_rate(end_to_end: dict[str, Any]) -> float:
    best = best_step(end_to_end)
    return float(best["offered_rps"]) if best else 0.0


def ceiling_found(end_to_end: dict[str, Any]) -> bool:
    """False when every step passed: the real limit is above the highest rate offered."""
    return any(not step["passed"] for step in end_to_end["steps"])


def first_failure(end_to_end: dict[str, Any]) -> str:
    for step in end_to_end["steps"]:
        if not step["passed"]:
            return f"{num(step['offered_rps'])}/s: " + "; ".join(step["reasons"])
    return "none (every step passed)"


# -- sections ---------------------------------------------------------------------------------


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


# A neighbour using more than this share of a core during a phase is flagged in the report.
# Below it is what a quiet machine shows anyway: kernel threads (loopback networking, WAL
# flushes) come to about 0.15 cores during the PostgreSQL phases.
NOISY_CORES = 0.25


def _phases(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    phases = [
        ("(a) bare", results["bare"]),
        ("(a) pywa no-op", results["pywa"]["inbound"]),
        ("(b) pywa echo", results["pywa"]["end_to_end"]),
    ]
    for name in BACKENDS:
        phases += [
            (f"(a) platform {name}, incl. processing the backlog", results[name]["inbound"]),
            (f"(b) platform {name}", results[name]["end_to_end"]),
        ]
    return phases


def conditions_section(results: dict[str, Any]) -> list[str]:
    """The machine is shared: say how busy the rest of it was during each phase."""
    noisy = []
    for label, result in _phases(results):
        usage = result["cpu"]
        cores = usage["other processes"] / usage["wall"] if usage["wall"] else 0.0
        if cores > NOISY_CORES:
            noisy.append(f"{label} ({cores:.2f} cores)")
    if not noisy:
        return [
            "Measurement conditions: no other process used more than "
            f"{NOISY_CORES:.2f} cores on average during any phase.",
            "",
        ]
    return [
        "**Measurement conditions: the machine was shared.** Each phase waits (up to 90 s) "
        "for the machine to be idle before it starts, but other processes (for example "
        "another checkout's test run) were busy during: " + "; ".join(noisy) + ". Those "
        "figures are lower than a quiet machine would give; the CPU table below shows how "
        "much was taken.",
        "",
    ]


def targets_section(results: dict[str, Any]) -> list[str]:
    pywa_in = results["pywa"]["inbound"]
    pywa_rate = sustained_rate(results["pywa"]["end_to_end"])
    pywa_bound = "" if ceiling_found(results["pywa"]["end_to_end"]) else " (a lower bound)"
    lines = [
        "## Targets",
        "",
        "| target | required | measured | verdict |",
        "|---|---|---|---|",
    ]
    for name in BACKENDS:
        inbound = results[name]["inbound"]
        rate_ok = inbound["rps"] >= INBOUND_TARGET * pywa_in["rps"]
        p99_ok = inbound["p99_ms"] <= SIMILAR_P99_FACTOR * pywa_in["p99_ms"]
        lines.append(
            f"| (a) durable inbound, {name} | ≥ {INBOUND_TARGET:.1f}x pywa no-op "
            f"({num(pywa_in['rps'])} req/s) at p99 ≤ {SIMILAR_P99_FACTOR:.0f}x pywa's "
            f"({num(pywa_in['p99_ms'], 1)} ms), durable | {num(inbound['rps'])} req/s "
            f"({ratio(inbound['rps'], pywa_in['rps'])}), p99 {num(inbound['p99_ms'], 1)} ms, "
            f"durable: {'yes' if inbound['durable'] else 'NO'} "
            f"| {verdict(rate_ok and p99_ok and inbound['durable'])} |"
        )
    for name in BACKENDS:
        rate = sustained_rate(results[name]["end_to_end"])
        lines.append(
            f"| (b) end to end, {name} | ≥ {END_TO_END_TARGET:.0f}x pywa echo "
            f"({num(pywa_rate)}/s{pywa_bound}) = {num(END_TO_END_TARGET * pywa_rate)}/s "
            f"| {num(rate)}/s ({ratio(rate, pywa_rate)}) "
            f"| {verdict(rate >= END_TO_END_TARGET * pywa_rate)} |"
        )
    return [*lines, ""]


IDLE_CORE_PCT_MAX = 1.0  # an idle platform process may use at most this share of a core
IDLE_START = "<!-- idle scenario: start -->"
IDLE_END = "<!-- idle scenario: end -->"
UNCAPPED_PLAN = "enterprise"  # bench/target_platform.py moves the bench workspace onto it


def idle_section(results: dict[str, Any]) -> list[str]:
    """(d): CPU of each process of a started platform left without traffic."""
    idle = results.get("idle")
    if not idle:
        return []
    lines = [
        IDLE_START,
        "## (d) Idle: CPU of each process with no traffic",
        "",
        f"Measured {results['started_at']}. Each backend's platform is started as in (a) "
        "(production mode also with `botplatform scheduler`), one webhook goes through the "
        "whole path, and after a few seconds' settling every process is left alone for the "
        "window: CPU from `/proc/<pid>/stat` (utime + stime, all threads and children). "
        "PostgreSQL: the server processes of the connections the platform holds to its "
        "database (pools kept open); Redis: the whole server process the platform uses. "
        "Embedded `serve` includes its in-process worker and scheduler. "
        f"Target: every platform process below {IDLE_CORE_PCT_MAX:.0f}% of a core.",
        "",
        *_idle_quiet_note(idle),
        "| backend | process | CPU seconds | share of a core | verdict |",
        "|---|---|---|---|---|",
    ]
    for name in BACKENDS:
        if name not in idle:
            continue
        measured = idle[name]["idle"]
        window = measured["window"]["cpu_s"]
        for label, figures in measured.items():
            if label == "window":
                continue
            pct = figures["core_pct"]
            judged = verdict(pct < IDLE_CORE_PCT_MAX) if label.startswith("platform") else "—"
            lines.append(
                f"| {name} | {label} | {figures['cpu_s']:.2f} over {window:.0f} s "
                f"| {pct:.2f}% | {judged} |"
            )
    lines += [
        "",
        "Consumers block on Redis (`BLPOP` on a per-queue wake-up list that every enqueue "
        "pushes to in the same round trip) or on the in-memory queue, and wake at most once "
        "a second (`QUEUE_IDLE_WAIT_MS`) to refresh the worker's heartbeat; before, an idle "
        "worker polled Redis every ≤10 ms (about 0.15 of a core, as issue 14 measured). The "
        "scheduler ticks once a second.",
        "",
        f"The bench workspace is on the `{UNCAPPED_PLAN}` plan with every quota lifted "
        "(`PATCH /admin/plans`, by the bench user made superadmin with `botplatform "
        "create-admin`): on the default starter plan the 10,000 messages a month stop "
        "auto-replies after a few runs on one database, silently, since inbound is never "
        "refused for a quota.",
        IDLE_END,
        "",
    ]
    return lines


def _idle_quiet_note(idle: dict[str, Any]) -> list[str]:
    busy = [r["quiet_wait"]["busy_cores_at_start"] for r in idle.values() if "quiet_wait" in r]
    if not busy or max(busy) <= NOISY_CORES:
        return []
    return [
        f"The machine was busy with other work during this run (up to {max(busy):.2f} cores "
        "when a window started); each figure is the process's own CPU time, which a busy "
        "neighbour changes little.",
        "",
    ]


def write_idle_section(results: dict[str, Any], output: Path) -> None:
    """Writes (d) into an existing report: replaces its idle section, or puts it before the
    CPU section; the rest of the report (another run's figures) stays as it is."""
    text = output.read_text()
    section = "\n".join(idle_section(results))
    if IDLE_START in text and IDLE_END in text:
        head, rest = text.split(IDLE_START, 1)
        tail = rest.split(IDLE_END, 1)[1].lstrip("\n")
        text = head + section + tail
    else:
        anchor = "## Where the CPU went"
        head, tail = text.split(anchor, 1) if anchor in text else (text, "")
        text = head + section + (anchor + tail if tail else "")
    output.write_text(text)


def method_section(results: dict[str, Any]) -> list[str]:
    s = results["settings"]
    return [
        "## How it was measured",
        "",
        "- Every server runs under uvicorn with the settings of `botplatform serve`: one "
        "process (workers=1), `proxy_headers=False`, `log_config=None`, no access log, "
        "uvloop and httptools; every log threshold at WARNING (`LOG_LEVEL=WARNING`, "
        "`LOG_TO_STDOUT=false` for the platform). Servers, the fake Graph API and the load "
        "generator are separate processes on 127.0.0.1, started on free ports and stopped "
        "afterwards.",
        "- Every request is a WhatsApp text webhook as Meta sends it (the sandbox's envelope "
        "and escaping, plus the business-scoped user id, `user_id`, that Meta has begun to add "
        "and pywa 4.5 requires), signed with `X-Hub-Signature-256` (and the legacy SHA-1 header). "
        "Each body is unique (its own wa_id, wamid and text), all of the same size; bodies "
        "are built and signed before the clock starts.",
        f"- **(a)** closed loop: {s['concurrency']} connections, {num(s['warmup'])} "
        f"unmeasured warm-up requests, then {num(s['requests'])} measured; the rate is "
        "acknowledged 200s per second, latency is POST to answer. For the platform a 200 "
        "means the raw event is committed and its processing job queued; the run checks "
        "afterwards that as many rows exist as 200s were given, and waits (bounded) until "
        "every event is processed. The platform's worker runs meanwhile: in-process when "
        "embedded, a separate `botplatform worker` (defaults: 1 process, 8 threads) in "
        "production. pywa acknowledges before its handler runs (a background task).",
        f"- **(b)** open loop: requests leave on a fixed schedule at each offered rate "
        f"({s['rates']} per second, each step {s['step_seconds']:.0f} s but at least "
        f"{num(s['min_step_requests'])} requests, after an unmeasured 20/s warm-up step of "
        f"{s['step_seconds']:.0f} s) whatever the answers. Latency runs from the moment a webhook "
        "POST starts to the moment the fake Graph API accepts the reply for that customer "
        "(both wall-clock on one machine, matched by the customer's unique wa_id). A step "
        f"passes when every webhook got a 200, every customer exactly one reply within "
        f"{s['drain_seconds']:.0f} s of the step's end, p99 < {num(s['slo_ms'])} ms, and the "
        "generator kept ≥ 90% of the offered rate; stepping stops at the first failure. "
        "The sustainable rate is the highest passing step.",
        "- The fake Graph API is the platform's own (`botplatform.sandbox.FakeGraph`) with "
        "status webhooks off (`auto_status=False`), so no target receives extra traffic.",
        "- The platform channel is created through the public API with "
        "`send_rate_per_second=1000` (the highest the API accepts; the default 80/s, Meta's "
        "standard throughput, would cap (b) at 80/s). `RATE_LIMIT_ENABLED=false` (the "
        "per-workspace webhook limit of 1000/min would cap (a)). PostgreSQL runs as its "
        "superuser, which bypasses row-level security; a deployment with an unprivileged "
        "role pays for the policies on top of these figures.",
        "",
    ]


def inbound_section(results: dict[str, Any]) -> list[str]:
    bare, pywa = results["bare"], results["pywa"]["inbound"]
    rows = [("bare ASGI (ceiling)", bare), ("pywa no-op (stateless)", pywa)]
    rows += [(f"platform, {results[name]['label']}", results[name]["inbound"]) for name in BACKENDS]
    lines = [
        "## (a) Durable inbound: acknowledged webhooks per second",
        "",
        "| server | req/s | p50 ms | p99 ms | max ms | x bare | x pywa | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, r in rows:
        lines.append(
            f"| {label} | {num(r['rps'])} | {num(r['p50_ms'], 1)} | {num(r['p99_ms'], 1)} "
            f"| {num(r['max_ms'], 1)} | {ratio(r['rps'], bare['rps'])} "
            f"| {ratio(r['rps'], pywa['rps'])} | {r['errors']} |"
        )
    lines += ["", "Durability and processing of the platform's acknowledged events:", ""]
    lines += [
        "| backend | 200s | rows stored when the last 200 arrived | processed | failed "
        "| backlog drained after the load | durable |",
        "|---|---|---|---|---|---|---|",
    ]
    warmup = results["settings"]["warmup"]
    for name in BACKENDS:
        r = results[name]["inbound"]
        lines.append(
            f"| {name} | {num(r['ok'] + warmup)} | {num(r['stored_new'])} "
            f"| {num(r['processed']['processed'])} | {num(r['processed']['failed'])} "
            f"| {r['drain_s']} s | {'yes' if r['durable'] else 'NO'} |"
        )
    wrk = bare.get("wrk", {})
    if wrk.get("rps"):
        lines += [
            "",
            f"Generator check: `wrk` (C, one thread, same concurrency) gets "
            f"{num(wrk['rps'])} req/s from the same bare app against "
            f"{num(bare['rps'])} for `bench/load.py`, so the bare figure is the Python load "
            "generator's ceiling as much as uvicorn's; every other figure is far below it.",
        ]
    return [*lines, ""]


def end_to_end_section(results: dict[str, Any]) -> list[str]:
    pywa = results["pywa"]["end_to_end"]
    pywa_rate = sustained_rate(pywa)
    rows = [("pywa echo", pywa)]
    rows += [
        (f"platform, {results[name]['label']}", results[name]["end_to_end"]) for name in BACKENDS
    ]
    lines = [
        "## (b) End to end: inbound text → reply at the fake Graph API",
        "",
        "| server | sustainable rate (p99 < SLO) | p50 ms | p99 ms | ack p99 ms | x pywa "
        "| first failing step |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, r in rows:
        best = best_step(r) or {}
        rate = sustained_rate(r)
        shown = num(rate) + ("" if ceiling_found(r) else " (every step passed)")
        lines.append(
            f"| {label} | {shown}/s | {num(best.get('e2e_p50_ms'), 1)} "
            f"| {num(best.get('e2e_p99_ms'), 1)} | {num(best.get('ack_p99_ms'), 1)} "
            f"| {ratio(rate, pywa_rate)} | {first_failure(r)} |"
        )
    for label, r in rows:
        lines += ["", f"Steps, {label}:", ""]
        lines += [
            "| offered/s | sent/s | 200s | replies | ack p50 | ack p99 | e2e p50 | e2e p99 "
            "| e2e max | pass |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for step in [r["warmup"], *r["steps"]]:
            lines.append(
                f"| {num(step['offered_rps'])} | {num(step['achieved_rps'])} "
                f"| {num(step['acked'])} | {num(step['replies'])} "
                f"| {num(step['ack_p50_ms'], 1)} | {num(step['ack_p99_ms'], 1)} "
                f"| {num(step['e2e_p50_ms'], 1)} | {num(step['e2e_p99_ms'], 1)} "
                f"| {num(step['e2e_max_ms'], 1)} | {'yes' if step['passed'] else 'no'} |"
            )
    return [*lines, ""]


def _requests_of(result: dict[str, Any], warmup: int) -> int:
    if "steps" in result:
        return int(sum(s["requests"] for s in [result["warmup"], *result["steps"]]))
    return int(result["requests"]) + warmup


def cpu_section(results: dict[str, Any]) -> list[str]:
    warmup = results["settings"]["warmup"]
    lines = [
        "## Where the CPU went",
        "",
        "CPU seconds per process during each phase (the machine has 2 cores, so at most 2 s "
        'per wall second), and per request. "postgres+redis" counts the whole servers, '
        '"other processes" is everything else busy on the machine meanwhile (including '
        "kernel network work and any neighbour's jobs).",
        "",
        "| phase | wall s | requests | process | CPU s | CPU ms/request |",
        "|---|---|---|---|---|---|",
    ]
    for label, result in _phases(results):
        usage, requests = result["cpu"], _requests_of(result, warmup)
        first = True
        for process, seconds in usage.items():
            if process == "wall" or (seconds < 0.05 and process != "other processes"):
                continue
            head = f"| {label} | {usage['wall']} | {num(requests)} " if first else "| | | "
            lines.append(f"{head}| {process} | {seconds} | {num(1000 * seconds / requests, 2)} |")
            first = False
    return [*lines, ""]


def _platform_cpu_ms(result: dict[str, Any], warmup: int) -> dict[str, float]:
    """CPU ms per request of each platform process (serve, worker) in one phase."""
    requests = _requests_of(result, warmup)
    return {
        process: 1000 * seconds / requests
        for process, seconds in result["cpu"].items()
        if process.startswith("platform")
    }


def findings_section(results: dict[str, Any]) -> list[str]:
    """What limits the platform, computed from this run's CPU figures."""
    warmup = results["settings"]["warmup"]
    pywa_ms = _platform_cpu_ms_of(results["pywa"]["end_to_end"], "pywa", warmup)
    lines = [
        "## What limits the platform here",
        "",
        "A Python process runs on one core at a time, so the busiest process's CPU time per "
        "message bounds its rate at 1000 / (CPU ms per message), whatever the other core "
        "does. From the figures above:",
        "",
    ]
    for name in BACKENDS:
        per_process = _platform_cpu_ms(results[name]["end_to_end"], warmup)
        busiest, ms = max(per_process.items(), key=lambda item: item[1])
        rate = sustained_rate(results[name]["end_to_end"])
        lines.append(
            f"- (b) {name}: `{busiest}` used {num(ms, 1)} ms CPU per auto-replied message "
            f"(pywa: {num(pywa_ms, 1)} ms per echo), a ceiling of about "
            f"{num(1000 / ms)} messages/s; measured sustainable: {num(rate)}/s."
        )
    for name in BACKENDS:
        inbound = results[name]["inbound"]
        requests = _requests_of(inbound, warmup)
        cost = f"{num(sum(_platform_cpu_ms(inbound, warmup).values()), 1)} ms of platform CPU"
        if name == "postgres":
            database_ms = 1000 * inbound["cpu"]["postgres+redis"] / requests
            cost += f" plus {num(database_ms, 1)} ms in PostgreSQL and Redis"
        backlog = (
            f"; acknowledging ({num(inbound['rps'])}/s) outran processing, whose backlog "
            f"took {inbound['drain_s']} s more to clear"
            if inbound["drain_s"] >= 1
            else ""
        )
        lines.append(f"- (a) {name}: storing, then processing, one webhook took {cost}{backlog}.")
    return [*lines, *apparatus_findings(results), *STATIC_FINDINGS, ""]


def _platform_cpu_ms_of(result: dict[str, Any], process: str, warmup: int) -> float:
    return 1000 * float(result["cpu"].get(process, 0.0)) / _requests_of(result, warmup)


def apparatus_findings(results: dict[str, Any]) -> list[str]:
    """What the measuring itself (the load generator, the fake Graph API) costs at each
    target rate, from this run's per-request CPU: what the machine has left for the server."""
    warmup, cores = results["settings"]["warmup"], int(results["machine"]["cores"])
    pywa_in, pywa_e2e = results["pywa"]["inbound"], results["pywa"]["end_to_end"]
    inbound_target = INBOUND_TARGET * pywa_in["rps"]
    generator_in = _platform_cpu_ms_of(pywa_in, "load generator", warmup)
    e2e_target = END_TO_END_TARGET * sustained_rate(pywa_e2e)
    generator_e2e = _platform_cpu_ms_of(pywa_e2e, "load generator", warmup)
    graph_e2e = _platform_cpu_ms_of(pywa_e2e, "fake Graph API", warmup)
    pywa_in_ms = _platform_cpu_ms_of(pywa_in, "pywa", warmup)
    apparatus_in = generator_in * inbound_target / 1000
    apparatus_e2e = (generator_e2e + graph_e2e) * e2e_target / 1000
    if not inbound_target or not e2e_target:
        # pywa sustained no step of a phase (a failed or disturbed run): no target rate to
        # price the apparatus at, and the report says so instead of dividing by zero.
        return ["", "pywa sustained no rate in a phase of this run: no apparatus figures."]
    return [
        "",
        f"What the measuring itself needs at the target rates, on this {cores}-core machine "
        "(per-request CPU of the load generator and the fake Graph API in the pywa phases of "
        "this run):",
        "",
        f"- (a) at {num(inbound_target)} req/s the load generator alone needs "
        f"{num(apparatus_in, 2)} cores ({num(generator_in, 2)} ms per request), leaving "
        f"{num(cores - apparatus_in, 2)} for the server, PostgreSQL, Redis and the worker: "
        f"{num(1000 * (cores - apparatus_in) / inbound_target, 2)} ms of CPU per webhook in "
        f"all. pywa, which stores nothing, used {num(pywa_in_ms, 2)} ms.",
        f"- (b) at {num(e2e_target)} messages/s the load generator and the fake Graph API "
        f"need {num(apparatus_e2e, 2)} cores ({num(generator_e2e + graph_e2e, 2)} ms per "
        f"message), leaving {num(max(cores - apparatus_e2e, 0.0), 2)} for everything the "
        f"platform does per message: "
        f"{num(max(1000 * (cores - apparatus_e2e) / e2e_target, 0.0), 2)} ms of CPU each.",
    ]


# Found while building the benchmark and since (py-spy on the processes, statement counts with
# a `before_cursor_execute` listener, PostgreSQL statistics); run.py does not re-measure them,
# so they are stated as what the code does, with the figures of that diagnosis.
STATIC_FINDINGS = [
    "",
    "Where the platform's CPU goes (diagnosed with py-spy and statement counts; not "
    "re-measured by `run.py`):",
    "",
    "- **The worker's single event loop runs the SQLAlchemy ORM.** One auto-replied message "
    "is about 40 SQL statements in 5 transactions (contact, conversation and message rows, "
    "the event rows for webhooks and the live inbox, automation and bot lookups, the usage "
    "counters, the send's lease and outcome). Sampling the worker with `py-spy --gil` puts "
    "most of its time in ORM execution, flushes and identity-map loads, not in PostgreSQL.",
    "- **The webhook path no longer goes through FastAPI** for a known channel (the pure "
    "ASGI lane, `channels/inbound.py`), writes each group with one prepared statement, and "
    "sends the group's jobs to Redis in one pipeline; what `serve` spends per webhook is in "
    "the CPU table above.",
    "- **Connection pre-ping is off by default** (`DATABASE_PRE_PING`); it cost a round "
    "trip on every checkout, five per message. **An idle consumer blocks instead of "
    "polling**: every enqueue wakes it (see (d)), so a job hop waits for no poll.",
    "- **The worker yields the CPU to `serve`** (`WORKER_NICE`, 10): during (a) the backlog "
    "is processed mostly after the burst, which is why the drain column is long.",
    "- **A fresh database plans lookups on the wrong index** until PostgreSQL has "
    "statistics: the single-column `workspace_id` indexes are chosen over the unique ones "
    "and each lookup reads every row of the workspace (about 3,900 tuples per message at "
    "~600 messages, 210 after `ANALYZE`). At this benchmark's sizes it did not change the "
    "CPU figures.",
]


def notes_section() -> list[str]:
    return [
        "## Notes",
        "",
        "- **Pointing pywa at the fake Graph API.** pywa 4.5 hard-codes "
        "`https://graph.facebook.com/v{version}` as its session's base URL "
        "(`GraphAPI.__init__` overwrites the base URL of any session passed in) and has no "
        "option for another host. Its documented extension point is the `session` argument "
        "(your own `httpx.AsyncClient`); the benchmark passes one whose transport "
        "(`bench/ref_apps.py: RedirectTransport`) swaps scheme, host and port for the fake's "
        "and keeps pywa's path and body untouched, with the platform's pool limits (200 "
        "connections, 50 kept alive) and timeouts. pywa replies to the wa_id "
        "(`user_identifier_priority` with `WA_ID` first), as the platform does, because the "
        "fake Graph API, like Meta's before usernames, requires `to`.",
        "- **pywa is stateless**: it acknowledges before its handler runs and stores "
        "nothing, so a crash loses whatever was acknowledged but not yet handled. The "
        "platform's figures include committing every raw event, queueing its job and, in "
        "the same run, processing it (contact, conversation and message rows) and, for (b), "
        "the once-only send machinery (lease, send job, outcome).",
        "- **SQLite durability**: the embedded database runs in WAL mode with "
        "`synchronous=NORMAL`, so a commit survives a crash of the process but not "
        "necessarily a power loss; PostgreSQL runs with `fsync=on`, "
        "`synchronous_commit=on`.",
        "- **Open loop in-flight cap**: the generator never holds more than 2,000 unanswered "
        "requests; beyond that, sends are counted as errors (never reached in a passing "
        "step).",
        "- **Resolution and variation**: offered rates are about 1.25x apart, so a "
        "sustainable rate is known to within one step; on this shared two-core machine "
        "figures also move between runs (compare the CPU table's other processes), which "
        "is why every ratio is taken within one run.",
        "",
    ]


def write_report(results: dict[str, Any], output: Path) -> None:
    lines = [
        "# Benchmarks",
        "",
        "Generated by `uv run --group bench python bench/run.py` (about "
        f"{round(results['duration_s'] / 60)} minutes), started {results['started_at']}. "
        "Every figure and ratio below comes from that one run on the machine described; "
        "re-running the command measures again and rewrites this file.",
        "",
        *machine_section(results),
        *conditions_section(results),
        *targets_section(results),
        *method_section(results),
        *inbound_section(results),
        *end_to_end_section(results),
        *idle_section(results),
        *cpu_section(results),
        *findings_section(results),
        *notes_section(),
    ]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(lines))
