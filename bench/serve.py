"""Serves one reference app (or the fake Graph API) with exactly the uvicorn settings that
`botplatform serve` uses, so every server in the benchmark runs the same way.

    python bench/serve.py {bare|pywa-noop|pywa-echo|fake-graph} --port P [--graph-url URL]
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import uvicorn
from common import HOST


def build_app(kind: str, graph_url: str | None) -> Any:
    if kind == "bare":
        from ref_apps import bare_app

        return bare_app
    if kind in ("pywa-noop", "pywa-echo"):
        from ref_apps import pywa_app

        return pywa_app(kind.removeprefix("pywa-"), graph_url)
    if kind == "fake-graph":
        from fake_graph import create_bench_app

        return create_bench_app()
    raise SystemExit(f"unknown app kind: {kind}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["bare", "pywa-noop", "pywa-echo", "fake-graph"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--graph-url", default=None)
    args = parser.parse_args()
    # The platform runs with LOG_LEVEL=WARNING; the same threshold here for pywa's and
    # uvicorn's loggers (log_config=None leaves logging to us, as in `botplatform serve`).
    logging.basicConfig(level=logging.WARNING)
    uvicorn.run(
        build_app(args.kind, args.graph_url),
        host=HOST,
        port=args.port,
        workers=1,
        # The same flags as `botplatform serve` (src/botplatform/cli.py).
        proxy_headers=False,
        log_config=None,
        access_log=False,
    )


if __name__ == "__main__":
    main()
