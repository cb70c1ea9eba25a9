"""Scenario (e) with real processes, as production runs (issue 15, items 5 and 10):
`botplatform serve`, two `botplatform worker` processes (each with its bulk child, see
worker/bulk.py), `botplatform scheduler` and the fake Graph API (bench/broadcast_graph.py,
its status webhooks on) as separate OS processes, on PostgreSQL (the shared server, a database
of the run's own) and a Redis server of the run's own. The harness only sets up (through the
API, contacts in bulk through the models), plays customers and reads the results.

(b) fairness: workspace A's inbound → auto-reply latency (webhook posted → reply accepted at
    the provider) alone, then while workspace B's broadcast of `--fair-recipients` runs; p99
    of each and their ratio (target < 2);
(a) throughput: a broadcast of `--recipients` on a channel capped at `--rate`, one worker
    SIGKILLed (its whole process group: the worker and its bulk child) when half were sent
    and another started: time to materialise, sustained msg/s, seconds over the cap at the
    provider, duplicates, lost, `delivery_unknown` (and how many of those had arrived);
    CPU per broadcast send by process (serve, workers' message path, workers' bulk children,
    scheduler, PostgreSQL backends, Redis, fake provider), from /proc.

`uv run --frozen python bench/broadcast_procs.py --recipients 10000` (or
`bench/run.py --only broadcast-procs`); `--report` writes its part of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import cpu
import httpx
from common import ACCESS_TOKEN, APP_SECRET, HOST, WABA_ID, free_port
from servers import (
    Proc,
    Processes,
    base_env,
    bench_script,
    botplatform_command,
    start_redis,
    wait_ready,
)
from target_platform import PG_SOCKET_DIR, analyzing, recreate_database

from botplatform.sandbox import payloads

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent

DEFAULT_RECIPIENTS = 10_000
DEFAULT_RATE = 1_000
SAMPLES = 40
SAMPLE_EVERY = 0.25  # seconds between A's customers (open loop: none waits for another)
FLOOR_SECONDS = 0.05  # below this a p99 is timer noise (as tests/broadcast/test_broadcast_fairness)
_CHECKOUT = re.sub(r"[^a-z0-9]+", "", REPO.name.lower())
PG_DATABASE = os.environ.get("BENCH_PROCS_PG_DATABASE", f"bp_procs_{_CHECKOUT}"[:63])
PG_HARNESS = f"postgresql://postgres@/{PG_DATABASE}?host={PG_SOCKET_DIR}"
NUMBER_A, NUMBER_B = "2233445566778", "3344556677889"
LEASE_SECONDS = 10  # send and driver leases (production: 60): a dead worker's work returns soon
STALLED_SECONDS = 20  # statuses not moving for this long: the rest are not coming
SECTION = "broadcast-procs"
#: The run's own Redis server (started and stopped by it); BENCH_REDIS_PORT chooses another.
DEFAULT_REDIS_PORT = int(os.environ.get("BENCH_REDIS_PORT", "6388"))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def load1() -> float:
    return round(os.getloadavg()[0], 2)


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, round(0.99 * len(ordered)) - 1)]


# -- the platform's processes -----------------------------------------------------------------


@dataclass
class Stack:
    procs: Processes
    env: dict[str, str]
    base: str
    graph: str
    run_dir: Path
    #: Whether the fake provider posts status webhooks (`--no-statuses`: the sending path alone).
    statuses: bool = True
    labelled: dict[str, Proc] = field(default_factory=dict)
    workers: list[Proc] = field(default_factory=list)

    def start_worker(self) -> Proc:
        name = f"worker-{len(self.workers)}"
        proc = self.procs.start(name, botplatform_command("worker"), self.env, self.run_dir)
        self.workers.append(proc)
        return proc


def platform_env(
    run_dir: Path, graph_url: str, redis_url: str, extra: dict[str, str]
) -> dict[str, str]:
    env = {
        "APP_ENV": "production",
        "SECRET_KEY": uuid.uuid4().hex * 2,
        "DATA_DIR": str(run_dir / "data"),
        "LOG_DIR": str(run_dir / "logs"),
        "LOG_LEVEL": "WARNING",
        "LOG_TO_STDOUT": "false",
        "RATE_LIMIT_ENABLED": "false",
        "WHATSAPP_API_BASE_URL": graph_url,
        "DATABASE_URL": f"postgresql://postgres@{HOST}:5432/{PG_DATABASE}",
        "REDIS_URL": redis_url,
        "WORKER_PROCESSES": "1",  # two `botplatform worker` processes, one to be SIGKILLed
        # As bench/target_platform.py: the default (10) would put the workers behind every
        # neighbour's test run on this shared machine. The bulk child still goes below them.
        "WORKER_NICE": "0",
        "AUTO_MIGRATE": "false",
        "WORKER_IN_PROCESS": "false",
        "SCHEDULER_IN_PROCESS": "false",
        "SEND_LEASE_SECONDS": str(LEASE_SECONDS),
        "SEND_UNKNOWN_GRACE_SECONDS": str(LEASE_SECONDS),
        "QUEUE_HEARTBEAT_TIMEOUT_MS": "5000",
    }
    return base_env(env | extra)


async def _lift_quotas() -> None:
    """Every plan without the quotas a large broadcast meets (as the tests do), before any
    process has read (and cached) the plans."""
    connection = await asyncpg.connect(PG_HARNESS)
    try:
        await connection.execute(
            "UPDATE plans SET recipients_per_broadcast = NULL, recipients_per_month = NULL, "
            "messages_per_month = NULL"
        )
    finally:
        await connection.close()


@contextlib.contextmanager
def platform(
    run_dir: Path, redis_port: int, extra: dict[str, str], statuses: bool = True
) -> Iterator[Stack]:
    """Redis, the fake provider, a fresh migrated database, serve, two workers, the
    scheduler: all stopped (and the database dropped) when the block ends."""
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    with Processes(run_dir / "logs") as procs:
        redis_proc, redis_url = start_redis(procs, HOST, redis_port, 0)
        graph_port = free_port()
        graph_url = f"http://{HOST}:{graph_port}"
        graph = procs.start(
            "fake-graph",
            bench_script(
                "broadcast_graph.py",
                "--port",
                str(graph_port),
                *([] if statuses else ["--no-statuses"]),
            ),
            base_env(),
            BENCH,
        )
        wait_ready(graph, f"{graph_url}/_bench/health")
        env = platform_env(run_dir, graph_url, redis_url, extra)
        asyncio.run(recreate_database(False, PG_DATABASE))
        try:
            import subprocess

            subprocess.run(  # noqa: S603 - our own interpreter
                botplatform_command("db", "migrate"),
                env=env,
                cwd=run_dir,
                check=True,
                timeout=300,
                capture_output=True,
            )
            asyncio.run(_lift_quotas())
            port = free_port()
            base = f"http://{HOST}:{port}"
            serve = procs.start(
                "serve", botplatform_command("serve", "--port", str(port)), env, run_dir
            )
            wait_ready(serve, f"{base}/health/ready", timeout_seconds=180)
            stack = Stack(procs, env, base, graph_url, run_dir, statuses)
            stack.labelled = {"serve": serve, "fake provider": graph, "Redis": redis_proc}
            stack.start_worker()
            stack.start_worker()
            stack.labelled["scheduler"] = procs.start(
                "scheduler", botplatform_command("scheduler"), env, run_dir
            )
            yield stack
        finally:
            procs.stop_all()
            asyncio.run(recreate_database(True, PG_DATABASE))


# -- setup through the API --------------------------------------------------------------------


@dataclass
class Workspace:
    ws: str
    channel_id: str
    headers: dict[str, str]


def _data(response: httpx.Response) -> Any:
    if response.status_code >= 300:
        raise RuntimeError(
            f"{response.request.url} answered {response.status_code}: {response.text}"
        )
    return response.json()["data"]


async def workspace(http: httpx.AsyncClient, graph: str, number: str, **channel: Any) -> Workspace:
    password = uuid.uuid4().hex + "Aa1!"
    login = _data(
        await http.post(
            "/api/v1/auth/register",
            json={
                "email": f"{uuid.uuid4().hex[:10]}@example.com",
                "password": password,
                "name": "B",
            },
        )
    )
    headers = {"Authorization": f"Bearer {login['access_token']}"}
    ws = _data(await http.post("/api/v1/workspaces", json={"name": number}, headers=headers))["id"]
    body = {
        "name": number,
        "phone_number_id": number,
        "business_account_id": WABA_ID,
        "access_token": ACCESS_TOKEN,
        "app_secret": APP_SECRET,
        **channel,
    }
    created = _data(
        await http.post(f"/api/v1/workspaces/{ws}/channels", json=body, headers=headers)
    )
    hook = f"{str(http.base_url).rstrip('/')}/webhooks/whatsapp/{created['id']}"
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"{graph}/_sandbox/channels", json={"phone_number_id": number, "webhook_url": hook}
        )
        answer.raise_for_status()
    return Workspace(str(ws), str(created["id"]), headers)


async def add_audience(ws: str, count: int, tag: str, first: int) -> None:
    """Opted-in contacts with `tag`, inserted in bulk as an import would leave them (the
    models' columns, written by the harness over the Unix socket: not measured)."""
    connection = await asyncpg.connect(PG_HARNESS)
    try:
        await connection.execute(
            """
            WITH made AS (
              INSERT INTO contacts (id, workspace_id, name, attributes, tags, opted_out,
                                    email_opted_out, created_at, updated_at)
              SELECT gen_random_uuid(), $1::uuid, 'Customer ' || g, '{}'::json,
                     json_build_array($2::text), false, false, now(), now()
              FROM generate_series($3::int, $3::int + $4::int - 1) AS g
              RETURNING id, name
            )
            INSERT INTO contact_identities (id, workspace_id, contact_id, provider, external_id,
                                            created_at, updated_at)
            SELECT gen_random_uuid(), $1::uuid, id, 'whatsapp',
                   '1555' || lpad(substr(name, 10), 7, '0'), now(), now()
            FROM made
            """,
            ws,
            tag,
            first,
            count,
        )
    finally:
        await connection.close()


async def start_broadcast(http: httpx.AsyncClient, b: Workspace, tag: str) -> str:
    definition = {
        "match": "all",
        "conditions": [{"type": "tags", "operator": "has_any", "values": [tag]}],
    }
    segment = _data(
        await http.post(
            f"/api/v1/workspaces/{b.ws}/segments",
            json={"name": f"Tagged {tag}", "definition": definition},
            headers=b.headers,
        )
    )
    message = {
        "type": "template",
        "template": {
            "name": "spring_sale",
            "language": "en_US",
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "{{first}}"}]}],
        },
        "variables": {"first": {"attribute": "name", "default": "friend"}},
    }
    base = f"/api/v1/workspaces/{b.ws}/broadcasts"
    created = _data(
        await http.post(
            base,
            json={
                "name": tag,
                "channel_id": b.channel_id,
                "message": message,
                "audience": {"type": "segment", "segment_id": segment["id"]},
            },
            headers=b.headers,
        )
    )
    _data(await http.post(f"{base}/{created['id']}/start", headers=b.headers))
    return str(created["id"])


