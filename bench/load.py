"""The load generator for the scenarios with replies: a separate process that posts pre-built,
pre-signed WhatsApp webhooks. (The closed loop of scenario (a) uses `wrk`: bench/wrk.py.)

    python bench/load.py open --url URL --prefix P --graph-url G --rates 25,50,100 ...
    python bench/load.py flow --url URL --prefix P --graph-url G --conversations N --rate R

`open` (b): requests leave on a fixed schedule at each offered rate, whatever the answers, and
each reply's arrival at the fake Graph API is matched to its request by the customer's unique
wa_id: end-to-end latency. Steps stop at the first that fails. `flow` (c): conversations start
on a fixed schedule; each customer sends "hi", taps the first reply button once the buttons
arrived, and types an email address once the question arrived, as a person would.

Every body is built and signed before the clock starts, so signing is never measured. The
result is one JSON object on stdout; every loop is bounded in count and in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp
import uvloop
from common import (
    inbound_button_body,
    percentile,
    sign_body,
    signed_request,
    text_for,
    wa_id_for,
)

Request = tuple[bytes, dict[str, str]]
REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=30)
# Open loop: more requests than this still unanswered means the server has stopped keeping
# up; further sends are counted as errors instead of piling up without bound.
MAX_IN_FLIGHT = 2000


def build_requests(prefix: str, count: int) -> list[Request]:
    return [signed_request(wa_id_for(prefix, seq), text_for(seq)) for seq in range(count)]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2) if math.isfinite(seconds) else math.inf


async def post(session: aiohttp.ClientSession, url: str, request: Request) -> tuple[int, float]:
    """(HTTP status or 0 for a transport error, seconds until the answer was read)."""
    body, headers = request
    started = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError):
        status = 0
    return status, time.perf_counter() - started


# -- open loop --------------------------------------------------------------------------------


@dataclass
class StepResult:
    offered_rps: float
    requests: int
    achieved_rps: float
    acked: int
    errors: int
    replies: int
    duplicate_replies: int
    ack_p50_ms: float
    ack_p99_ms: float
    e2e_p50_ms: float
    e2e_p99_ms: float
    e2e_max_ms: float
    passed: bool
    reasons: list[str] = field(default_factory=list)


async def _send_on_schedule(
    session: aiohttp.ClientSession, url: str, requests: list[Request], rate: float
) -> tuple[list[float], list[tuple[int, float]], float]:
    """Sends request i at start + i/rate whatever the earlier answers (open loop). Returns
    each request's wall-clock send time, its (status, ack seconds), and the send duration."""
    loop = asyncio.get_running_loop()
    sent_at = [math.nan] * len(requests)
    acks: list[tuple[int, float]] = [(0, math.inf)] * len(requests)
    tasks: set[asyncio.Task[None]] = set()

    async def one(index: int) -> None:
        sent_at[index] = time.time()  # wall clock: compared with the fake Graph API's
        acks[index] = await post(session, url, requests[index])

    started = loop.time()
    for index in range(len(requests)):
        delay = started + index / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(tasks) >= MAX_IN_FLIGHT:
            continue  # left as status 0: counted as an error, never sent
        task = loop.create_task(one(index))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    send_duration = loop.time() - started
    if tasks:
        await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT.total)
    return sent_at, acks, send_duration


async def _collect_replies(
    session: aiohttp.ClientSession, graph_url: str, prefix: str, expected: int, deadline: float
) -> dict[str, list[float]]:
    """Polls the fake Graph API until every reply of this step arrived or the deadline."""
    arrivals: dict[str, list[float]] = {}
    while True:
        async with session.get(
            f"{graph_url}/_bench/arrivals", params={"prefix": prefix}
        ) as response:
            arrivals = await response.json()
        if len(arrivals) >= expected or time.time() >= deadline:
            return arrivals
        await asyncio.sleep(0.1)


def _judge_step(step: StepResult, slo_ms: float) -> StepResult:
    if step.errors:
        step.reasons.append(f"{step.errors} requests not acknowledged with 200")
    if step.replies < step.requests:
        step.reasons.append(f"{step.requests - step.replies} replies missing")
    if step.duplicate_replies:
        step.reasons.append(f"{step.duplicate_replies} customers got more than one reply")
    if not step.e2e_p99_ms < slo_ms:
        step.reasons.append(f"e2e p99 {step.e2e_p99_ms} ms >= {slo_ms} ms")
    if step.achieved_rps < 0.9 * step.offered_rps:
        step.reasons.append(f"generator reached only {step.achieved_rps} req/s")
    step.passed = not step.reasons
    return step


