"""Runs the whole benchmark in one go and writes docs/benchmarks.md.

    uv run --group bench python bench/run.py [--output docs/benchmarks.md]

Phases, each with fresh processes on free loopback ports, stopped afterwards even on failure:
1. references: a bare ASGI app (the ceiling) and pywa's FastAPI webhook server, with a no-op
   handler (closed loop) and an echo handler replying through the fake Graph API (open loop);
2. the platform embedded (SQLite, in-process worker), then in production mode (PostgreSQL +
   Redis, separate worker): durable inbound (closed loop), then auto-reply end to end (open
   loop);
3. (d) idle: each backend's platform started (production mode with its scheduler too) and
   left without traffic; the CPU of every process, its PostgreSQL backends and Redis.
   `--only idle --idle-report` runs this alone and rewrites only its section of the report.
The bench workspace is on a plan with every quota lifted (target_platform.lift_quotas).
The load generator (bench/load.py) is always a separate process, with the same bodies, the
same concurrency and the same steps for every target.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cpu
import httpx
import idle
import target_platform as platform_target
from common import HOST, free_port, signed_request
from machine import machine_info
from report import write_idle_section, write_report
from servers import (
    BENCH_DIR,
    Proc,
    Processes,
    base_env,
    bench_script,
    botplatform_command,
    wait_ready,
)

REPO = BENCH_DIR.parent
DEFAULT_OUTPUT = REPO / "docs" / "benchmarks.md"
LOAD_TIMEOUT_SECONDS = 300  # hard stop for one load-generator run, whatever happens


@dataclass(frozen=True)
class Settings:
    """The load, identical for every target."""

    requests: int = 5000
    warmup: int = 300
    concurrency: int = 32
    # About 1.25x apart, so a ratio between two targets is resolved to within ~25%.
    rates: str = (
        "25,30,40,50,60,75,100,125,150,200,250,300,400,500,600,700,800,1000,1200,1600,2000,3000"
    )
    step_seconds: float = 3.0
    min_step_requests: int = 300
    drain_seconds: float = 3.0
    slo_ms: float = 250.0
    process_timeout_seconds: float = 180.0


class Run:
    """One benchmark run: its scratch directory, settings, and unique customer-id prefixes."""

    def __init__(self, settings: Settings, scratch: Path) -> None:
        self.settings = settings
        self.scratch = scratch
        self.logs = scratch / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self._prefixes = iter(range(10, 100))

    def next_prefix(self) -> str:
        # "1" + two digits + step (2) + sequence (7): a 12-digit wa_id unique within the run.
        return f"1{next(self._prefixes):02d}"

    def load(self, mode: str, url: str, *extra: str) -> dict[str, Any]:
        argv = bench_script("load.py", mode, "--url", url, "--prefix", self.next_prefix(), *extra)
        done = subprocess.run(  # noqa: S603 - our own interpreter and script
            argv, capture_output=True, text=True, timeout=LOAD_TIMEOUT_SECONDS, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"load generator failed: {done.stderr[-3000:]}")
        return dict(json.loads(done.stdout))

    def closed_loop(self, url: str) -> dict[str, Any]:
        s = self.settings
        return self.load(
            "closed",
            url,
            *("--requests", str(s.requests), "--warmup", str(s.warmup)),
            *("--concurrency", str(s.concurrency)),
        )

    def open_loop(self, url: str, graph_url: str) -> dict[str, Any]:
        s = self.settings
        return self.load(
            "open",
            url,
            *("--graph-url", graph_url, "--rates", s.rates),
            *("--step-seconds", str(s.step_seconds), "--drain-seconds", str(s.drain_seconds)),
            *("--min-step-requests", str(s.min_step_requests)),
            *("--slo-ms", str(s.slo_ms), "--connections", "256"),
        )


def measured(sessions: dict[str, Proc], action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Runs `action` (a load run) on a quiet machine and attaches where the CPU went."""
    waited, busy_cores = cpu.wait_for_quiet()
    if waited > cpu.QUIET_WINDOW_SECONDS:
        log(f"waited {waited} s for the machine to quieten (busy: {busy_cores} cores)")
    before, harness_before = cpu.snapshot(), time.process_time()
    result = action()
    after, harness = cpu.snapshot(), time.process_time() - harness_before
    pids = {label: proc.process.pid for label, proc in sessions.items()}
    generator = float(result.get("generator_cpu_s", 0.0))
    result["cpu"] = cpu.usage(before, after, pids, generator, harness)
    result["quiet_wait"] = {"waited_s": waited, "busy_cores_at_start": busy_cores}
    return result


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- references -------------------------------------------------------------------------------


def start_reference(procs: Processes, kind: str, *extra: str) -> tuple[Proc, str]:
    port = free_port()
    proc = procs.start(
        kind, bench_script("serve.py", kind, "--port", str(port), *extra), base_env(), BENCH_DIR
    )
    return proc, f"http://{HOST}:{port}"


