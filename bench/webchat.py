"""Scenario (f), the website chat widget (issue 17, item 8): one app process holding many idle
widget sockets, and the latency of a visitor's message to an agent's live dashboard.

`bench/run.py --only webchat` starts the production platform (PostgreSQL, a Redis server of
the run's own, `serve` and 2 worker processes) and a webchat channel, then runs this file as
the load generator, in a process of its own (its sockets, memory and CPU are apparatus):

1. it opens `--idle` widget sockets, each a different visitor (tokens signed with the run's
   secret, as `POST /widget/{id}/session` would issue them), each saying `hello` and waiting
   for `ready`, and reads `serve`'s resident memory (VmRSS) after the first `WARM` sockets
   and after all of them: the difference divided by the sockets is the cost of one;
2. it opens an agent's live inbox socket (`/api/v1/workspaces/{ws}/events/ws`) and
   `--active` more visitor sockets, each sending one first message (its contact and
   conversation are created), then, while every socket stays open, sends messages over the
   visitor sockets in an open loop at each of `--rates` (message i at start + i/rate,
   whatever came back) for `--step-seconds`; a message's latency is from its send on the
   visitor's socket to the agent's socket receiving its `message.received` event.

It prints one JSON object: the socket counts, the RSS of every platform process (by label,
`--pids`) after each stage, the CPU `serve` used while the sockets idled, and per rate the
p50/p95/p99/max latency, how many arrived and the rate achieved.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import resource
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from common import percentile
from target_platform import Channel
from websockets.asyncio.client import ClientConnection, connect

from botplatform.channels.webchat.tokens import VisitorTokens

ORIGIN = "https://shop.example.com"
WARM = 200  # sockets opened before the baseline reading (first-use caches, pools)
BATCH = 200  # sockets opening at once
IDLE_CPU_SECONDS = 20.0  # one keep-alive ping round of uvicorn's (every 20 s)
SETTLE_SECONDS = 3.0
ARRIVAL_TIMEOUT_SECONDS = 30.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
GENERATOR_TIMEOUT_SECONDS = 1800


# -- the harness's side (bench/run.py) --------------------------------------------------------


@dataclass(frozen=True)
class Options:
    idle: int = 10_000
    active: int = 100
    rates: str = "20,50"
    step_seconds: float = 60.0

    @classmethod
    def of(cls, args: argparse.Namespace) -> Options:
        return cls(args.webchat_idle, args.webchat_active, args.webchat_rates, args.webchat_step)

    def argv(self) -> list[str]:
        return [
            *("--idle", str(self.idle), "--active", str(self.active)),
            *("--rates", self.rates, "--step-seconds", str(self.step_seconds)),
        ]


def add_options(parser: argparse.ArgumentParser) -> None:
    """bench/run.py's options for scenario (f)."""
    default = Options()
    group = parser.add_argument_group("webchat (f)")
    group.add_argument("--webchat-idle", type=int, default=default.idle, help="idle sockets")
    group.add_argument("--webchat-active", type=int, default=default.active, help="senders")
    group.add_argument("--webchat-rates", default=default.rates, help="messages/s, per step")
    group.add_argument("--webchat-step", type=float, default=default.step_seconds, help="s")


def create_channel(base: str, bench: Channel) -> str:
    """A webchat channel in the bench workspace, allowing the generator's origin."""
    body = {"provider": "webchat", "name": "Bench site", "allowed_origins": [ORIGIN]}
    response = httpx.post(
        f"{base}/api/v1/workspaces/{bench.workspace_id}/channels",
        json=body,
        headers={"Authorization": f"Bearer {bench.token}"},
        timeout=60,
    )
    response.raise_for_status()
    return str(response.json()["data"]["id"])


def pids_arg(pids: dict[str, int]) -> str:
    return ",".join(f"{label}={pid}" for label, pid in pids.items())


def run_generator(argv: list[str]) -> dict[str, Any]:
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        argv, capture_output=True, text=True, timeout=GENERATOR_TIMEOUT_SECONDS, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"webchat generator failed: {done.stderr[-3000:]}")
    return dict(json.loads(done.stdout))