# -- what the provider saw --------------------------------------------------------------------


class Accepted:
    """The provider's record of accepted messages, read incrementally."""

    def __init__(self, graph: str) -> None:
        self.graph = graph
        self.items: list[tuple[float, str, str]] = []

    async def refresh(self, client: httpx.AsyncClient) -> None:
        answer = (
            await client.get(f"{self.graph}/_bench/accepted", params={"since": len(self.items)})
        ).json()
        self.items += [(float(t), str(to), str(kind)) for t, to, kind in answer["items"]]

    def templates(self, since: int = 0) -> list[tuple[float, str]]:
        return [(t, to) for t, to, kind in self.items[since:] if kind == "template"]


# -- (b) fairness -----------------------------------------------------------------------------


async def reply_times(
    http: httpx.AsyncClient, a: Workspace, accepted: Accepted, first: int, samples: int
) -> list[float]:
    """A's customers write one every SAMPLE_EVERY seconds; each one's time from its webhook
    leaving to its auto-reply accepted at the provider."""
    posted: dict[str, float] = {}
    started = time.monotonic()
    for index in range(samples):
        await asyncio.sleep(max(0.0, started + index * SAMPLE_EVERY - time.monotonic()))
        wa_id = f"1444{first + index:07d}"
        value = payloads.inbound_text_value(
            wa_id, payloads.inbound_wamid(wa_id), "where is my order?", "Waiting"
        )
        body = payloads.serialize(payloads.envelope(WABA_ID, NUMBER_A, NUMBER_A, value))
        posted[wa_id] = time.time()
        response = await http.post(
            f"/webhooks/whatsapp/{a.channel_id}",
            content=body,
            headers=payloads.sign(body, APP_SECRET),
        )
        response.raise_for_status()
    async with httpx.AsyncClient(timeout=30) as client:
        deadline = time.monotonic() + 120
        while True:
            await accepted.refresh(client)
            replies = {to: t for t, to, kind in accepted.items if kind == "text" and to in posted}
            if len(replies) == samples or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    if len(replies) < samples:
        raise RuntimeError(f"only {len(replies)} of {samples} replies arrived")
    return [replies[to] - posted[to] for to in posted]


