"""The fake Graph API as a process of its own, for bench/broadcast_procs.py: the platform's
WhatsApp sandbox with its status webhooks on (sent, delivered, read for every message, at
most `STATUS_CONCURRENCY` in flight, as the sandbox does by default), noting when each message
was accepted and for whom.

`GET /_bench/accepted?since=N` answers `{"next": M, "items": [[unix time, wa_id, type], ...]}`,
the messages accepted from the N-th on; `GET /_bench/health` answers once it serves.

`uv run --frozen python bench/broadcast_graph.py --port P [--no-statuses]`: with
`--no-statuses` it posts no status webhooks (the sending path alone, see broadcast_procs.py).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import uvicorn
from common import ACCESS_TOKEN, APP_SECRET, DISPLAY_PHONE_NUMBER, HOST, PHONE_NUMBER_ID, WABA_ID
from fake_graph import with_bench_routes
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from botplatform.sandbox import FakeGraph
from botplatform.sandbox.whatsapp import Number


class AcceptedGraph(FakeGraph):
    """Every accepted message noted with its time; nothing else kept that would grow with a
    broadcast of 100,000 (the sandbox keeps sent bodies and posted webhooks for its UI)."""

    def __init__(self, *, statuses: bool = True) -> None:
        super().__init__(
            access_tokens={ACCESS_TOKEN},
            app_secret=APP_SECRET,
            phone_number_id=PHONE_NUMBER_ID,
            display_phone_number=DISPLAY_PHONE_NUMBER,
            waba_id=WABA_ID,
            status_delay=0.01,
            auto_status=statuses,
        )
        self.accepted: list[tuple[float, str, str]] = []

    def accept(self, body: dict[str, Any], kind: str, *args: Any, **kwargs: Any) -> tuple[str, str]:
        wa_id, wamid = super().accept(body, kind, *args, **kwargs)
        self.accepted.append((time.time(), wa_id, kind))
        self.sent.clear()
        return wa_id, wamid

    async def deliver(self, value: dict[str, Any], number: Number | None = None) -> None:
        await super().deliver(value, number)
        self.webhooks.clear()


async def _accepted(request: Request) -> JSONResponse:
    graph: AcceptedGraph = request.app.state.graph
    since = int(request.query_params.get("since", "0"))
    items = graph.accepted[since:]
    return JSONResponse({"next": since + len(items), "items": items})


def create_bench_app(*, statuses: bool = True) -> Starlette:
    return with_bench_routes(
        AcceptedGraph(statuses=statuses), [Route("/_bench/accepted", _accepted, methods=["GET"])]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--no-statuses", action="store_true", help="post no status webhooks")
    args = parser.parse_args()
    app = create_bench_app(statuses=not args.no_statuses)
    uvicorn.run(app, host=HOST, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
