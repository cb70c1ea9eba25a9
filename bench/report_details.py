"""The report's detailed sections: how it was measured, each scenario's own tables, the idle
scenario (d), every process of every phase, the workers' profile, and the notes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from figures import (
    APPARATUS_LABELS,
    BACKENDS,
    best_step,
    ceiling_found,
    messages_of,
    sustained_rate,
    targets,
)
from report_base import NOISY_CORES, first_failure, num, phases, ratio, verdict

# -- scenario details --------------------------------------------------------------------------


def method_section(results: dict[str, Any]) -> list[str]:
    s = results["settings"]
    return [
        "## How it was measured",
        "",
        "- Every server runs under uvicorn with the settings of `botplatform serve`: one "
        "process (workers=1), `proxy_headers=False`, `log_config=None`, no access log, "
        "uvloop and httptools; every log threshold at WARNING (`LOG_LEVEL=WARNING`, "
        "`LOG_TO_STDOUT=false` for the platform). Servers, the fake Graph API and the load "
        "generators are separate processes on 127.0.0.1, started on free ports and stopped "
        "afterwards. Production mode: `botplatform serve`, `botplatform worker` with "
        f"`WORKER_PROCESSES={s['worker_processes']}` (8 threads each), PostgreSQL (the "
        "machine's server, a fresh database per run, reached through the counting relay) "
        "and a Redis server started for the run (no persistence).",
        "- Every request is a WhatsApp webhook as Meta sends it (the sandbox's envelope "
        "and escaping, plus the business-scoped user id, `user_id`, that Meta has begun to add "
        "and pywa 4.5 requires), signed with `X-Hub-Signature-256` (and the legacy SHA-1 "
        "header). Each body is unique (its own wa_id, wamid and text); bodies are built and "
        "signed before the clock starts.",
        f"- **(a)** closed loop with Debian's `wrk` (C, one thread, {s['concurrency']} "
        f"connections; `bench/wrk_post.lua` feeds it the pre-signed bodies): "
        f"{num(s['warmup'])} warm-up requests, then {num(s['requests'])} measured; the rate is "
        "acknowledged 200s per second, latency is POST to answer (wrk's histogram). For the "
        "platform a 200 means the raw event is committed and its processing job queued; the "
        "run checks right after the last 200 that as many rows exist as 200s were given. pywa "
        "acknowledges before its handler runs (a background task) and stores nothing.",
        f"- **(b)** open loop (`bench/load.py open`): requests leave on a fixed schedule at "
        f"each offered rate ({s['rates']} per second, each step {s['step_seconds']:.0f} s but "
        f"at least {num(s['min_step_requests'])} requests, after an unmeasured 20/s warm-up "
        f"step of {s['step_seconds']:.0f} s) whatever the answers. Latency runs from the "
        "moment a webhook POST starts to the moment the fake Graph API accepts the reply for "
        "that customer (both wall-clock on one machine, matched by the customer's unique "
        "wa_id). A step passes when every webhook got a 200, every customer exactly one reply "
        f"within {s['drain_seconds']:.0f} s of the step's end, p99 < {num(s['slo_ms'])} ms, "
        "and the generator kept ≥ 90% of the offered rate; stepping stops at the first "
        "failure. The sustainable rate is the highest passing step. A run in which a "
        "target sends no reply at all in the warm-up step stops with an error (the "
        "apparatus is broken) instead of reporting 0/s.",
        f"- **(c)** bot flow (`bench/load.py flow`): a bot published through the API "
        '(`target_platform.bench_flow`: keyword "hi" → two reply buttons → an `ask` step '
        "for an email address, validated → a closing message using the answer), auto-reply "
        f"off. {s['flow_conversations']} customers start at {s['flow_rate']:g} a second; each "
        'taps "Sales" once the buttons arrived and types an address once the question '
        "arrived: three inbound messages and three replies a customer. Latency: a message's "
        "POST to its reply's arrival. Then the same with "
        f"{s.get('flow_sustained_conversations', 0):,} customers starting at "
        f"{s.get('flow_sustained_rate', 0):g} a second (three times as many messages a "
        "second, just above the lowest WhatsApp tier's 80/s): at the low rate each message "
        "is a batch of its own and pays every fixed cost (a transaction, the idle wake-ups "
        "of every process) alone; at the sustained one, batches form as in (b).",
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
        "## (a) Durable acknowledgement: webhooks per second",
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
        "| backlog processed in | durable |",
        "|---|---|---|---|---|---|---|",
    ]
    warmup = results["settings"]["warmup"]
    for name in BACKENDS:
        r = results[name]["inbound"]
        processing = r["processing"]
        lines.append(
            f"| {name} | {num(r['ok'] + warmup)} | {num(r['stored_new'])} "
            f"| {num(processing['processed']['processed'])} "
            f"| {num(processing['processed']['failed'])} "
            f"| {processing['drain_s']} s | {'yes' if r['durable'] else 'NO'} |"
        )
    return [*lines, ""]


def end_to_end_section(results: dict[str, Any]) -> list[str]:
    pywa = results["pywa"]["end_to_end"]
    pywa_rate = sustained_rate(pywa)
    rows = [("pywa echo", pywa)]
    rows += [
        (f"platform, {results[name]['label']}", results[name]["end_to_end"]) for name in BACKENDS
    ]
    lines = [
        "## (b) End to end: inbound text → auto-reply at the fake Graph API",
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


def flow_section(results: dict[str, Any]) -> list[str]:
    rows = [
        (name, results[name][phase])
        for name in BACKENDS
        for phase in ("flow", "flow_sustained")
        if phase in results.get(name, {})
    ]
    if not rows:
        return []
    lines = [
        "## (c) Bot flow: buttons, a button reply, an `ask` step",
        "",
        "| backend | offered | conversations completed | messages | 200s | replies | duplicates "
        "| msg/s | e2e p50 ms | e2e p99 ms | e2e max ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows:
        offered = f"{3 * float(r['rate']):g} msg/s" if "rate" in r else "—"
        lines.append(
            f"| {name} | {offered} | {r['completed']} of {r['conversations']} "
            f"| {num(r['messages'])} "
            f"| {num(r['acked'])} | {num(r['replies'])} | {r['duplicate_replies']} "
            f"| {num(r['messages_per_s'], 1)} | {num(r['e2e_p50_ms'], 1)} "
            f"| {num(r['e2e_p99_ms'], 1)} | {num(r['e2e_max_ms'], 1)} |"
        )
    return [*lines, ""]


def cpu_section(results: dict[str, Any]) -> list[str]:
    warmup = results["settings"]["warmup"]
    lines = [
        "## Every process, every phase",
        "",
        "CPU seconds per process during each phase (the machine has 2 cores, so at most 2 s "
        "per wall second), and per message. Apparatus rows (load generator, fake Graph "
        "API, SQL counting relay, profiler, the harness's own checks) are not the target's. "
        '"other processes" is everything else busy on the machine meanwhile (kernel '
        "network work, PostgreSQL's shared background processes, any neighbour's jobs).",
        "",
        "| phase | wall s | messages | process | CPU s | CPU ms/message | role |",
        "|---|---|---|---|---|---|---|",
    ]
    for scenario, label, result in phases(results):
        usage, count = result["cpu"], messages_of(result, warmup)
        first = True
        for process, seconds in usage.items():
            if process == "wall" or (seconds < 0.005 and process != "other processes"):
                continue
            role = "apparatus" if process in APPARATUS_LABELS else "target"
            if process == "other processes":
                role = "machine"
            head = (
                f"| {scenario} {label} | {usage['wall']:.1f} | {num(count)} " if first else "| | | "
            )
            per = num(1000 * seconds / count, 2) if count else "—"
            lines.append(f"{head}| {process} | {seconds:.2f} | {per} | {role} |")
            first = False
    return [*lines, ""]


def profile_section(results: dict[str, Any]) -> list[str]:
    """Where the workers' CPU went during (b): shown when a target is missed."""
    profile = (results.get("postgres") or {}).get("end_to_end", {}).get("profile")
    if not profile or not profile["samples"]:
        return []
    if all(t.verdict == "met" for t in targets(results)):
        return []
    total = profile["samples"]
    lines = [
        "## Where the workers' CPU goes (py-spy, during (b))",
        "",
        f"py-spy sampled one of the {results['settings']['worker_processes']} worker "
        f"processes ({results['settings']['profile_rate']} Hz, `--nonblocking`, `--gil`: "
        f"only the thread running Python) through (b): {num(total)} samples. A sample's "
        "component is its innermost frame in a named package (so `re` called by SQLAlchemy "
        "counts as SQLAlchemy); own time is the innermost frame itself. The raw stacks are "
        "`worker-profile.raw` in the run's scratch directory (collapsed stacks, for a "
        "flame graph).",
        "",
        "| component | share of the sampled worker's Python time |",
        "|---|---|",
    ]
    for component, samples in profile["components"].items():
        lines.append(f"| {component} | {100 * samples / total:.1f}% |")
    lines += [
        "",
        f"Top {len(profile['top'])} functions by own time:",
        "",
        "| # | function | file | component | own share |",
        "|---|---|---|---|---|",
    ]
    for rank, row in enumerate(profile["top"], start=1):
        lines.append(
            f"| {rank} | `{row['function']}` | `{row['file']}` | {row['component']} "
            f"| {100 * row['samples'] / total:.1f}% |"
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
            lines += _idle_rows(name, label, figures, window)
    lines += [
        "",
        "Consumers block on Redis (`BLPOP` on a per-queue wake-up list that every enqueue "
        "pushes to in the same round trip) or on the in-memory queue, and with no job wake "
        "every `QUEUE_IDLE_WAIT_MS` (3 s by default; the in-memory queue at least once a "
        "second) to refresh the worker's heartbeat; before, an idle "
        "worker polled Redis every ≤10 ms (about 0.15 of a core, as issue 14 measured). The "
        "scheduler ticks once a second. `botplatform worker` is one command of several "
        "processes (with `WORKER_PROCESSES=2`: two worker processes, each with its bulk "
        "child, and multiprocessing's resource tracker): the target is judged per process, "
        "and the command's total is shown beside it.",
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


def _idle_rows(name: str, label: str, figures: dict[str, Any], window: float) -> list[str]:
    """One process's row; a command of several processes (`botplatform worker`) gets one
    row for all of them, without a verdict, and a row with a verdict for each process."""
    platform = label.startswith("platform")
    processes = figures.get("processes") or []
    pct = figures["core_pct"]
    if not processes:
        judged = verdict(pct < IDLE_CORE_PCT_MAX) if platform else "—"
        return [
            f"| {name} | {label} | {figures['cpu_s']:.2f} over {window:.0f} s "
            f"| {pct:.2f}% | {judged} |"
        ]
    rows = [
        f"| {name} | {label}, all {len(processes)} processes | {figures['cpu_s']:.2f} over "
        f"{window:.0f} s | {pct:.2f}% | — |"
    ]
    for process in sorted(processes, key=lambda p: -p["core_pct"]):
        each = process["core_pct"]
        judged = verdict(each < IDLE_CORE_PCT_MAX) if platform else "—"
        rows.append(
            f"| {name} | {label}: {process['role']} | {process['cpu_s']:.2f} over "
            f"{window:.0f} s | {each:.2f}% | {judged} |"
        )
    return rows


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
        "- **Apparatus in the production run**: the platform reaches PostgreSQL through "
        "the counting relay (one more loopback hop per round trip, its CPU listed apart), "
        "and py-spy samples a worker during (b) (its CPU listed apart too); both share the "
        "two cores with the platform, so (b)'s wall figures are a little lower than without "
        "them, while CPU per message is each process's own.",
        "- **Workers at nice 0** (`WORKER_NICE=0`; the platform's default is 10, which lets "
        "`serve` go first on a machine of its own): on this shared machine a niced worker "
        "would also wait behind every neighbour's test run.",
        "- **Every owed reply is waited for**: after (b)'s last step and after (c), the run "
        "waits (bounded) until the fake Graph API has received a reply for every message "
        "sent, or none arrived for 15 s, so the phase's CPU pays for all of its messages; "
        "the platform queues a burst's sends behind its inbound jobs.",
        "- **Open loop in-flight cap**: the generator never holds more than 2,000 unanswered "
        "requests; beyond that, sends are counted as errors (never reached in a passing "
        "step).",
        "- **Resolution and variation**: offered rates are about 1.25x apart, so a "
        "sustainable rate is known to within one step; on this shared two-core machine "
        "figures also move between runs (compare the CPU table's other processes), which "
        "is why every ratio is taken within one run.",
        "",
    ]