def start_fake_graph(procs: Processes) -> tuple[Proc, str]:
    graph, graph_url = start_reference(procs, "fake-graph")
    wait_ready(graph, f"{graph_url}/_bench/health")
    return graph, graph_url


def bench_bare(run: Run) -> dict[str, Any]:
    with Processes(run.logs) as procs:
        bare, url = start_reference(procs, "bare")
        wait_ready(bare, url)
        log("bare ASGI: closed loop")
        result = measured({"bare app": bare}, lambda: run.closed_loop(f"{url}/webhook"))
        result["wrk"] = wrk_check(run, f"{url}/webhook")
    return result


def wrk_check(run: Run, url: str) -> dict[str, Any]:
    """wrk against the bare app at the same concurrency: how far the Python generator's own
    ceiling is below a C one. Informative only; every figure in the report uses load.py."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return {"available": False}
    body, headers = signed_request("100000000000", "benchmark message 0000000")
    script = run.scratch / "post.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body.decode())}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    concurrency = str(run.settings.concurrency)
    argv = [wrk, "-t1", "-c", concurrency, "-d", "3s", "-s", str(script), url]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603
    for line in done.stdout.splitlines():
        if line.startswith("Requests/sec:"):
            return {"available": True, "rps": float(line.split()[1])}
    return {"available": True, "rps": None, "output": done.stdout[-500:]}


def bench_pywa(run: Run) -> dict[str, Any]:
    result: dict[str, Any] = {}
    with Processes(run.logs) as procs:
        noop, url = start_reference(procs, "pywa-noop")
        wait_ready(noop, f"{url}/webhook")
        log("pywa no-op: closed loop")
        result["inbound"] = measured({"pywa": noop}, lambda: run.closed_loop(f"{url}/webhook"))
    with Processes(run.logs) as procs:
        graph, graph_url = start_fake_graph(procs)
        echo, url = start_reference(procs, "pywa-echo", "--graph-url", graph_url)
        wait_ready(echo, f"{url}/webhook")
        log("pywa echo: open loop")
        result["end_to_end"] = measured(
            {"pywa": echo, "fake Graph API": graph},
            lambda: run.open_loop(f"{url}/webhook", graph_url),
        )
    return result


# -- the platform -----------------------------------------------------------------------------


def smoke_test(
    backend: platform_target.Backend, channel: platform_target.Channel, scratch: Path
) -> None:
    """One webhook through the whole path before measuring: the worker is up and consuming."""
    body, headers = signed_request("199999999999", "benchmark message 0000000")
    response = httpx.post(channel.webhook_url, content=body, headers=headers, timeout=30)
    response.raise_for_status()
    counts, _ = platform_target.wait_processed(backend, scratch, timeout_seconds=120)
    if counts.pending:
        raise RuntimeError(f"{backend.name}: the smoke-test webhook was never processed")


def durable_inbound(
    run: Run,
    backend: platform_target.Backend,
    scratch: Path,
    sessions: dict[str, Proc],
    channel: platform_target.Channel,
) -> dict[str, Any]:
    """(a): the closed loop, then proof that every 200 is a stored row whose job ran."""
    stored_before = platform_target.event_counts(backend, scratch).total

    def load_and_drain() -> dict[str, Any]:
        result = run.closed_loop(channel.webhook_url)
        # Right after the last 200: every acknowledged event must already be a row.
        result["stored_at_ack"] = platform_target.event_counts(backend, scratch).total
        counts, waited = platform_target.wait_processed(
            backend, scratch, run.settings.process_timeout_seconds
        )
        result["processed"] = asdict(counts)
        result["drain_s"] = round(waited, 1)
        return result

    result = measured(sessions, load_and_drain)
    acknowledged = result["ok"] + run.settings.warmup
    result["stored_new"] = result["stored_at_ack"] - stored_before
    result["durable"] = result["stored_new"] >= acknowledged
    return result


def start_platform(
    procs: Processes,
    backend: platform_target.Backend,
    scratch: Path,
    graph_url: str,
    *,
    scheduler: bool = False,
) -> tuple[dict[str, Proc], platform_target.Channel, str]:
    """Fresh backing services, `serve` (and on PostgreSQL the worker, and the scheduler if
    asked), a channel, and one webhook through the whole path. Returns the processes by
    label, the channel and serve's base URL."""
    env = platform_target.platform_env(backend, scratch, graph_url)
    log(f"platform {backend.name}: preparing")
    platform_target.reset_backing_services(backend, env, scratch)
    port = free_port()
    base = f"http://{HOST}:{port}"
    serve = procs.start(
        f"platform-{backend.name}-serve",
        botplatform_command("serve", "--port", str(port)),
        env,
        scratch,
    )
    wait_ready(serve, f"{base}/health/ready", timeout_seconds=180)
    sessions = {"platform serve": serve}
    if backend.is_postgres:
        sessions["platform worker"] = procs.start(
            f"platform-{backend.name}-worker", botplatform_command("worker"), env, scratch
        )
        if scheduler:
            sessions["platform scheduler"] = procs.start(
                f"platform-{backend.name}-scheduler", botplatform_command("scheduler"), env, scratch
            )
    channel = platform_target.create_channel(base, env, scratch)
    smoke_test(backend, channel, scratch)
    return sessions, channel, base


