"""The figures the report is built from, computed from one run's results: CPU per message of
every target in every scenario, SQL round trips per message, and each target of issue 14
judged against the reference measured in the same run."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

BACKENDS = ("sqlite", "postgres")
PG_BACKENDS = "PostgreSQL backends"  # cpu.PG_BACKENDS (not imported: report runs without /proc)
# The processes that make up the platform: their CPU is summed into "platform total".
PLATFORM_LABELS = ("platform serve", "platform worker", PG_BACKENDS, "Redis server")
# The processes that measure rather than serve: reported, never counted as the target's.
APPARATUS_LABELS = (
    "load generator",
    "fake Graph API",
    "SQL counting relay",
    "profiler (py-spy)",
    "bench harness",
)

# Issue 14's targets, each as a ratio to the reference measured in the same run.
CPU_B_MAX = 1.0  # (b) platform CPU per auto-replied message ≤ 1.0x pywa echo's
CPU_C_MAX = 2.0  # (c) platform CPU per bot-flow message ≤ 2x pywa echo's
CPU_A_MAX = 2.0  # (a) platform CPU per acknowledged webhook ≤ 2x pywa no-op's
RATE_MIN = 1.0  # (b) sustainable rate ≥ 1.0x pywa echo's
ROUND_TRIPS_MAX = 6.0  # SQL round trips per auto-replied message, amortised over (b)


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


# -- per phase ---------------------------------------------------------------------------------


def messages_of(result: dict[str, Any], warmup: int) -> int:
    """The messages a phase's CPU paid for: every request it sent (warm-up included, since
    the CPU window includes it), or for the backlog phase every event processed."""
    if "steps" in result:  # open loop
        return int(sum(step["requests"] for step in [result["warmup"], *result["steps"]]))
    if "conversations" in result:  # bot flow
        return int(result["messages"])
    if "drain_s" in result:  # processing the backlog of (a)
        return int(result.get("events", 0))
    return int(result["requests"]) + warmup  # closed loop


def cpu_ms(result: dict[str, Any], labels: tuple[str, ...], warmup: int) -> float | None:
    """CPU ms per message of the processes in `labels`, summed (None when none ran)."""
    usage, count = result.get("cpu", {}), messages_of(result, warmup)
    present = [float(usage[label]) for label in labels if label in usage]
    if not present or count <= 0:
        return None
    return 1000 * sum(present) / count


def platform_ms(result: dict[str, Any], warmup: int) -> float | None:
    return cpu_ms(result, PLATFORM_LABELS, warmup)


def round_trips_per_message(result: dict[str, Any], warmup: int) -> float | None:
    sql, count = result.get("sql") or {}, messages_of(result, warmup)
    if "round_trips" not in sql or count <= 0:
        return None
    return float(sql["round_trips"]) / count


def best_step(end_to_end: dict[str, Any]) -> dict[str, Any] | None:
    best = end_to_end.get("best")
    return dict(best) if best else None


def sustained_rate(end_to_end: dict[str, Any]) -> float:
    best = best_step(end_to_end)
    return float(best["offered_rps"]) if best else 0.0


def ceiling_found(end_to_end: dict[str, Any]) -> bool:
    """False when every step passed: the real limit is above the highest rate offered."""
    return any(not step["passed"] for step in end_to_end["steps"])


def replied(end_to_end: dict[str, Any]) -> bool:
    """Whether the target answered at all: a reference that sent no reply is no reference."""
    return any(step["replies"] for step in [end_to_end["warmup"], *end_to_end["steps"]])


# -- the references ----------------------------------------------------------------------------


@dataclass(frozen=True)
class References:
    """pywa's figures in this run; None where pywa did not do the work (no reply sent)."""

    noop_ms: float | None
    echo_ms: float | None
    echo_rate: float | None
    echo_rate_is_bound: bool
    flow_echo_ms: float | None = None  # pywa echo at (c)'s low rate, when measured

    @classmethod
    def of(cls, results: dict[str, Any]) -> References:
        warmup = results["settings"]["warmup"]
        pywa = results.get("pywa")
        if not pywa:
            return cls(None, None, None, False)
        inbound, echo = pywa["inbound"], pywa["end_to_end"]
        noop_ms = cpu_ms(inbound, ("pywa",), warmup) if inbound["ok"] else None
        answered = replied(echo)
        flow = pywa.get("flow")
        flow_answered = flow is not None and flow.get("completed", 0) > 0
        return cls(
            noop_ms=noop_ms,
            echo_ms=cpu_ms(echo, ("pywa",), warmup) if answered else None,
            echo_rate=sustained_rate(echo) if answered and best_step(echo) else None,
            echo_rate_is_bound=not ceiling_found(echo),
            flow_echo_ms=cpu_ms(flow, ("pywa",), warmup) if flow_answered else None,
        )


