"""The platform's fake Graph API, for the benchmark: no status webhooks (they would add load
that pywa never gets), plus a record of when each customer's reply arrived.

`GET /_bench/arrivals?prefix=P` answers `{wa_id: [unix time of first arrival, count]}` for
the customers whose id starts with P; the load generator matches them to its requests.
"""

from __future__ import annotations

import time
from typing import Any

from common import ACCESS_TOKEN, APP_SECRET, DISPLAY_PHONE_NUMBER, PHONE_NUMBER_ID, WABA_ID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from botplatform.sandbox import FakeGraph, create_app


class TimedGraph(FakeGraph):
    """A FakeGraph that notes the wall-clock time a message to each recipient was accepted.

    Wall-clock (`time.time`) because the other side of the subtraction is taken in another
    process (the load generator); both read the same system clock."""

    def __init__(self) -> None:
        super().__init__(
            access_tokens={ACCESS_TOKEN},
            app_secret=APP_SECRET,
            phone_number_id=PHONE_NUMBER_ID,
            display_phone_number=DISPLAY_PHONE_NUMBER,
            waba_id=WABA_ID,
            auto_status=False,
        )
        self.arrivals: dict[str, list[float]] = {}

    def accept(self, body: dict[str, Any], kind: str) -> tuple[str, str]:
        arrived = time.time()
        wa_id, wamid = super().accept(body, kind)
        seen = self.arrivals.get(wa_id)
        if seen is None:
            self.arrivals[wa_id] = [arrived, 1]
        else:
            seen[1] += 1  # a second reply to one customer would be a duplicate send
        # The sandbox keeps every sent body for /_sandbox/sent; the benchmark never reads it,
        # and tens of thousands of them would only grow this process.
        self.sent.clear()
        return wa_id, wamid


async def _arrivals(request: Request) -> JSONResponse:
    # Async, so it reads `arrivals` on the event loop that writes it: a sync endpoint ran in
    # a thread while the loop added customers ("dictionary changed size during iteration").
    graph: TimedGraph = request.app.state.graph
    prefix = request.query_params.get("prefix", "")
    found = {wa_id: seen for wa_id, seen in graph.arrivals.items() if wa_id.startswith(prefix)}
    return JSONResponse(found)


def _health(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


def create_bench_app() -> Starlette:
    app = create_app(TimedGraph())
    # First: the sandbox's catch-all "/{version}/{media_id}" would otherwise take these paths.
    app.router.routes[0:0] = [
        Route("/_bench/arrivals", _arrivals, methods=["GET"]),
        Route("/_bench/health", _health, methods=["GET"]),
    ]
    return app
