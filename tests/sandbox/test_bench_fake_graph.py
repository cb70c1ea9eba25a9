"""The benchmark's fake Graph API reads its arrivals on the event loop that writes them: read
from a worker thread (a sync endpoint), the dict could change size mid-iteration and the
load generator got a sporadic 500."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"


class LoopOnlyDict(dict[str, list[float]]):
    """Arrivals that fail when iterated off the thread running the event loop."""

    def __init__(self, loop_thread: threading.Thread) -> None:
        super().__init__()
        self.loop_thread = loop_thread

    def items(self) -> Any:
        assert threading.current_thread() is self.loop_thread, "arrivals read off the loop"
        return super().items()


async def test_arrivals_are_read_on_the_loop() -> None:
    sys.path.insert(0, str(BENCH_DIR))
    try:
        from fake_graph import create_bench_app  # the bench's own module, not a package
    finally:
        sys.path.remove(str(BENCH_DIR))
    app = create_bench_app()
    arrivals = LoopOnlyDict(threading.current_thread())
    arrivals["15550001111"] = [1.0, 1]
    arrivals["16660001111"] = [2.0, 1]
    app.state.graph.arrivals = arrivals
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://graph") as client:
        response = await client.get("/_bench/arrivals", params={"prefix": "1555"})
    assert response.status_code == 200
    assert response.json() == {"15550001111": [1.0, 1]}
