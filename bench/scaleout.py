"""Scale-out on loopback: Debian's nginx in front of 3 `serve` processes, 2 `worker`
processes and 1 `scheduler`, PgBouncer (transaction pooling) in front of a PostgreSQL cluster
of the run's own, a Redis of the run's own, and the fake Graph API. Under a steady webhook
load (every customer new, every message auto-replied):

- the auth rate limit holds across the three processes (nginx spreads the attempts);
- a live-inbox socket held by app 1 sees a message that arrived through app 3;
- app 2 and worker 1 are killed with SIGKILL mid-load; Redis is restarted; then PostgreSQL;
- afterwards every webhook that was acknowledged has been processed and answered exactly
  once (nothing lost, nothing sent twice).

    uv run --frozen python bench/scaleout.py [--rate 10] [--seconds 40] [--markdown] [--write]

Senders retry a webhook that was not acknowledged, as Meta does (every 1 s, up to 30 times).
Prints the figures as JSON (and the docs/benchmarks.md section with --markdown). Not part of
the test command: it takes about five minutes and most of a small machine. `--write`
puts the figures into docs/benchmarks.md (its own section, kept by bench/run.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx
from common import HOST, free_port, signed_request, text_for, wa_id_for
from sections import SCALEOUT_HEADING, replace_section
from servers import (
    Proc,
    Processes,
    base_env,
    bench_script,
    botplatform_command,
    start_redis,
    wait_ready,
)
from target_platform import create_channel, set_auto_reply

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test suite's PostgreSQL and PgBouncer helpers

from tests.scale.servers import Cluster, own_cluster, pgbouncer  # noqa: E402

APP_ROLE = "botplatform_app"
DATABASE = "botplatform"
PREFIX = "4470"
AUTH_LIMIT = 5
RETRY_EVERY_SECONDS = 1.0
MAX_ATTEMPTS = 30
AUTO_REPLY = "Thanks, we got your message."


@dataclass
class Outage:
    name: str
    at_second: float
    down_seconds: float = 0.0
    first_ack_after_seconds: float | None = None
    first_reply_after_seconds: float | None = None


@dataclass
class Figures:
    rate_per_second: float
    load_seconds: float
    webhooks: int = 0
    attempts: int = 0
    acknowledged: int = 0
    never_acknowledged: int = 0
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    answered: int = 0
    in_doubt: int = 0
    lost: int = 0
    events_pending: int = 0
    sent_twice: int = 0
    events_failed: int = 0
    drained_seconds: float = 0.0
    auth_attempts: int = 0
    auth_allowed: int = 0
    auth_limit: int = AUTH_LIMIT
    socket_on_app1_saw_app3: bool = False
    socket_seconds: float | None = None
    outages: list[Outage] = field(default_factory=list)


# -- the load ---------------------------------------------------------------------------------


@dataclass
class Sender:
    url: str
    sent_at: dict[str, float] = field(default_factory=dict)  # wa_id → first attempt
    acked_at: dict[str, float] = field(default_factory=dict)  # wa_id → acknowledgement
    kinds: Counter[str] = field(default_factory=Counter)
    attempts: int = 0

    async def deliver(self, session: aiohttp.ClientSession, seq: int) -> None:
        wa_id = wa_id_for(PREFIX, seq)
        body, headers = signed_request(wa_id, text_for(seq))
        self.sent_at[wa_id] = time.time()
        for _ in range(MAX_ATTEMPTS):
            self.attempts += 1
            try:
                async with session.post(self.url, data=body, headers=headers) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError) as error:
                self.kinds[f"transport:{type(error).__name__}"] += 1
                status = 0
            if status == 200:
                self.acked_at[wa_id] = time.time()
                return
            if status:
                self.kinds[f"http_{status}"] += 1
            await asyncio.sleep(RETRY_EVERY_SECONDS)


async def steady_load(sender: Sender, rate: float, seconds: float) -> None:
    timeout = aiohttp.ClientTimeout(total=35)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        started = time.monotonic()
        tasks: list[asyncio.Task[None]] = []
        for seq in range(int(rate * seconds)):
            delay = started + seq / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(sender.deliver(session, seq)))
        await asyncio.gather(*tasks)


# -- the checks beside the load ----------------------------------------------------------------


async def auth_limit_holds(nginx: str) -> tuple[int, int]:
    """Logins with a wrong password through nginx (round robin over three processes): only
    AUTH_LIMIT of them may be tried within the minute, whichever process takes them."""
    statuses = []
    async with httpx.AsyncClient(base_url=nginx, timeout=10) as http:
        for _ in range(AUTH_LIMIT * 3):
            response = await http.post(
                "/api/v1/auth/login",
                json={"email": "nobody@example.com", "password": "not-the-password-1"},
            )
            statuses.append(response.status_code)
    return len(statuses), sum(1 for status in statuses if status != 429)


async def socket_sees_other_process(
    app1: str, app3: str, workspace_id: str, channel_id: str, token: str
) -> float | None:
    """A live socket on app 1; a webhook posted to app 3; seconds until the socket saw it."""
    from websockets.asyncio.client import connect

    url = f"{app1.replace('http', 'ws')}/api/v1/workspaces/{workspace_id}/events/ws"
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as socket:
        json.loads(await asyncio.wait_for(socket.recv(), 10))  # live.subscribed
        body, headers = signed_request(wa_id_for("4471", 1), "seen on app 1?")
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=10) as http:
            posted = await http.post(
                f"{app3}/webhooks/whatsapp/{channel_id}", content=body, headers=headers
            )
        if posted.status_code != 200:
            return None
        while time.monotonic() - started < 30:
            event = json.loads(await asyncio.wait_for(socket.recv(), 30))
            if not event["type"].startswith("live."):  # the message, its contact, …
                return time.monotonic() - started
    return None


# -- the platform ------------------------------------------------------------------------------


@dataclass
class Platform:
    run: Path
    env: dict[str, str]
    procs: Processes
    cluster: Cluster
    graph: str
    nginx: str
    apps: list[tuple[Proc, str]]
    workers: list[Proc]
    redis: Proc
    redis_port: int


def platform_env(run: Path, cluster: Cluster, bouncer_url: str, redis: str, graph: str) -> dict:
    return base_env(
        {
            "APP_ENV": "production",
            "SECRET_KEY": "scale-out-bench-secret-key-0123456789abcdef",
            "DATA_DIR": str(run / "data"),
            "LOG_DIR": str(run / "logs"),
            "LOG_LEVEL": "WARNING",
            "LOG_TO_STDOUT": "false",
            "DATABASE_URL": bouncer_url,
            "DATABASE_OWNER_URL": cluster.url(database=DATABASE),
            "DATABASE_POOL_MODE": "transaction",
            "DATABASE_POOL_SIZE": "5",
            "REDIS_URL": redis,
            "WHATSAPP_API_BASE_URL": graph,
            "WORKER_PROCESSES": "1",
            "WORKER_THREADS": "4",
            "WORKER_NICE": "0",
            "AUTO_MIGRATE": "false",
            "WORKER_IN_PROCESS": "false",
            "SCHEDULER_IN_PROCESS": "false",
            "RATE_LIMIT_AUTH": f"{AUTH_LIMIT}/minute",
            "RATE_LIMIT_WEBHOOKS": "1000000/minute",
            "RATE_LIMIT_GENERAL": "1000000/minute",
            "TRUSTED_PROXIES": "127.0.0.1",
            # Short, so recoveries fit in a short run: a dead worker's jobs come back after
            # 5 s without its heartbeat; work left pending is swept after 10 s.
            "QUEUE_HEARTBEAT_TIMEOUT_MS": "5000",
            "SWEEP_AFTER_SECONDS": "10",
            "SEND_LEASE_SECONDS": "10",
        }
    )


async def create_database(cluster: Cluster) -> None:
    connection = await asyncpg.connect(cluster.url())
    try:
        await connection.execute(f'CREATE ROLE "{APP_ROLE}" LOGIN')
        await connection.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await connection.close()


def start_nginx(procs: Processes, run: Path, app_ports: list[int]) -> tuple[Proc, str]:
    port = free_port()
    (run / "nginx-tmp").mkdir(mode=0o777)
    (run / "nginx-tmp").chmod(0o777)  # nginx's workers run as nobody
    servers = "\n".join(f"    server {HOST}:{p} max_fails=1 fail_timeout=5s;" for p in app_ports)
    template = (Path(__file__).parent / "scaleout_nginx.conf").read_text()
    config = run / "nginx.conf"
    config.write_text(template.format(run=run, servers=servers, port=port))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = procs.start("nginx", [nginx, "-c", str(config), "-p", str(run)], base_env(), run)
    return proc, f"http://{HOST}:{port}"


def start_platform(
    procs: Processes, env: dict[str, str]
) -> tuple[list[tuple[Proc, str]], list[Proc]]:
    apps = []
    for index in range(3):
        port = free_port()
        argv = botplatform_command("serve", "--port", str(port))
        apps.append((procs.start(f"app{index + 1}", argv, env, ROOT), f"http://{HOST}:{port}"))
    workers = [
        procs.start(f"worker{n + 1}", botplatform_command("worker"), env, ROOT) for n in range(2)
    ]
    procs.start("scheduler", botplatform_command("scheduler"), env, ROOT)
    for proc, url in apps:
        wait_ready(proc, f"{url}/health/live", timeout_seconds=180)
    return apps, workers


# -- what happened -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    events_pending: int
    events_failed: int
    sends_owed: int  # replies still to send (queued, or leased before their request left)
    in_doubt: frozenset[str]  # customers whose reply's provider call the killed worker began


async def stored(cluster: Cluster) -> Stored:
    connection = await asyncpg.connect(cluster.url(database=DATABASE))
    try:
        events = await connection.fetchrow(
            "SELECT count(*) FILTER (WHERE status = 'pending'),"
            " count(*) FILTER (WHERE status = 'failed') FROM inbound_events"
        )
        owed = await connection.fetchval(
            "SELECT count(*) FROM messages WHERE direction = 'outbound'"
            " AND status IN ('queued', 'sending') AND send_attempted_at IS NULL"
        )
        # Never resent by design (its request may have arrived): the provider's status settles it.
        doubtful = await connection.fetch(
            "SELECT i.external_id FROM messages m"
            " JOIN conversations c ON c.id = m.conversation_id"
            " JOIN contact_identities i ON i.contact_id = c.contact_id"
            " WHERE m.direction = 'outbound' AND m.status = 'sending'"
            " AND m.send_attempted_at IS NOT NULL"
        )
    finally:
        await connection.close()
    assert events is not None
    in_doubt = frozenset(str(row[0]) for row in doubtful)
    return Stored(int(events[0]), int(events[1]), int(owed), in_doubt)


def arrivals(graph: str) -> dict[str, list[float]]:
    response = httpx.get(f"{graph}/_bench/arrivals", params={"prefix": PREFIX}, timeout=30)
    return dict(response.json())


async def drain(platform: Platform, sender: Sender, deadline_seconds: float) -> float:
    """Waits until nothing is pending and every acknowledged customer has had a reply."""
    started = time.monotonic()
    while time.monotonic() - started < deadline_seconds:
        now = await stored(platform.cluster)
        replied = arrivals(platform.graph)
        settled = [w for w in sender.acked_at if w in replied or w in now.in_doubt]
        if now.events_pending == 0 and now.sends_owed == 0 and len(settled) == len(sender.acked_at):
            break
        await asyncio.sleep(1)
    return time.monotonic() - started


def kill_now(proc: Proc) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.process.pid, signal.SIGKILL)
    proc.process.wait(timeout=10)


def restart_redis(platform: Platform) -> float:
    started = time.monotonic()
    kill_now(platform.redis)
    platform.redis, _ = start_redis(platform.procs, HOST, platform.redis_port, 0)
    return time.monotonic() - started


def restart_postgres(platform: Platform) -> float:
    started = time.monotonic()
    platform.cluster.ctl("restart", "-m", "fast")
    return time.monotonic() - started


async def disrupt(platform: Platform, sender: Sender, figures: Figures, seconds: float) -> None:
    """Kills and restarts at fixed points of the load."""
    begun = time.monotonic()

    async def at(fraction: float) -> float:
        await asyncio.sleep(max(0.0, begun + seconds * fraction - time.monotonic()))
        return time.time()

    at_kill = await at(0.2)
    kill_now(platform.apps[1][0])
    kill_now(platform.workers[0])
    figures.outages.append(Outage("kill -9 app 2 and worker 1", at_kill - sender_start(sender)))
    at_redis = await at(0.45)
    down = restart_redis(platform)
    figures.outages.append(Outage("restart Redis", at_redis - sender_start(sender), down))
    at_pg = await at(0.7)
    down = await asyncio.to_thread(restart_postgres, platform)
    figures.outages.append(Outage("restart PostgreSQL", at_pg - sender_start(sender), down))


def sender_start(sender: Sender) -> float:
    return min(sender.sent_at.values(), default=time.time())


def recoveries(figures: Figures, sender: Sender, replied: dict[str, list[float]]) -> None:
    """For each outage: from its start, the first acknowledgement of a webhook sent after it,
    and the first reply to one."""
    origin = sender_start(sender)
    for outage in figures.outages:
        at = origin + outage.at_second
        later = [w for w, t in sender.sent_at.items() if t >= at]
        acks = [sender.acked_at[w] for w in later if w in sender.acked_at]
        replies = [min(replied[w]) for w in later if w in replied]
        if acks:
            outage.first_ack_after_seconds = round(min(acks) - at, 2)
        if replies:
            outage.first_reply_after_seconds = round(min(replies) - at, 2)
        outage.at_second = round(outage.at_second, 1)
        outage.down_seconds = round(outage.down_seconds, 2)


# -- the run -----------------------------------------------------------------------------------


async def scenario(platform: Platform, channel: Any, figures: Figures) -> None:
    figures.auth_attempts, figures.auth_allowed = await auth_limit_holds(platform.nginx)
    seen = await socket_sees_other_process(
        platform.apps[0][1], platform.apps[2][1], channel.workspace_id, channel.id, channel.token
    )
    figures.socket_on_app1_saw_app3 = seen is not None
    figures.socket_seconds = None if seen is None else round(seen, 3)

    sender = Sender(f"{platform.nginx}/webhooks/whatsapp/{channel.id}")
    load = asyncio.create_task(steady_load(sender, figures.rate_per_second, figures.load_seconds))
    await asyncio.sleep(0.5)
    await disrupt(platform, sender, figures, figures.load_seconds)
    await load
    figures.drained_seconds = round(await drain(platform, sender, 240), 1)

    replied = arrivals(platform.graph)
    end = await stored(platform.cluster)
    figures.webhooks = len(sender.sent_at)
    figures.attempts = sender.attempts
    figures.acknowledged = len(sender.acked_at)
    figures.never_acknowledged = figures.webhooks - figures.acknowledged
    figures.errors_by_kind = dict(sorted(sender.kinds.items()))
    figures.answered = sum(1 for wa_id in sender.acked_at if wa_id in replied)
    # In doubt and never arrived (one that arrived is answered, whatever its row says).
    figures.in_doubt = sum(1 for w in sender.acked_at if w in end.in_doubt and w not in replied)
    figures.lost = figures.acknowledged - figures.answered - figures.in_doubt
    figures.sent_twice = sum(1 for times in replied.values() if len(times) > 1)
    figures.events_failed = end.events_failed
    figures.events_pending = end.events_pending
    recoveries(figures, sender, replied)


def run(rate: float, seconds: float) -> Figures:
    figures = Figures(rate_per_second=rate, load_seconds=seconds)
    run_dir = Path(tempfile.mkdtemp(prefix="scaleout-"))
    run_dir.chmod(0o755)
    (run_dir / "logs").mkdir()
    print(f"run directory: {run_dir}", file=sys.stderr)
    with own_cluster("bench") as cluster, Processes(run_dir / "logs") as procs:
        asyncio.run(create_database(cluster))
        with pgbouncer(
            cluster.url(database=DATABASE), ["postgres", APP_ROLE], pool_size=20
        ) as bouncer:
            redis_port = free_port()
            redis_proc, redis_url = start_redis(procs, HOST, redis_port, 0)
            graph_port = free_port()
            graph_proc = procs.start(
                "fake-graph", bench_script("serve.py", "fake-graph", "--port", str(graph_port)),
                base_env(), Path(__file__).parent,
            )  # fmt: skip
            graph = f"http://{HOST}:{graph_port}"
            wait_ready(graph_proc, f"{graph}/_bench/health")
            app_url = f"postgresql://{APP_ROLE}@{HOST}:{bouncer.port}/{DATABASE}"
            env = platform_env(run_dir, cluster, app_url, redis_url, graph)
            subprocess.run(  # noqa: S603 - our own interpreter
                botplatform_command("db", "migrate"), env=env, cwd=ROOT, check=True,
                timeout=300, capture_output=True,
            )  # fmt: skip
            apps, workers = start_platform(procs, env)
            _, nginx = start_nginx(procs, run_dir, [int(url.rsplit(":", 1)[1]) for _, url in apps])
            wait_ready(apps[0][0], f"{nginx}/health/live")
            channel = create_channel(nginx, env, ROOT)
            set_auto_reply(nginx, channel, AUTO_REPLY)
            platform = Platform(
                run_dir, env, procs, cluster, graph, nginx, apps, workers, redis_proc, redis_port
            )
            asyncio.run(scenario(platform, channel, figures))
    shutil.rmtree(run_dir / "nginx-tmp", ignore_errors=True)  # the logs stay, to be read
    return figures


def markdown(figures: Figures) -> str:
    lines = [
        "| outage | at (s) | down (s) | first ack after (s) | first reply after (s) |",
        "|---|---|---|---|---|",
    ]
    for outage in figures.outages:
        lines.append(
            f"| {outage.name} | {outage.at_second} | {outage.down_seconds} | "
            f"{outage.first_ack_after_seconds} | {outage.first_reply_after_seconds} |"
        )
    errors = ", ".join(f"{k}: {v}" for k, v in figures.errors_by_kind.items()) or "none"
    return "\n".join(
        [
            f"- Load: {figures.rate_per_second:g} new customers/s for {figures.load_seconds:g} s "
            f"through nginx: {figures.webhooks} webhooks, {figures.attempts} attempts "
            f"(senders retry every {RETRY_EVERY_SECONDS:g} s, as Meta does).",
            f"- Acknowledged: {figures.acknowledged}; never acknowledged: "
            f"{figures.never_acknowledged}. Errors seen by senders, by kind: {errors}.",
            f"- Answered: {figures.answered} of {figures.acknowledged} acknowledged; in doubt "
            f"(the killed worker was inside the provider call): {figures.in_doubt}; lost: "
            f"{figures.lost}; answered twice: {figures.sent_twice}; inbound events failed: "
            f"{figures.events_failed}, still pending: {figures.events_pending}; drained "
            f"{figures.drained_seconds} s after the load ended.",
            f"- Auth rate limit ({figures.auth_limit}/minute per IP) across 3 processes: "
            f"{figures.auth_allowed} of {figures.auth_attempts} attempts let through.",
            f"- Live socket on app 1 saw a message posted to app 3: "
            f"{figures.socket_on_app1_saw_app3} ({figures.socket_seconds} s).",
            "",
            *lines,
        ]
    )


def section(figures: Figures, started_at: str) -> str:
    """The docs/benchmarks.md section of this run."""
    return "\n".join(
        [
            SCALEOUT_HEADING,
            "",
            f"Generated by `uv run --frozen python bench/scaleout.py --rate "
            f"{figures.rate_per_second:g} --seconds {figures.load_seconds:g} --write`, started "
            f"{started_at}, on the shared two-core machine above. Debian's nginx (round robin) "
            "in front of 3 `serve` processes, 2 `worker` processes (1 process, 4 threads each) "
            "and 1 `scheduler`; PgBouncer 1.18 in transaction pooling mode "
            "(`DATABASE_POOL_MODE=transaction`, 20 server connections, `server_login_retry = "
            "1`) in front of a "
            "PostgreSQL cluster made for the run; a Redis of the run's own; the fake Graph API. "
            "Every webhook is a new customer whose text gets the channel's auto-reply. "
            "Disruptions at fixed points of the load: SIGKILL to app 2 and worker 1 (neither "
            "restarted), Redis stopped and started again (it keeps nothing: the queued jobs "
            "are gone), PostgreSQL restarted (`pg_ctlcluster restart -m fast`). Short "
            "recovery settings for a short run: `QUEUE_HEARTBEAT_TIMEOUT_MS=5000`, "
            "`SWEEP_AFTER_SECONDS=10`, `SEND_LEASE_SECONDS=10`.",
            "",
            markdown(figures),
            "",
            "- *first ack after*: from the disruption to the first acknowledgement of a "
            "webhook sent after it; *first reply after*: to the first auto-reply to one. "
            "*down*: how long the restart command took.",
            "- Errors are what senders saw before a retry succeeded; every one was retried "
            "to a 200. 503: Redis or PostgreSQL restarting (the request did nothing). 502: "
            "requests the killed app held (nginx sends everything after them elsewhere). A "
            "500 would be a failure the platform did not recognise as a lost connection (a "
            "bug: see the logs the run leaves in its directory).",
            "- *In doubt*: replies whose provider request the killed worker had started "
            "(the marker was committed, the answer never came back). By design they are never "
            'sent again automatically (docs/operations.md, "Outbound sends"): a real '
            "provider's status webhook settles them, else they end `delivery_unknown` with a "
            "Resend button. The fake Graph API here sends no statuses.",
            "- Inbound messages whose jobs the restarted Redis lost are processed from their "
            "rows by the sweeper (the scheduler fires it each minute); *drained* counts from "
            "the end of the load until nothing was pending and every acknowledged customer "
            "was answered (or in doubt).",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--markdown", action="store_true", help="print the figures' section")
    parser.add_argument("--write", action="store_true", help="into docs/benchmarks.md")
    args = parser.parse_args()
    started_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    figures = run(args.rate, args.seconds)
    print(json.dumps(asdict(figures), indent=2))
    if args.markdown:
        print(section(figures, started_at))
    if args.write:
        replace_section(
            ROOT / "docs" / "benchmarks.md", SCALEOUT_HEADING, section(figures, started_at)
        )


if __name__ == "__main__":
    main()
