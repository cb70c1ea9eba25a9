"""Runs the whole benchmark in one go and writes docs/benchmarks.md.

    uv run --frozen --group bench python bench/run.py [--output docs/benchmarks.md]

Phases, each with fresh processes on free loopback ports, stopped afterwards even on failure:
1. references: a bare ASGI app (the ceiling) and pywa's FastAPI webhook server, with a no-op
   handler (closed loop) and an echo handler replying through the fake Graph API (open loop);
2. the platform embedded (SQLite, in-process worker), then in production mode (PostgreSQL,
   a Redis server of the run's own, 2 worker processes): (a) durable acknowledgement (closed
   loop, production workers paused so only the acknowledgement path is measured), then the
   processing of that backlog; (b) auto-reply end to end (open loop); in production also
   (c) a published bot flow with reply buttons and an `ask` step, with py-spy sampling the
   workers during (b) and a counting relay in front of PostgreSQL (SQL round trips);
3. (d) idle: each backend's platform started (production mode with its scheduler too) and
   left without traffic; the CPU of every process, its PostgreSQL backends and Redis.
   `--only idle --idle-report` runs this alone and rewrites only its section of the report.
4. (e) broadcasts, only with `--only broadcast` (bench/broadcast.py): throughput of one
   broadcast (`--recipients`, 100,000 by default) at 1,000 msg/s with a worker SIGKILLed
   mid-run, tenant fairness, the restart tests, and the CPU of one broadcast send;
   `--broadcast-report` writes its section; `--only broadcast-procs` (bench/broadcast_procs.py)
   the same with serve, the workers, the scheduler and the fake provider as separate processes.
5. (f) the website chat widget (bench/webchat.py), in production mode: 10,000 idle widget
   sockets held by `serve` and their memory, then visitor message → agent live inbox latency
   at `--webchat-rates` with the sockets still open. Part of a full run; `--only webchat
   --webchat-report` runs it alone and rewrites only its section.
CPU is counted per process from /proc: the platform's processes (serve, workers, PostgreSQL
backends of the bench database, the run's Redis server) apart from the apparatus (load
generator, fake Graph API, counting relay, profiler). The closed loop uses Debian's `wrk`.
The bench workspace is on a plan with every quota lifted (target_platform.lift_quotas).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import broadcast_procs
import cpu
import httpx
import idle
import pgcount
import profile_worker
import report_webchat
import target_platform as platform_target
import webchat
import wrk
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
    start_redis,
    start_sql_relay,
    wait_ready,
)

import broadcast

REPO = BENCH_DIR.parent
DEFAULT_OUTPUT = REPO / "docs" / "benchmarks.md"
LOAD_TIMEOUT_SECONDS = 300  # hard stop for one load-generator run, whatever happens
WORKER_PROCESSES = 2
QUIET_REPLIES_SECONDS = 15.0
# Labels of the processes that make up the platform (summed into its CPU per message).
PLATFORM_LABELS = ("platform serve", "platform worker", cpu.PG_BACKENDS, "Redis server")


@dataclass(frozen=True)
class Settings:
    """The load, identical for every target."""

    requests: int = 1500
    warmup: int = 150
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
    flow_conversations: int = 60
    flow_rate: float = 2.0  # conversations started a second (three messages each)
    # (c) again at a sustained rate: 30 conversations a second are 90 messages a second, just
    # above the lowest WhatsApp tier (80/s), where batches form as they do under (b)'s load.
    flow_sustained_conversations: int = 900
    flow_sustained_rate: float = 30.0
    worker_processes: int = WORKER_PROCESSES
    # py-spy samples a second, of one worker process (the two run the same code): sampling
    # the parent and both children at 100 Hz took a third of a core on this machine.
    profile_rate: int = 50
    profile_serve: bool = False  # py-spy on the serve process instead of a worker


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


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
        before = _children_cpu()
        done = subprocess.run(  # noqa: S603 - our own interpreter and script
            argv, capture_output=True, text=True, timeout=LOAD_TIMEOUT_SECONDS, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"load generator failed: {done.stderr[-3000:]}")
        result = dict(json.loads(done.stdout))
        # All of the generator's CPU (interpreter start and body signing included).
        result["generator_cpu_s"] = round(_children_cpu() - before, 3)
        return result

    def closed_loop(self, url: str) -> wrk.ClosedLoop:
        """A prepared closed loop (bodies built and signed): `.run()` measures."""
        s = self.settings
        loop = wrk.ClosedLoop(self.scratch, url, self.next_prefix(), s.concurrency)
        loop.prepare(s.warmup, s.requests)
        return loop

    def open_loop(self, url: str, graph_url: str, *, reference: bool = False) -> dict[str, Any]:
        """(b)'s stepped open loop, then (bounded) until the target has sent every reply it
        still owes, so that the phase's CPU pays for all of its messages. A reference (pywa)
        that sends no reply at all in the warm-up step means broken apparatus: the run stops
        instead of reporting 0/s."""
        s = self.settings
        before = accepted_replies(graph_url)
        result = self.load(
            "open",
            url,
            *("--graph-url", graph_url, "--rates", s.rates),
            *("--step-seconds", str(s.step_seconds), "--drain-seconds", str(s.drain_seconds)),
            *("--min-step-requests", str(s.min_step_requests)),
            *("--slo-ms", str(s.slo_ms), "--connections", "256"),
        )
        if reference and not result["warmup"]["replies"]:
            raise RuntimeError(
                f"no reply reached the fake Graph API during the warm-up step of {url}; "
                f"see the logs in {self.logs}"
            )
        sent = sum(step["requests"] for step in [result["warmup"], *result["steps"]])
        result["settled"] = settle_replies(graph_url, before + sent, s.process_timeout_seconds)
        result["settled"]["owed"] = sent - (result["settled"]["accepted"] - before)
        return result

    def flow(self, url: str, graph_url: str, *, conversations: int, rate: float) -> dict[str, Any]:
        """(c), then (bounded) until every reply owed for the messages sent has arrived."""
        s = self.settings
        before = accepted_replies(graph_url)
        result = self.load(
            "flow",
            url,
            *("--graph-url", graph_url, "--conversations", str(conversations)),
            *("--rate", str(rate), "--slo-ms", str(s.slo_ms)),
            *("--time-limit", str(s.process_timeout_seconds)),
        )
        expected = before + int(result["messages"])
        result["settled"] = settle_replies(graph_url, expected, s.process_timeout_seconds)
        result["settled"]["owed"] = expected - result["settled"]["accepted"]
        return result


def accepted_replies(graph_url: str) -> int:
    return int(httpx.get(f"{graph_url}/_bench/count", timeout=30).json()["accepted"])


def settle_replies(graph_url: str, expected: int, timeout_seconds: float) -> dict[str, Any]:
    """Waits until the fake Graph API has accepted `expected` messages in all, or nothing new
    arrived for QUIET_REPLIES_SECONDS (a target that dropped some will not send them), or the
    timeout. The platform queues its sends behind the inbound jobs of a burst, so its first
    replies may come many seconds after the last webhook."""
    started = last_change = time.monotonic()
    seen = accepted_replies(graph_url)
    while seen < expected and time.monotonic() - started < timeout_seconds:
        time.sleep(0.25)
        now = accepted_replies(graph_url)
        if now != seen:
            seen, last_change = now, time.monotonic()
        elif time.monotonic() - last_change > QUIET_REPLIES_SECONDS:
            break
    return {"accepted": seen, "waited_s": round(time.monotonic() - started, 1)}


def measured(
    sessions: dict[str, Proc],
    action: Callable[[], dict[str, Any]],
    database: str | None = None,
) -> dict[str, Any]:
    """Runs `action` (a load run) on a quiet machine and attaches where the CPU went: each
    process's session, and with `database` the PostgreSQL backends serving it."""
    waited, busy_cores = cpu.wait_for_quiet()
    if waited > cpu.QUIET_WINDOW_SECONDS:
        log(f"waited {waited} s for the machine to quieten (busy: {busy_cores} cores)")
    meter = cpu.Meter({label: proc.process.pid for label, proc in sessions.items()}, database)
    harness_before = time.process_time()
    meter.start()
    result = action()
    harness = time.process_time() - harness_before
    extra = {"load generator": float(result.get("generator_cpu_s", 0.0)), "bench harness": harness}
    result["cpu"] = meter.stop(extra)
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
        closed = run.closed_loop(f"{url}/webhook")
        return measured({"bare app": bare}, closed.run)