def step_size(args: argparse.Namespace, rate: float) -> int:
    """Requests in a step: `step_seconds` of traffic, but never fewer than `min_step_requests`,
    so that a p99 is more than the single slowest request at low rates."""
    return max(int(args.min_step_requests), round(rate * args.step_seconds))


async def run_step(
    session: aiohttp.ClientSession, args: argparse.Namespace, prefix: str, rate: float, count: int
) -> StepResult:
    requests = build_requests(prefix, count)
    sent_at, acks, send_duration = await _send_on_schedule(session, args.url, requests, rate)
    arrivals = await _collect_replies(
        session, args.graph_url, prefix, count, time.time() + args.drain_seconds
    )
    e2e = sorted(
        arrivals[wa_id_for(prefix, seq)][0] - sent_at[seq]  # its first reply
        if wa_id_for(prefix, seq) in arrivals
        else math.inf
        for seq in range(count)
    )
    ack_ok = sorted(seconds for status, seconds in acks if status == 200)
    step = StepResult(
        offered_rps=rate,
        requests=count,
        # count / (time the last request left + one interval) = the rate actually offered.
        achieved_rps=round(count / (send_duration + 1 / rate), 1),
        acked=len(ack_ok),
        errors=count - len(ack_ok),
        replies=len(arrivals),
        duplicate_replies=sum(1 for seen in arrivals.values() if len(seen) > 1),
        ack_p50_ms=ms(percentile(ack_ok, 0.50)),
        ack_p99_ms=ms(percentile(ack_ok, 0.99)),
        e2e_p50_ms=ms(percentile(e2e, 0.50)),
        e2e_p99_ms=ms(percentile(e2e, 0.99)),
        e2e_max_ms=ms(e2e[-1]),
        passed=False,
    )
    return _judge_step(step, args.slo_ms)


async def open_loop(args: argparse.Namespace) -> dict[str, Any]:
    rates = [float(rate) for rate in args.rates.split(",")]
    connector = aiohttp.TCPConnector(limit=args.connections)
    deadline = time.monotonic() + args.time_limit
    steps: list[StepResult] = []
    async with aiohttp.ClientSession(connector=connector, timeout=REQUEST_TIMEOUT) as session:
        # Unmeasured: opens connections and warms caches so the first real step is fair.
        warmup_count = round(args.warmup_rate * args.step_seconds)
        warmup = await run_step(session, args, f"{args.prefix}00", args.warmup_rate, warmup_count)
        for number, rate in enumerate(rates, start=1):
            if time.monotonic() > deadline:
                break
            prefix = f"{args.prefix}{number:02d}"
            steps.append(await run_step(session, args, prefix, rate, step_size(args, rate)))
            if not steps[-1].passed:
                break
            await asyncio.sleep(args.pause_seconds)
    passed = [step for step in steps if step.passed]
    best = max(passed, key=lambda step: step.offered_rps) if passed else None
    return {
        "warmup": asdict(warmup),
        "steps": [asdict(step) for step in steps],
        "best": asdict(best) if best else None,
    }


# -- flow (c) --------------------------------------------------------------------------------

FLOW_KEYWORD = "hi"  # the published flow's trigger (target_platform.bench_flow)
FLOW_BUTTON = ("sales", "Sales")  # its first reply button, which leads to the `ask` step
FLOW_STAGES = 3  # "hi" → buttons, button → question, answer → closing message


def flow_requests(wa_id: str) -> list[Request]:
    """A customer's three messages, built and signed in advance."""
    return [
        signed_request(wa_id, FLOW_KEYWORD),
        sign_body(inbound_button_body(wa_id, *FLOW_BUTTON)),
        signed_request(wa_id, f"customer{wa_id}@example.com"),
    ]