# -- targets -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    required: str
    measured: str
    ratio: float | None  # measured / reference (or / the limit, for round trips)
    verdict: str  # "met", "missed", or "no reference"


def _judge(
    value: float | None, reference: float | None, limit: float, *, at_most: bool
) -> tuple[float | None, str]:
    """(value / reference, verdict). A reference that is missing or zero (pywa did no work
    in this run) judges nothing: "no reference", never "met"."""
    if reference is None or not finite(reference) or reference <= 0:
        return None, "no reference"
    if value is None or not finite(value):
        return None, "missed"
    ratio = value / reference
    return ratio, "met" if (ratio <= limit if at_most else ratio >= limit) else "missed"


def targets(results: dict[str, Any]) -> list[Target]:
    """Issue 14's targets, on the production backend (PostgreSQL + Redis, 2 workers)."""
    pg = results.get("postgres")
    if not pg:
        return []
    warmup, refs = results["settings"]["warmup"], References.of(results)
    b, a = pg["end_to_end"], pg["inbound"]
    out = []
    b_ms = platform_ms(b, warmup)
    ratio, verdict = _judge(b_ms, refs.echo_ms, CPU_B_MAX, at_most=True)
    out.append(
        Target(
            "(b) CPU per auto-replied message",
            f"≤ {CPU_B_MAX:.1f}x pywa echo ({_ms(refs.echo_ms)})",
            _ms(b_ms),
            ratio,
            verdict,
        )
    )
    for phase in ("flow", "flow_sustained"):
        if phase not in pg:
            continue
        c_ms = platform_ms(pg[phase], warmup)
        ratio, verdict = _judge(c_ms, refs.echo_ms, CPU_C_MAX, at_most=True)
        offered = f", {3 * float(pg[phase]['rate']):g} msg/s" if "rate" in pg[phase] else ""
        out.append(
            Target(
                f"(c) CPU per bot-flow message{offered}",
                f"≤ {CPU_C_MAX:.0f}x pywa echo ({_ms(refs.echo_ms)})",
                _ms(c_ms),
                ratio,
                verdict,
            )
        )
        if phase == "flow" and refs.flow_echo_ms is not None:
            # The same customers at the same rate sent to pywa echo: what one message costs
            # when it comes alone, for both.
            ratio, verdict = _judge(c_ms, refs.flow_echo_ms, CPU_C_MAX, at_most=True)
            out.append(
                Target(
                    f"(c) CPU per bot-flow message{offered}, against pywa at that rate",
                    f"≤ {CPU_C_MAX:.0f}x pywa echo at that rate ({_ms(refs.flow_echo_ms)})",
                    _ms(c_ms),
                    ratio,
                    verdict,
                )
            )
    a_ms = platform_ms(a, warmup)
    ratio, verdict = _judge(a_ms, refs.noop_ms, CPU_A_MAX, at_most=True)
    out.append(
        Target(
            "(a) CPU per acknowledged webhook",
            f"≤ {CPU_A_MAX:.0f}x pywa no-op ({_ms(refs.noop_ms)})",
            _ms(a_ms),
            ratio,
            verdict,
        )
    )
    rate = sustained_rate(b)
    bound = " (a lower bound: every step passed)" if refs.echo_rate_is_bound else ""
    ratio, verdict = _judge(rate, refs.echo_rate, RATE_MIN, at_most=False)
    echo_rate = f"{refs.echo_rate:,.0f}/s{bound}" if refs.echo_rate is not None else "none"
    out.append(
        Target(
            "(b) sustained rate, e2e p99 < SLO",
            f"≥ pywa echo's ({echo_rate})",
            f"{rate:,.0f}/s",
            ratio,
            verdict,
        )
    )
    trips = round_trips_per_message(b, warmup)
    ratio, verdict = _judge(trips, ROUND_TRIPS_MAX, 1.0, at_most=True)
    out.append(
        Target(
            "(b) SQL round trips per auto-replied message",
            f"≤ {ROUND_TRIPS_MAX:.0f}",
            f"{trips:.1f}" if trips is not None else "not counted",
            ratio,
            verdict,
        )
    )
    out.append(
        Target(
            "(a) every 200 a stored row",
            "durable",
            "yes" if a["durable"] else "NO",
            None,
            "met" if a["durable"] else "missed",
        )
    )
    return out


def _ms(value: float | None) -> str:
    return f"{value:.2f} ms" if finite(value) else "—"