async def fairness(stack: Stack, recipients: int, rate: int, samples: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.base, timeout=60) as http:
        a = await workspace(http, stack.graph, NUMBER_A, auto_reply="Thanks, we got it")
        b = await workspace(http, stack.graph, NUMBER_B, send_rate_per_second=rate)
        await add_audience(b.ws, recipients, "fair", 0)
        accepted = Accepted(stack.graph)
        await reply_times(http, a, accepted, 0, 10)  # warm: caches, connections
        load_idle = load1()
        idle = await reply_times(http, a, accepted, 1_000, samples)
        before = len(accepted.items)
        broadcast_id = await start_broadcast(http, b, "fair")
        async with httpx.AsyncClient(timeout=30) as client:
            while len(accepted.templates(before)) < 20:
                await asyncio.sleep(0.2)
                await accepted.refresh(client)
        load_busy_start = load1()
        busy = await reply_times(http, a, accepted, 2_000, samples)
        load_busy = load1()
        status = _data(
            await http.get(
                f"/api/v1/workspaces/{b.ws}/broadcasts/{broadcast_id}", headers=b.headers
            )
        )["status"]
        sends = len(accepted.templates(before))
        await http.post(
            f"/api/v1/workspaces/{b.ws}/broadcasts/{broadcast_id}/cancel", headers=b.headers
        )
    ratio = p99(busy) / p99(idle)
    return {
        "recipients": recipients,
        "samples": samples,
        "idle_p99_ms": round(p99(idle) * 1000),
        "busy_p99_ms": round(p99(busy) * 1000),
        "idle_median_ms": round(sorted(idle)[len(idle) // 2] * 1000),
        "busy_median_ms": round(sorted(busy)[len(busy) // 2] * 1000),
        "ratio": round(ratio, 2),
        "ratio_floored": round(max(p99(busy), FLOOR_SECONDS) / max(p99(idle), FLOOR_SECONDS), 2),
        "still_running": status == "running",
        "broadcast_sends_meanwhile": sends,
        "load_1m": {"idle": load_idle, "busy_start": load_busy_start, "busy_end": load_busy},
        "a_workspace": a,
        "b_workspace": b,
    }


# -- (a) throughput, a worker SIGKILLed -------------------------------------------------------


class ProcMeter:
    """CPU seconds per label from /proc, sampled every half second so that a process killed
    mid-run keeps what it used up to its last sample: a worker's process group, split into
    its message path (the worker) and its bulk child; the PostgreSQL backends of the run's
    database (over TCP: the platform's, never the harness's Unix-socket checks)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.first: dict[int, float] = {}
        self.last: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _labels(self) -> dict[int, str]:
        sessions = {proc.process.pid: label for label, proc in self.stack.labelled.items()}
        sessions |= {proc.process.pid: "workers" for proc in self.stack.workers}
        return sessions

    def _sample(self, first: bool) -> None:
        sessions = self._labels()
        seen: dict[int, tuple[str, float]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or (fields := cpu._stat_fields(entry)) is None:
                continue
            label = sessions.get(int(fields[3]))
            if label is None:
                continue
            if label == "workers" and "spawn_main" in cpu._cmdline(entry):
                label = "workers' bulk children"
            seen[int(entry)] = (label, cpu._cpu(fields))
        for pid, seconds in cpu.pg_backends(PG_DATABASE).items():
            seen[pid] = ("PostgreSQL backends", seconds)
        if first:
            self.first = {pid: seconds for pid, (_, seconds) in seen.items()}
        self.last.update(seen)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._sample(first=False)

    def start(self) -> None:
        self._sample(first=True)
        self._thread.start()

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self._sample(first=False)
        totals: Counter[str] = Counter()
        for pid, (label, seconds) in self.last.items():
            totals[label] += seconds - self.first.get(pid, 0.0)
        return {label: round(seconds, 2) for label, seconds in totals.items()}


async def _recipients(broadcast_id: str) -> tuple[str, bool, list[Any]]:
    connection = await asyncpg.connect(PG_HARNESS)
    try:
        row = await connection.fetchrow(
            "SELECT status, materialised FROM broadcasts WHERE id = $1", uuid.UUID(broadcast_id)
        )
        rows = await connection.fetch(
            "SELECT status, error_code, address FROM broadcast_recipients WHERE broadcast_id = $1",
            uuid.UUID(broadcast_id),
        )
    finally:
        await connection.close()
    assert row is not None
    return str(row["status"]), bool(row["materialised"]), list(rows)


async def _materialised(broadcast_id: str) -> bool:
    connection = await asyncpg.connect(PG_HARNESS)
    try:
        return bool(
            await connection.fetchval(
                "SELECT materialised FROM broadcasts WHERE id = $1", uuid.UUID(broadcast_id)
            )
        )
    finally:
        await connection.close()


async def _statuses_drained(broadcast_id: str, deadline: float) -> dict[str, Any]:
    """Waits until every recipient is `read` or `failed` (the fake provider posts sent,
    delivered and read for each message, the reads last), or no recipient moved for
    STALLED_SECONDS, or the deadline; how long that took and how many were left."""
    started = time.monotonic()
    left, last_change, previous = -1, started, None
    while time.monotonic() < deadline:
        _, _, rows = await _recipients(broadcast_id)
        counts = Counter(r["status"] for r in rows)
        left = len(rows) - counts["read"] - counts["failed"]
        if left == 0:
            break
        if counts != previous:
            previous, last_change = counts, time.monotonic()
        elif time.monotonic() - last_change > STALLED_SECONDS:
            break
        await asyncio.sleep(1)
    return {"after_s": round(time.monotonic() - started, 1), "left": left}


def _kill_worker(stack: Stack, index: int) -> None:
    """SIGKILL to the worker's whole process group: it and its bulk child die as a crashed
    host or container would take them."""
    proc = stack.workers[index]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.process.pid, signal.SIGKILL)
    proc.process.wait(timeout=10)


async def throughput(stack: Stack, b: Workspace, recipients: int, rate: int) -> dict[str, Any]:
    await add_audience(b.ws, recipients, "tput", 1_000_000)
    accepted = Accepted(stack.graph)
    async with httpx.AsyncClient(timeout=60) as client:
        await accepted.refresh(client)
    before = len(accepted.items)
    meter = ProcMeter(stack)
    load_start = load1()
    meter.start()
    async with httpx.AsyncClient(base_url=stack.base, timeout=60) as http:
        started = time.monotonic()
        broadcast_id = await start_broadcast(http, b, "tput")
    while not await _materialised(broadcast_id):  # noqa: ASYNC110 - another process's row
        await asyncio.sleep(0.1)
    materialise_s = time.monotonic() - started
    log(f"materialised {recipients:,} recipients in {materialise_s:.1f} s")
    async with httpx.AsyncClient(timeout=60) as client:
        while len(accepted.templates(before)) < recipients // 2:
            await asyncio.sleep(0.5)
            await accepted.refresh(client)
        killed_at = len(accepted.templates(before))
        load_kill = load1()
        _kill_worker(stack, 0)
        log(f"worker 0 SIGKILLed after {killed_at:,} sends; another started")
        stack.start_worker()
        settled_at = None
        deadline = time.monotonic() + max(600, recipients / 20)
        while time.monotonic() < deadline:
            await asyncio.sleep(1)
            await accepted.refresh(client)
            status, _, rows = await _recipients(broadcast_id)
            open_rows = sum(1 for r in rows if r["status"] in ("queued", "sending"))
            if status == "completed" and len(rows) == recipients and open_rows == 0:
                settled_at = time.monotonic()
                break
        # The CPU of a send includes its three status webhooks: the window closes once they
        # are all processed (every recipient `read`, or `failed`), not when the last send left.
        drained: dict[str, Any] = {"after_s": None, "left": None}  # none posted: none waited for
        if stack.statuses:
            drained = await _statuses_drained(broadcast_id, deadline)
            after, left = drained["after_s"], drained["left"]
            log(f"statuses drained {after} s after the last send ({left} left)")
        await asyncio.sleep(LEASE_SECONDS + 2)  # past every lease: a repeat would show now
        await accepted.refresh(client)
    cpu_seconds = meter.stop()
    load_end = load1()
    status, _, rows = await _recipients(broadcast_id)
    sends = accepted.templates(before)
    received = Counter(to for _, to in sends)
    per_second = Counter(int(t) for t, _ in sends)
    unknown = {r["address"] for r in rows if r["error_code"] == "delivery_unknown"}
    failed = {r["address"] for r in rows if r["status"] == "failed"}
    lost = [
        r["address"] for r in rows if r["address"] not in received and r["address"] not in failed
    ]
    first, last = sends[0][0], sends[-1][0]
    platform = (
        "serve",
        "workers",
        "workers' bulk children",
        "scheduler",
        "PostgreSQL backends",
        "Redis",
    )
    per_send = {
        label: round(1000 * seconds / len(sends), 2) for label, seconds in cpu_seconds.items()
    }
    return {
        "recipients": recipients,
        "cap_msg_s": rate,
        "status": status,
        "settled": settled_at is not None,
        "killed_after_sends": killed_at,
        "materialise_s": round(materialise_s, 1),
        "sends_seen": len(sends),
        "sustained_msg_s": round(len(sends) / max(last - first, 1e-9), 1),
        "peak_msg_s": max(per_second.values()),
        "over_cap_seconds": sum(1 for n in per_second.values() if n > rate),
        "duplicates": sum(n - 1 for n in received.values() if n > 1),
        "lost": len(lost),
        "failed": len(failed),
        "delivery_unknown": len(unknown),
        "delivery_unknown_that_arrived": len(unknown & set(received)),
        "statuses": dict(Counter(r["status"] for r in rows)),
        "statuses_drained_after_s": drained["after_s"],
        "statuses_left": drained["left"],
        "cpu_s": cpu_seconds,
        "cpu_ms_per_send": per_send,
        "platform_cpu_ms_per_send": round(sum(per_send.get(label, 0.0) for label in platform), 2),
        "load_1m": {"start": load_start, "at_kill": load_kill, "end": load_end},
    }


# -- the run ----------------------------------------------------------------------------------


def run(
    recipients: int,
    fair_recipients: int,
    rate: int,
    samples: int,
    parts: set[str],
    redis_port: int,
    extra: dict[str, str],
    statuses: bool = True,
) -> dict[str, Any]:
    results: dict[str, Any] = {
        "started_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "settings": extra,
        "statuses": statuses,
    }
    run_dir = Path(tempfile.mkdtemp(prefix="bp-procs-"))
    log(f"run directory {run_dir}")
    with platform(run_dir, redis_port, extra, statuses) as stack, analyzing(PG_HARNESS):
        b: Workspace | None = None
        if "fairness" in parts:
            size = f"{fair_recipients:,}"
            log(f"(b) fairness: A's replies alone, then during a {size}-recipient broadcast")
            found = asyncio.run(fairness(stack, fair_recipients, rate, samples))
            b = found.pop("b_workspace")
            found.pop("a_workspace")
            results["fairness"] = found
            log(f"(b) {json.dumps(found)}")
        if "throughput" in parts:
            if b is None:

                async def make_b() -> Workspace:
                    async with httpx.AsyncClient(base_url=stack.base, timeout=60) as http:
                        return await workspace(
                            http, stack.graph, NUMBER_B, send_rate_per_second=rate
                        )

                b = asyncio.run(make_b())
            log(f"(a) throughput: {recipients:,} recipients at {rate:,} msg/s, a worker SIGKILLed")
            results["throughput"] = asyncio.run(throughput(stack, b, recipients, rate))
            log(f"(a) {json.dumps(results['throughput'])}")
    (run_dir / "results.json").write_text(json.dumps(results, indent=2))
    return results


# -- the report -------------------------------------------------------------------------------


def section(results: dict[str, Any], machine: dict[str, Any]) -> list[str]:
    """This scenario's block of docs/benchmarks.md (inside the broadcast section)."""
    lines = [
        f"<!-- {SECTION}:start -->",
        "### (e) With real processes (bench/broadcast_procs.py)",
        "",
        f"Run {results['started_at']} on {machine.get('cpu', '?')} ({machine.get('cores', '?')} "
        "cores; the load averages below say how busy it was): `serve`, two `botplatform worker` "
        "processes (each with its niced bulk child), the scheduler and the fake Graph API "
        f"(status webhooks {'on' if results.get('statuses', True) else 'off'}) as separate "
        "processes on PostgreSQL and Redis. "
        "`uv run --frozen python bench/broadcast_procs.py --recipients N --report`.",
        "",
    ]
    b = results.get("fairness")
    if b:
        lines += [
            f"**(b) Fairness**: workspace A's inbound → auto-reply p99 {b['idle_p99_ms']} ms alone "
            f"(median {b['idle_median_ms']} ms), {b['busy_p99_ms']} ms while workspace B's "
            f"{b['recipients']:,}-recipient broadcast runs (median {b['busy_median_ms']} ms; "
            f"{b['broadcast_sends_meanwhile']:,} of its sends meanwhile, "
            f"{'still running' if b['still_running'] else 'ended'} at the last sample): ratio "
            f"**{b['ratio']:.2f}** (target < 2; {b['samples']} samples each; 1-minute load "
            f"average {b['load_1m']['idle']} alone, {b['load_1m']['busy_start']} → "
            f"{b['load_1m']['busy_end']} during).",
            "",
        ]
    a = results.get("throughput")
    if a:
        per = a["cpu_ms_per_send"]
        shown = ", ".join(f"{label} {value} ms" for label, value in sorted(per.items()))
        left = a.get("statuses_left")  # None: a run from before the bench waited for them
        drain_note = (
            "the sending path alone (no status webhooks posted)"
            if not results.get("statuses", True)
            else "its three status webhooks included (measured until they were processed)"
            if left == 0
            else "with part of its status webhooks only"
            + (f" ({left:,} recipients were not `read` yet when it ended)" if left else "")
        )
        drained = (
            [
                f"| status webhooks all processed (every recipient `read`) | "
                f"{a['statuses_drained_after_s']} s after the broadcast completed "
                f"({left} recipients not `read`) |"
            ]
            if left is not None
            else []
        )
        lines += [
            f"**(a) Throughput, {a['recipients']:,} recipients** at a {a['cap_msg_s']:,} msg/s "
            "cap, "
            f"a worker (and its bulk child) SIGKILLed after {a['killed_after_sends']:,} sends and "
            f"another started (1-minute load average {a['load_1m']['start']} at the start, "
            f"{a['load_1m']['at_kill']} at the kill, {a['load_1m']['end']} at the end):",
            "",
            "| figure | value |",
            "|---|---|",
            f"| time to materialise the audience | {a['materialise_s']} s |",
            f"| sustained rate (first to last send at the provider) | {a['sustained_msg_s']} msg/s "
            f"({100 * a['sustained_msg_s'] / a['cap_msg_s']:.1f}% of the cap) |",
            f"| busiest second at the provider | {a['peak_msg_s']} msg |",
            f"| seconds over the cap | {a['over_cap_seconds']} |",
            f"| duplicates | {a['duplicates']} |",
            f"| lost | {a['lost']} |",
            f"| `delivery_unknown` (of which had arrived) | {a['delivery_unknown']} "
            f"({a['delivery_unknown_that_arrived']}) |",
            *drained,
            f"| CPU per send, the platform | {a['platform_cpu_ms_per_send']} ms |",
            "",
            f"CPU per broadcast send by process, {drain_note}: {shown}.",
            "",
        ]
    return [*lines, f"<!-- {SECTION}:end -->"]


def write_section(results: dict[str, Any], output: Path, machine: dict[str, Any]) -> None:
    """Replaces this scenario's block; a first one goes before the broadcast section's
    hand-written notes (its first `### ` heading) or its end marker. The rest stays."""
    text = output.read_text()
    new = "\n".join(section(results, machine)) + "\n"
    start, end = f"<!-- {SECTION}:start -->", f"<!-- {SECTION}:end -->"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + new.rstrip("\n") + rest.split(end, 1)[1]
    else:
        block_start = text.index("<!-- broadcast:start -->")
        block_end = text.index("<!-- broadcast:end -->")
        notes = text.find("\n### ", block_start, block_end)
        at = notes + 1 if notes >= 0 else block_end
        text = text[:at] + new + "\n" + text[at:]
    output.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=DEFAULT_RECIPIENTS)
    parser.add_argument("--fair-recipients", type=int, default=10_000)
    parser.add_argument("--rate", type=int, default=DEFAULT_RATE)
    parser.add_argument("--samples", type=int, default=SAMPLES)
    parser.add_argument("--parts", default="fairness,throughput")
    parser.add_argument("--redis-port", type=int, default=DEFAULT_REDIS_PORT)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the platform")
    parser.add_argument(
        "--no-statuses",
        action="store_true",
        help="the fake provider posts no status webhooks: the sending path alone",
    )
    parser.add_argument("--report", action="store_true", help="write its block of the report")
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "benchmarks.md")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    extra = dict(item.split("=", 1) for item in args.env)
    parts = {part.strip() for part in args.parts.split(",") if part.strip()}
    results = run(
        args.recipients,
        args.fair_recipients,
        args.rate,
        args.samples,
        parts,
        args.redis_port,
        extra,
        statuses=not args.no_statuses,
    )
    print(json.dumps(results, indent=2))
    if args.report:
        from machine import machine_info

        write_section(results, args.output, machine_info())
        log(f"wrote its block of {args.output}")


if __name__ == "__main__":
    main()