def bench_pywa(run: Run) -> dict[str, Any]:
    result: dict[str, Any] = {}
    with Processes(run.logs) as procs:
        noop, url = start_reference(procs, "pywa-noop")
        wait_ready(noop, f"{url}/webhook")
        log("pywa no-op: closed loop")
        closed = run.closed_loop(f"{url}/webhook")
        result["inbound"] = measured({"pywa": noop}, closed.run)
    with Processes(run.logs) as procs:
        graph, graph_url = start_fake_graph(procs)
        echo, url = start_reference(procs, "pywa-echo", "--graph-url", graph_url)
        wait_ready(echo, f"{url}/webhook")
        log("pywa echo: open loop")
        result["end_to_end"] = measured(
            {"pywa": echo, "fake Graph API": graph},
            lambda: run.open_loop(f"{url}/webhook", graph_url, reference=True),
        )
        # (c)'s customers at (c)'s low rate: pywa's CPU per message when each comes alone,
        # the reference for the platform at the same rate (the (b) figure is at full load).
        log("pywa echo: (c)'s customers at the low rate")
        s = run.settings
        result["flow"] = measured(
            {"pywa": echo, "fake Graph API": graph},
            lambda: run.flow(
                f"{url}/webhook", graph_url, conversations=s.flow_conversations, rate=s.flow_rate
            ),
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


@dataclass
class Platform:
    """A started platform: its processes by label, channel, base URL and, in production, the
    database its backends serve and the counting relay's stats port."""

    backend: platform_target.Backend
    scratch: Path
    sessions: dict[str, Proc]
    apparatus: dict[str, Proc]
    channel: platform_target.Channel
    base: str
    relay_stats_port: int | None = None
    secret_key: str = ""

    @property
    def database(self) -> str | None:
        return platform_target.PG_DATABASE if self.backend.is_postgres else None

    def all_sessions(self) -> dict[str, Proc]:
        return self.sessions | self.apparatus

    def sql_counts(self) -> dict[str, Any] | None:
        return pgcount.read_stats(self.relay_stats_port) if self.relay_stats_port else None

    def signal_workers(self, signum: int) -> None:
        """To the worker's whole process group (its spawned children included)."""
        if "platform worker" in self.sessions:
            os.killpg(self.sessions["platform worker"].process.pid, signum)


def sql_delta(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    if before is None or after is None:
        return {}
    statements = {
        kind: count - before["statements"].get(kind, 0)
        for kind, count in after["statements"].items()
        if count - before["statements"].get(kind, 0)
    }
    return {"round_trips": after["round_trips"] - before["round_trips"], "statements": statements}


def with_sql(platform: Platform, action: Callable[[], dict[str, Any]]) -> Callable[[], Any]:
    """`action`, with the SQL round trips the platform made meanwhile attached."""

    def counted() -> dict[str, Any]:
        before = platform.sql_counts()
        result = action()
        result["sql"] = sql_delta(before, platform.sql_counts())
        return result

    return counted


def durable_inbound(run: Run, platform: Platform) -> dict[str, Any]:
    """(a): the closed loop with the production workers paused (SIGSTOP), so that only the
    acknowledgement path runs (serve, PostgreSQL, Redis); proof that every 200 is a stored
    row; then the workers resume and the backlog's processing is measured on its own."""
    backend, scratch = platform.backend, platform.scratch
    stored_before = platform_target.event_counts(backend, scratch).total
    closed = run.closed_loop(platform.channel.webhook_url)

    def load() -> dict[str, Any]:
        result = closed.run()
        # Right after the last 200: every acknowledged event must already be a row.
        result["stored_at_ack"] = platform_target.event_counts(backend, scratch).total
        return result

    def drain() -> dict[str, Any]:
        platform.signal_workers(signal.SIGCONT)
        counts, waited = platform_target.wait_processed(
            backend, scratch, run.settings.process_timeout_seconds
        )
        return {"processed": asdict(counts), "drain_s": round(waited, 1)}

    ack_sessions = {k: v for k, v in platform.sessions.items() if k != "platform worker"}
    platform.signal_workers(signal.SIGSTOP)
    try:
        result = measured(ack_sessions, with_sql(platform, load), platform.database)
        # The workers stay paused until `drain` itself resumes them, inside its measurement:
        # resumed earlier, they would process the backlog during the quiet wait that starts
        # every measurement, and (a') would measure nothing.
        result["processing"] = measured(
            platform.sessions, with_sql(platform, drain), platform.database
        )
    finally:
        platform.signal_workers(signal.SIGCONT)
    result["workers_paused"] = "platform worker" in platform.sessions
    acknowledged = result["ok"] + run.settings.warmup
    result["stored_new"] = result["stored_at_ack"] - stored_before
    result["durable"] = result["stored_new"] >= acknowledged
    result["processing"]["events"] = result["stored_new"]
    return result


def start_platform(
    procs: Processes,
    backend: platform_target.Backend,
    scratch: Path,
    graph_url: str,
    run: Run,
    *,
    scheduler: bool = False,
) -> Platform:
    """Fresh backing services (in production: a new database behind the counting relay, and
    a Redis server of the run's own), `serve` (and in production the workers, and the
    scheduler if asked), a channel, and one webhook through the whole path."""
    log(f"platform {backend.name}: preparing")
    sessions: dict[str, Proc] = {}
    apparatus: dict[str, Proc] = {}
    relay_stats = None
    database_url = redis_url = ""
    if backend.is_postgres:
        sessions["Redis server"], redis_url = start_redis(
            procs, HOST, free_port(), platform_target.REDIS_DB
        )
        relay_port, relay_stats = free_port(), free_port()
        apparatus["SQL counting relay"] = start_sql_relay(
            procs, relay_port, relay_stats, platform_target.PG_PORT
        )
        database_url = platform_target.platform_dsn(relay_port)
    env = platform_target.platform_env(
        backend,
        scratch,
        graph_url,
        database_url=database_url,
        redis_url=redis_url,
        worker_processes=run.settings.worker_processes,
    )
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
    sessions["platform serve"] = serve
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
    return Platform(
        backend, scratch, sessions, apparatus, channel, base, relay_stats, env["SECRET_KEY"]
    )


def end_to_end(run: Run, platform: Platform, graph_url: str, profile: Path | None) -> Any:
    """(b), with py-spy sampling the workers' processes throughout when `profile` is set."""
    action = with_sql(platform, lambda: run.open_loop(platform.channel.webhook_url, graph_url))
    return profiled(run, platform, action, profile)


def profiled(run: Run, platform: Platform, action: Callable[[], Any], profile: Path | None) -> Any:
    """`action` measured, with py-spy sampling one worker process when `profile` is set."""
    sessions = platform.all_sessions()
    if profile is None or "platform worker" not in platform.sessions:
        return measured(sessions, action, platform.database)
    worker = profile_worker.first_worker(platform.sessions["platform worker"].process.pid)
    if run.settings.profile_serve:
        worker = platform.sessions["platform serve"].process.pid
    with profile_worker.Sampler(worker, profile, run.settings.profile_rate) as sampler:
        result = measured(sessions | {"profiler (py-spy)": sampler.proc}, action, platform.database)
    result["profile"] = profile_worker.summarise(profile)
    return result


def bot_flow(
    run: Run,
    platform: Platform,
    graph_url: str,
    profile: Path | None = None,
    *,
    sustained: bool = False,
) -> dict[str, Any]:
    """(c): auto-reply off, the bench bot published, customers played by load.py's flow;
    at the settings' low rate, or at their `sustained` one (the bot the low-rate run
    published answers these customers too)."""
    s = run.settings
    if not sustained:
        platform_target.set_auto_reply(platform.base, platform.channel, "")
        platform_target.publish_bench_bot(platform.base, platform.channel)
    conversations, rate = (
        (s.flow_sustained_conversations, s.flow_sustained_rate)
        if sustained
        else (s.flow_conversations, s.flow_rate)
    )
    url = platform.channel.webhook_url
    action = with_sql(
        platform, lambda: run.flow(url, graph_url, conversations=conversations, rate=rate)
    )
    return dict(profiled(run, platform, action, profile))


def bench_platform(run: Run, backend: platform_target.Backend, result: dict[str, Any]) -> None:
    """Fills `result` phase by phase (so a failed run still shows what it measured)."""
    scratch = run.scratch / backend.name
    scratch.mkdir()
    with Processes(run.logs) as procs:
        graph, graph_url = start_fake_graph(procs)
        try:
            platform = start_platform(procs, backend, scratch, graph_url, run)
            with autoanalyzed(backend):
                scenarios(run, platform, graph, graph_url, result)
        finally:
            procs.stop_all()
            platform_target.drop_backing_services(backend)


def scenarios(
    run: Run, platform: Platform, graph: Proc, graph_url: str, result: dict[str, Any]
) -> None:
    """(a), (b), and in production (c), one after the other on one platform."""
    backend = platform.backend
    log(f"platform {backend.name}: durable inbound, closed loop")
    result["inbound"] = durable_inbound(run, platform)
    platform_target.set_auto_reply(platform.base, platform.channel, platform_target.AUTO_REPLY_TEXT)
    platform.apparatus["fake Graph API"] = graph
    log(f"platform {backend.name}: auto-reply end to end, open loop")
    profile = run.scratch / "worker-profile.raw" if backend.is_postgres else None
    result["end_to_end"] = end_to_end(run, platform, graph_url, profile)
    if backend.is_postgres:
        log(f"platform {backend.name}: bot flow (c)")
        result["flow"] = bot_flow(run, platform, graph_url)
        log(f"platform {backend.name}: bot flow (c) at a sustained rate")
        result["flow_sustained"] = bot_flow(run, platform, graph_url, sustained=True)


def autoanalyzed(backend: platform_target.Backend) -> contextlib.AbstractContextManager[None]:
    """On PostgreSQL, the run's tables analyzed as they grow (see `target_platform.analyzing`:
    this machine's server runs without autovacuum)."""
    return platform_target.analyzing() if backend.is_postgres else contextlib.nullcontext()


def bench_idle(run: Run, backend: platform_target.Backend) -> dict[str, Any]:
    """(d): every process of a started platform, left alone for idle.WINDOW_SECONDS."""
    scratch = run.scratch / f"idle-{backend.name}"
    scratch.mkdir()
    result: dict[str, Any] = {"label": backend.label}
    with Processes(run.logs) as procs:
        _, graph_url = start_fake_graph(procs)
        try:
            platform = start_platform(procs, backend, scratch, graph_url, run, scheduler=True)
            time.sleep(idle.SETTLE_SECONDS)
            waited, busy_cores = cpu.wait_for_quiet()
            log(f"platform {backend.name}: idle for {idle.WINDOW_SECONDS:.0f} s")
            pg = (platform_target.PG_ADMIN_DSN, platform_target.PG_DATABASE)
            result["idle"] = idle.measure(
                {label: proc.process.pid for label, proc in platform.sessions.items()},
                pg=pg if backend.is_postgres else None,
            )
            result["quiet_wait"] = {"waited_s": waited, "busy_cores_at_start": busy_cores}
        finally:
            procs.stop_all()
            platform_target.drop_backing_services(backend)
    return result


def bench_webchat(run: Run, options: webchat.Options) -> dict[str, Any]:
    """(f): the production platform holding idle widget sockets, and visitor → agent
    latency under load (bench/webchat.py plays the visitors and the agent)."""
    scratch = run.scratch / "webchat"
    scratch.mkdir()
    with Processes(run.logs) as procs:
        _, graph_url = start_fake_graph(procs)
        try:
            platform = start_platform(procs, platform_target.POSTGRES, scratch, graph_url, run)
            channel_id = webchat.create_channel(platform.base, platform.channel)
            waited, busy_cores = cpu.wait_for_quiet()
            log(f"webchat: {options.idle:,} idle sockets, then rates {options.rates}")
            pids = {label: proc.process.pid for label, proc in platform.sessions.items()}
            argv = bench_script(
                "webchat.py",
                *("--base", platform.base, "--workspace", platform.channel.workspace_id),
                # `=`: a random secret or token may start with "-", which argparse would
                # take for an option of its own (a run failed so).
                *("--channel", channel_id, f"--token={platform.channel.token}"),
                *(f"--secret={platform.secret_key}", "--pids", webchat.pids_arg(pids)),
                *options.argv(),
            )
            result = webchat.run_generator(argv)
            result["quiet_wait"] = {"waited_s": waited, "busy_cores_at_start": busy_cores}
            result["load_average"] = [round(v, 2) for v in os.getloadavg()]
            result["worker_processes"] = run.settings.worker_processes
            return result
        finally:
            procs.stop_all()
            platform_target.drop_backing_services(platform_target.POSTGRES)


# -- main -------------------------------------------------------------------------------------

TARGETS = ("bare", "pywa", "sqlite", "postgres", "idle", "webchat")


def summary(results: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of a partial run (what the report would compute)."""
    from report import headline

    return headline(results)


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


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
    parser.add_argument(
        "--recipients",
        type=int,
        default=broadcast.DEFAULT_RECIPIENTS,
        help="with --only broadcast or broadcast-procs: the broadcast's size (shrink it on a "
        "shared machine)",
    )
    parser.add_argument(
        "--broadcast-report",
        action="store_true",
        help="with --only broadcast (or broadcast-procs): write scenario (e) (or its "
        "real-processes block) into the report, leaving the rest",
    )
    parser.add_argument(
        "--webchat-report",
        action="store_true",
        help="with --only webchat: write scenario (f) into the report, leaving the rest",
    )
    webchat.add_options(parser)
    parser.add_argument(
        "--from-results",
        type=Path,
        help="write the report from a run's saved results.json instead of measuring",
    )
    args = parser.parse_args()
    # SIGTERM (and SIGINT, which a shell ignores in a background job) end the run through its
    # `finally` blocks, so every process it started is stopped and its databases dropped.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)
    if args.from_results:
        write_report(json.loads(args.from_results.read_text()), args.output)
        log(f"wrote {args.output} from {args.from_results}")
        return
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    settings = Settings()
    scratch = Path(tempfile.mkdtemp(prefix="botplatform-bench-"))
    run = Run(settings, scratch)
    started = time.monotonic()
    log(f"scratch directory {scratch}")
    results: dict[str, Any] = {"machine": machine_info(), "settings": asdict(settings)}
    results["started_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    try:
        if "bare" in only:
            results["bare"] = bench_bare(run)
        if "pywa" in only:
            results["pywa"] = bench_pywa(run)
        for backend in (platform_target.SQLITE, platform_target.POSTGRES):
            if backend.name in only:
                results[backend.name] = {"label": backend.label}
                bench_platform(run, backend, results[backend.name])
        if "broadcast" in only:
            results["broadcast"] = broadcast.run_all(
                args.recipients,
                broadcast.DEFAULT_RATE,
                {"throughput", "fairness", "resilience", "cpu"},
            )
        if "broadcast-procs" in only:
            results["broadcast_procs"] = broadcast_procs.run(
                args.recipients,
                broadcast_procs.DEFAULT_RECIPIENTS,
                broadcast_procs.DEFAULT_RATE,
                broadcast_procs.SAMPLES,
                {"fairness", "throughput"},
                broadcast_procs.DEFAULT_REDIS_PORT,
                {},
            )
        if "webchat" in only:
            results["webchat"] = bench_webchat(run, webchat.Options.of(args))
        if "idle" in only:
            results["idle"] = {
                backend.name: bench_idle(run, backend)
                for backend in (platform_target.SQLITE, platform_target.POSTGRES)
            }
    finally:
        # Kept even when a phase fails: what was measured up to there, for a look.
        results["duration_s"] = round(time.monotonic() - started)
        scratch.mkdir(parents=True, exist_ok=True)  # a /tmp cleaner may have taken it meanwhile
        (scratch / "results.json").write_text(json.dumps(results, indent=2))
    if set(only) != set(TARGETS):
        print(json.dumps(summary(results), indent=2))
        if only == ["broadcast"] and args.broadcast_report:
            broadcast.write_section(results["broadcast"], args.output, results["machine"])
            log(f"replaced the broadcast section of {args.output}")
        if only == ["broadcast-procs"] and args.broadcast_report:
            machine = results["machine"]
            broadcast_procs.write_section(results["broadcast_procs"], args.output, machine)
            log(f"replaced the real-processes block of the broadcast section of {args.output}")
        if only == ["webchat"] and args.webchat_report:
            report_webchat.write_section(results, args.output)
            log(f"replaced the webchat section of {args.output}")
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