async def flow_loop(args: argparse.Namespace) -> dict[str, Any]:
    """Conversations start at `rate` per second; each customer's next message leaves as soon
    as the poller sees the reply to the previous one. Latency: a message's POST to its reply's
    arrival at the fake Graph API."""
    prefix = f"{args.prefix}01"
    customers = [wa_id_for(prefix, seq) for seq in range(args.conversations)]
    requests = {wa_id: flow_requests(wa_id) for wa_id in customers}
    sent_at: dict[str, list[float]] = {wa_id: [] for wa_id in customers}
    acks: list[int] = []
    latencies: list[float] = []
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()
    connector = aiohttp.TCPConnector(limit=args.connections)
    deadline = time.monotonic() + args.time_limit

    def send(session: aiohttp.ClientSession, wa_id: str) -> None:
        stage = len(sent_at[wa_id])
        sent_at[wa_id].append(time.time())

        async def one() -> None:
            status, _ = await post(session, args.url, requests[wa_id][stage])
            acks.append(status)

        task = loop.create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async with aiohttp.ClientSession(connector=connector, timeout=REQUEST_TIMEOUT) as session:
        started = loop.time()
        pending = set(customers)
        done: dict[str, list[float]] = {}
        next_start = 0
        arrivals: dict[str, list[float]] = {}
        while pending and time.monotonic() < deadline:
            while next_start < len(customers) and loop.time() >= started + next_start / args.rate:
                send(session, customers[next_start])
                next_start += 1
            async with session.get(
                f"{args.graph_url}/_bench/arrivals", params={"prefix": prefix}
            ) as response:
                arrivals = await response.json()
            for wa_id in list(pending):
                replies, sent = arrivals.get(wa_id, []), sent_at[wa_id]
                if sent and len(replies) >= len(sent):
                    latencies.append(replies[len(sent) - 1] - sent[-1])
                    if len(sent) == FLOW_STAGES:
                        pending.discard(wa_id)
                        done[wa_id] = replies
                    else:
                        send(session, wa_id)
            await asyncio.sleep(0.02)
        elapsed = loop.time() - started
        if tasks:
            await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT.total)
    latencies.sort()
    messages = sum(len(sent) for sent in sent_at.values())
    return {
        "conversations": len(customers),
        "rate": args.rate,  # conversations started a second
        "completed": len(done),
        "messages": messages,
        "acked": sum(1 for status in acks if status == 200),
        "replies": sum(len(replies) for replies in arrivals.values()),
        "duplicate_replies": sum(1 for replies in arrivals.values() if len(replies) > FLOW_STAGES),
        "elapsed_s": round(elapsed, 2),
        "messages_per_s": round(messages / elapsed, 1) if elapsed > 0 else 0.0,
        "e2e_p50_ms": ms(percentile(latencies, 0.50)),
        "e2e_p99_ms": ms(percentile(latencies, 0.99)),
        "e2e_max_ms": ms(latencies[-1]) if latencies else math.inf,
        "slo_ms": args.slo_ms,
    }


# -- command line -----------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    opened = modes.add_parser("open")
    opened.add_argument("--graph-url", required=True)
    opened.add_argument("--rates", default="25,50,100,200")
    opened.add_argument("--step-seconds", type=float, default=3.0)
    opened.add_argument("--min-step-requests", type=int, default=300)
    opened.add_argument("--drain-seconds", type=float, default=3.0)
    opened.add_argument("--pause-seconds", type=float, default=1.0)
    opened.add_argument("--warmup-rate", type=float, default=20.0)
    opened.add_argument("--slo-ms", type=float, default=250.0)
    opened.add_argument("--connections", type=int, default=256)
    opened.add_argument("--time-limit", type=float, default=240.0)
    flow = modes.add_parser("flow")
    flow.add_argument("--graph-url", required=True)
    flow.add_argument("--conversations", type=int, default=150)
    flow.add_argument("--rate", type=float, default=5.0, help="conversations started a second")
    flow.add_argument("--slo-ms", type=float, default=250.0)
    flow.add_argument("--connections", type=int, default=256)
    flow.add_argument("--time-limit", type=float, default=120.0)
    for sub in (opened, flow):
        sub.add_argument("--url", required=True)
        # Digits that make this run's wa_ids unique (and so every body new to dedup).
        sub.add_argument("--prefix", required=True)
    args = parser.parse_args(argv)
    if not args.prefix.isdigit():
        parser.error("--prefix must be digits (it becomes part of a phone number)")
    return args


async def main(argv: list[str]) -> dict[str, Any]:
    args = parse_args(argv)
    result = await (open_loop(args) if args.mode == "open" else flow_loop(args))
    # The generator shares the machine with the servers: its own CPU goes into the report.
    result["generator_cpu_s"] = round(time.process_time(), 2)
    return result


if __name__ == "__main__":
    # uvloop: the cheapest event loop for the generator, the same for every target.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(main(sys.argv[1:]))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