def bench_platform(run: Run, backend: platform_target.Backend) -> dict[str, Any]:
    scratch = run.scratch / backend.name
    scratch.mkdir()
    result: dict[str, Any] = {"label": backend.label}
    with Processes(run.logs) as procs:
        graph, graph_url = start_fake_graph(procs)
        try:
            sessions, channel, base = start_platform(procs, backend, scratch, graph_url)
            log(f"platform {backend.name}: durable inbound, closed loop")
            result["inbound"] = durable_inbound(run, backend, scratch, sessions, channel)
            platform_target.set_auto_reply(base, channel, platform_target.AUTO_REPLY_TEXT)
            log(f"platform {backend.name}: auto-reply end to end, open loop")
            sessions["fake Graph API"] = graph
            result["end_to_end"] = measured(
                sessions, lambda: run.open_loop(channel.webhook_url, graph_url)
            )
        finally:
            procs.stop_all()
            platform_target.drop_backing_services(backend)
    return result


def bench_idle(run: Run, backend: platform_target.Backend) -> dict[str, Any]:
    """(d): every process of a started platform, left alone for idle.WINDOW_SECONDS."""
    scratch = run.scratch / f"idle-{backend.name}"
    scratch.mkdir()
    result: dict[str, Any] = {"label": backend.label}
    with Processes(run.logs) as procs:
        _, graph_url = start_fake_graph(procs)
        try:
            sessions, _, _ = start_platform(procs, backend, scratch, graph_url, scheduler=True)
            time.sleep(idle.SETTLE_SECONDS)
            waited, busy_cores = cpu.wait_for_quiet()
            log(f"platform {backend.name}: idle for {idle.WINDOW_SECONDS:.0f} s")
            pg = (platform_target.PG_ADMIN_DSN, platform_target.PG_DATABASE)
            result["idle"] = idle.measure(
                {label: proc.process.pid for label, proc in sessions.items()},
                pg=pg if backend.is_postgres else None,
                redis_url=platform_target.REDIS_URL if backend.is_postgres else None,
            )
            result["quiet_wait"] = {"waited_s": waited, "busy_cores_at_start": busy_cores}
        finally:
            procs.stop_all()
            platform_target.drop_backing_services(backend)
    return result


# -- main -------------------------------------------------------------------------------------

TARGETS = ("bare", "pywa", "sqlite", "postgres", "idle")


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of a partial run."""
    out: dict[str, Any] = {}
    for name in ("sqlite", "postgres"):
        if name not in results:
            continue
        inbound, e2e = results[name]["inbound"], results[name]["end_to_end"]
        out[name] = {
            "inbound": {k: inbound.get(k) for k in ("rps", "p50_ms", "p99_ms", "durable")},
            "drain_s": inbound.get("drain_s"),
            "end_to_end": {
                "best": {k: (e2e.get("best") or {}).get(k) for k in ("offered_rps", "e2e_p99_ms")},
                "failed": [step["reasons"] for step in e2e.get("steps", []) if not step["passed"]],
            },
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--keep-data", action="store_true", help="keep the run's SQLite database")
    parser.add_argument(
        "--only",
        default=",".join(TARGETS),
        help="comma-separated subset of %(default)s, for a look while working: a partial run "
        "prints its figures and leaves the report alone",
    )
    parser.add_argument(
        "--idle-report",
        action="store_true",
        help="with --only idle: write scenario (d) into the report, leaving the rest as it is",
    )
    args = parser.parse_args()
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    settings = Settings()
    scratch = Path(tempfile.mkdtemp(prefix="botplatform-bench-"))
    run = Run(settings, scratch)
    started = time.monotonic()
    log(f"scratch directory {scratch}")
    results: dict[str, Any] = {"machine": machine_info(), "settings": asdict(settings)}
    results["started_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    if "bare" in only:
        results["bare"] = bench_bare(run)
    if "pywa" in only:
        results["pywa"] = bench_pywa(run)
    for backend in (platform_target.SQLITE, platform_target.POSTGRES):
        if backend.name in only:
            results[backend.name] = bench_platform(run, backend)
    if "idle" in only:
        results["idle"] = {
            backend.name: bench_idle(run, backend)
            for backend in (platform_target.SQLITE, platform_target.POSTGRES)
        }
    results["duration_s"] = round(time.monotonic() - started)
    (scratch / "results.json").write_text(json.dumps(results, indent=2))
    if set(only) != set(TARGETS):
        print(json.dumps(summary(results), indent=2))
        if only == ["idle"] and args.idle_report:
            write_idle_section(results, args.output)
            log(f"replaced the idle section of {args.output}")
        return
    write_report(results, args.output)
    log(f"wrote {args.output} in {results['duration_s']} s; raw results in {scratch}")
    if not args.keep_data:
        shutil.rmtree(scratch / "sqlite" / "data", ignore_errors=True)


if __name__ == "__main__":
    main()