# -- the load generator ----------------------------------------------------------------------


def session_rss(session: int) -> tuple[float, int]:
    """Resident memory (MiB) of every process in `session` (a platform process and its
    children), and how many processes that is."""
    total = count = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[3]) != session:
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total, count = total + int(line.split()[1]), count + 1
        except (OSError, IndexError, ValueError):
            continue
    return round(total / 1024, 1), count


def full_collections(base: str) -> int | None:
    """How many full (generation 2) garbage collections `serve` has run, from its /metrics:
    a full collection walks every live object, so its pause grows with the sockets held."""
    try:
        text = httpx.get(f"{base}/metrics", timeout=30).text
    except httpx.HTTPError:
        return None
    for line in text.splitlines():
        if line.startswith('python_gc_collections_total{generation="2"}'):
            return int(float(line.split()[-1]))
    return None


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Generator:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.pids: dict[str, int] = {
            label: int(pid) for label, pid in (p.split("=", 1) for p in args.pids.split(","))
        }
        self.serve = self.pids["platform serve"]
        self.tokens = VisitorTokens(args.secret, 86400)
        self.channel = uuid.UUID(args.channel)
        ws_base = args.base.replace("http://", "ws://")
        self.socket_url = f"{ws_base}/widget/{args.channel}/socket"
        self.live_url = f"{ws_base}/api/v1/workspaces/{args.workspace}/events/ws"
        self.arrived: dict[str, float] = {}
        self.missing: set[str] = set()  # the current step's texts not arrived yet
        self.all_in = asyncio.Event()

    def rss(self) -> dict[str, float]:
        return {label: session_rss(pid)[0] for label, pid in self.pids.items()}

    async def visitor(self) -> ClientConnection:
        token, _ = self.tokens.issue(self.channel, f"v:{uuid.uuid4().hex}")
        # No client keep-alive of its own (the server pings every 20 s and is answered);
        # compression is offered, as browsers do.
        socket = await connect(
            self.socket_url,
            origin=ORIGIN,  # type: ignore[arg-type]
            ping_interval=None,
            max_queue=4,
            open_timeout=60,
        )
        await socket.send(json.dumps({"type": "hello", "token": token}))
        ready = json.loads(await socket.recv())
        if ready.get("type") != "ready":
            raise RuntimeError(f"the widget socket answered {ready}")
        return socket

    async def open_visitors(self, count: int) -> list[ClientConnection]:
        opened: list[ClientConnection] = []
        while len(opened) < count:
            batch = min(BATCH, count - len(opened))
            opened += await asyncio.gather(*(self.visitor() for _ in range(batch)))
        return opened

    async def live(self) -> tuple[ClientConnection, asyncio.Task[None]]:
        headers = {"Authorization": f"Bearer {self.args.token}"}
        agent = await connect(self.live_url, additional_headers=headers, max_queue=None)
        subscribed = json.loads(await agent.recv())
        if subscribed.get("type") != "live.subscribed":
            raise RuntimeError(f"the live socket answered {subscribed}")
        return agent, asyncio.create_task(self._read_live(agent))

    async def _read_live(self, agent: ClientConnection) -> None:
        async for frame in agent:
            now = time.perf_counter()
            event = json.loads(frame)
            if event.get("type") != "message.received":
                continue
            text = (event.get("data", {}).get("message") or {}).get("text") or ""
            self.arrived.setdefault(text, now)
            if text in self.missing:
                self.missing.discard(text)
                if not self.missing:
                    self.all_in.set()

    async def step(
        self, senders: list[ClientConnection], rate: float, seconds: float, label: str
    ) -> dict[str, Any]:
        """An open loop at `rate` messages a second over `senders` (round robin)."""
        count = max(1, round(rate * seconds))
        texts = [f"wcbench {label} {i:07d}" for i in range(count)]
        sent: dict[str, float] = {}
        self.missing, self.all_in = set(texts), asyncio.Event()
        collections_before = await asyncio.to_thread(full_collections, self.args.base)
        loop = asyncio.get_running_loop()
        started = loop.time()
        for i, text in enumerate(texts):
            delay = started + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            frame = {"type": "message", "client_id": uuid.uuid4().hex, "text": text}
            sent[text] = time.perf_counter()
            await senders[i % len(senders)].send(json.dumps(frame))
        send_seconds = loop.time() - started
        if self.missing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.all_in.wait(), ARRIVAL_TIMEOUT_SECONDS)
        collections_after = await asyncio.to_thread(full_collections, self.args.base)
        latencies = sorted(
            (self.arrived[t] - sent[t]) * 1000 for t in texts if t in self.arrived
        )  # fmt: skip
        return {
            "offered_rate": rate,
            "messages": count,
            "achieved_rate": round(count / send_seconds, 1) if send_seconds else math.inf,
            "arrived": len(latencies),
            "p50_ms": round(percentile(latencies, 0.50), 1),
            "p95_ms": round(percentile(latencies, 0.95), 1),
            "p99_ms": round(percentile(latencies, 0.99), 1),
            "max_ms": round(latencies[-1], 1) if latencies else math.inf,
            "serve_full_gcs": _difference(collections_after, collections_before),
        }

    async def run(self) -> dict[str, Any]:
        args = self.args
        result: dict[str, Any] = {"idle_sockets": args.idle, "active_visitors": args.active}
        held = await self.open_visitors(min(WARM, args.idle))
        await asyncio.sleep(SETTLE_SECONDS)
        result["rss_warm_mib"] = self.rss()
        collections_before = await asyncio.to_thread(full_collections, args.base)
        opening = time.perf_counter()
        held += await self.open_visitors(args.idle - len(held))
        result["open_seconds"] = round(time.perf_counter() - opening, 1)
        collections_after = await asyncio.to_thread(full_collections, args.base)
        result["opening_full_gcs"] = _difference(collections_after, collections_before)
        await asyncio.sleep(SETTLE_SECONDS)
        result["rss_idle_mib"] = self.rss()
        result["processes"] = {label: session_rss(pid)[1] for label, pid in self.pids.items()}
        before = cpu_seconds(self.serve)
        await asyncio.sleep(IDLE_CPU_SECONDS)
        result["serve_idle_cpu_share"] = round(
            (cpu_seconds(self.serve) - before) / IDLE_CPU_SECONDS, 3
        )
        agent, reader = await self.live()
        senders = await self.open_visitors(args.active)
        # A sender reads its acks: a client that stops reading stops answering the server's
        # pings too, and is dropped as dead.
        draining = [asyncio.create_task(_drain(socket)) for socket in senders]
        # Each active visitor's first message: its contact and conversation are created.
        result["first_messages"] = await self.step(senders, 20.0, args.active / 20.0, "first")
        result["steps"] = [
            await self.step(senders, rate, args.step_seconds, f"r{rate:g}") for rate in args.rates
        ]
        result["rss_after_mib"] = self.rss()
        result["sockets_held_at_end"] = len(held) + len(senders) + 1
        for task in [reader, *draining]:
            task.cancel()
        for socket in [agent, *senders, *held]:
            socket.transport.abort()  # thousands of closing handshakes would only add noise
        return result


def _difference(after: int | None, before: int | None) -> int | None:
    return after - before if after is not None and before is not None else None


async def _drain(socket: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        async for _ in socket:
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the platform's http://host:port")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--channel", required=True, help="the webchat channel's id")
    parser.add_argument("--token", required=True, help="an agent's bearer token")
    parser.add_argument("--secret", required=True, help="the platform's SECRET_KEY")
    parser.add_argument("--pids", required=True, help="label=pid,… of the platform's sessions")
    parser.add_argument("--idle", type=int, default=10_000)
    parser.add_argument("--active", type=int, default=100)
    parser.add_argument("--rates", type=lambda v: [float(r) for r in v.split(",")], default=[20.0])
    parser.add_argument("--step-seconds", type=float, default=60.0)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(json.dumps(asyncio.run(Generator(args).run())))


if __name__ == "__main__":
    main()
