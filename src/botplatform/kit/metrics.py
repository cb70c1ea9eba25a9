"""Prometheus metrics: HTTP, jobs, queue depth. One registry per process (the client's
default); `botplatform worker` serves its own on WORKER_METRICS_PORT."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.routing import Mount

from botplatform.kit.middleware import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests by route template and status",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency by route template",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
JOBS = Counter("jobs_total", "Background jobs processed, by outcome", ["job", "outcome"])
JOB_DURATION = Histogram(
    "job_duration_seconds",
    "Time a job ran",
    ["job"],
    buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
)


class QueueDepthCollector(Collector):
    """Reads queue depths at scrape time, so the figure is never stale."""

    def __init__(self, depths: Callable[[], dict[str, dict[str, int]]]) -> None:
        self._depths = depths

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "queue_depth", "Jobs per queue and state", labels=["queue", "state"]
        )
        try:
            depths = self._depths()
        except Exception:  # a broker outage must not break the scrape of everything else
            depths = {}
        for queue, states in depths.items():
            for state, count in states.items():
                family.add_metric([queue, state], count)
        yield family


_collector: QueueDepthCollector | None = None


def watch_queue_depth(depths: Callable[[], dict[str, dict[str, int]]]) -> None:
    """Points the process's queue-depth gauge at the current queue (replacing any earlier)."""
    global _collector
    if _collector is not None:
        REGISTRY.unregister(_collector)
    _collector = QueueDepthCollector(depths)
    REGISTRY.register(_collector)


UNMATCHED = "<unmatched>"
# Anything else a client writes in the request line is counted as "OTHER": the label's values
# stay a fixed set whatever arrives.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _route_of(scope: Scope) -> str:
    """The route's template (/api/v1/workspaces/{ws}, /media/{key}), never the raw
    path, so label values stay bounded and no id, key or file name reaches a scraper. A
    request inside a mounted app counts as the mount's prefix; one nothing matched (a 404,
    a refused body) as `<unmatched>`."""
    # FastAPI keeps the routes of an included router as they were declared (their own
    # suffix) and records the full template of the one it matched beside them.
    matched = scope.get("fastapi", {}).get("effective_route_context")
    template = getattr(matched, "path_format", None) or getattr(scope.get("route"), "path", None)
    if isinstance(template, str) and template:
        return template
    mounted = scope.get("endpoint")
    app = scope.get("app")
    for candidate in getattr(getattr(app, "router", None), "routes", ()):
        if isinstance(candidate, Mount) and mounted is not None and candidate.app is mounted:
            return f"{candidate.path}/{{path}}"
    return UNMATCHED


def _method_of(scope: Scope) -> str:
    method = str(scope.get("method", ""))
    return method if method in _METHODS else "OTHER"


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route, method = _route_of(scope), _method_of(scope)
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - started)


def init_sentry(dsn: str, environment: str, traces_sample_rate: float, **extra: Any) -> bool:
    if not dsn:
        return False
    import sentry_sdk

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        traces_sample_rate=traces_sample_rate,
        **extra,
    )
    return True


# Per-workspace message counters and provider figures (SPEC §8). Label values stay bounded:
# a workspace id (one per tenant), a direction, a provider name from the channel registry, an
# outcome from a fixed set.
MESSAGES = Counter(
    "workspace_messages_total",
    "Messages stored (inbound) or accepted by the provider (outbound), per workspace",
    ["workspace", "direction"],
)
PROVIDER_LATENCY = Histogram(
    "provider_request_duration_seconds",
    "Time a provider took to answer a send, by provider and outcome (ok|refused|retry|unknown)",
    ["provider", "outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PROVIDER_ERRORS = Counter(
    "provider_errors_total",
    "Sends a provider refused or left unanswered, by provider and outcome",
    ["provider", "outcome"],
)


def count_messages(workspace_id: object, direction: str, n: int = 1) -> None:
    if n:
        MESSAGES.labels(str(workspace_id), direction).inc(n)
