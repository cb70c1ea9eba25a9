"""The platform's fake Graph API, for the benchmark: no status webhooks (they would add load
that pywa never gets), plus a record of when each customer's replies arrived.

`GET /_bench/count` answers how many messages were accepted in all.
`GET /_bench/arrivals?prefix=P` answers `{wa_id: [unix time of each reply, ...]}` for the
customers of group P (a wa_id is its group followed by `common.SEQ_DIGITS` digits: the load
generator uses one group per step); the load generator matches them to its requests.
"""

from __future__ import annotations

import time
from typing import Any

from common import (
    ACCESS_TOKEN,
    APP_SECRET,
    DISPLAY_PHONE_NUMBER,
    PHONE_NUMBER_ID,
    SEQ_DIGITS,
    WABA_ID,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from botplatform.sandbox import FakeGraph, create_app


class TimedGraph(FakeGraph):
    """A FakeGraph that notes the wall-clock time each message to a recipient was accepted.

    Wall-clock (`time.time`) because the other side of the subtraction is taken in another
    process (the load generator); both read the same system clock. Every read and write of
    `arrivals` happens on the event loop (the send route and `_arrivals` are both async), so
    no thread ever iterates it while it grows."""

    def __init__(self) -> None:
        super().__init__(
            access_tokens={ACCESS_TOKEN},
            app_secret=APP_SECRET,
            phone_number_id=PHONE_NUMBER_ID,
            display_phone_number=DISPLAY_PHONE_NUMBER,
            waba_id=WABA_ID,
            auto_status=False,
        )
        # group → wa_id → arrival times: a poll reads one step's customers, not every one.
        self.arrivals: dict[str, dict[str, list[float]]] = {}
        self.accepted = 0  # every message accepted so far (the harness waits on it)

    def accept(self, body: dict[str, Any], kind: str, *args: Any, **kwargs: Any) -> tuple[str, str]:
        # Whatever else the sandbox passes (today the sending number) goes through untouched:
        # a fixed signature here broke every send with a TypeError (a 500 to the sender) when
        # the sandbox's `accept` gained a parameter.
        arrived = time.time()
        wa_id, wamid = super().accept(body, kind, *args, **kwargs)
        group = self.arrivals.setdefault(wa_id[:-SEQ_DIGITS], {})
        group.setdefault(wa_id, []).append(arrived)
        self.accepted += 1
        # The sandbox keeps every sent body for /_sandbox/sent; the benchmark never reads it,
        # and tens of thousands of them would only grow this process.
        self.sent.clear()
        return wa_id, wamid


async def _arrivals(request: Request) -> JSONResponse:
    # Async, so it reads `arrivals` on the event loop that writes it: a sync endpoint would run
    # in a thread while the loop adds customers ("dictionary changed size during iteration").
    graph: TimedGraph = request.app.state.graph
    group = graph.arrivals.get(request.query_params.get("prefix", ""), {})
    return JSONResponse(group)


async def _count(request: Request) -> JSONResponse:
    graph: TimedGraph = request.app.state.graph
    return JSONResponse({"accepted": graph.accepted})


def _health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


def with_bench_routes(graph: FakeGraph, routes: list[Route]) -> Starlette:
    """The sandbox's app for `graph`, with the bench's `routes` and `/_bench/health`."""
    app = create_app(graph)
    # First: the sandbox's catch-all "/{version}/{media_id}" would otherwise take these paths.
    app.router.routes[0:0] = [*routes, Route("/_bench/health", _health, methods=["GET"])]
    return app


def create_bench_app() -> Starlette:
    return with_bench_routes(
        TimedGraph(),
        [
            Route("/_bench/arrivals", _arrivals, methods=["GET"]),
            Route("/_bench/count", _count, methods=["GET"]),
        ],
    )
