"""A quick look at (b) alone at fixed rates, for work on the hot path (not the report):

    uv run --frozen --group bench python bench/quick.py [--rates 80] [--seconds 15] [--flow]

PostgreSQL + Redis, 2 worker processes behind the counting relay, as run.py's production
phase; prints CPU ms and SQL round trips per auto-replied message, per process."""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

import asyncpg
import run as bench
import target_platform as platform_target
from servers import Processes


def _with_database_settings(settings: dict[str, str]) -> None:
    """The bench database gets `settings` (ALTER DATABASE) once created, before any process
    of the platform connects: to compare a PostgreSQL setting's cost."""
    reset = platform_target.reset_backing_services

    def reset_and_set(backend: platform_target.Backend, env: dict[str, str], cwd: Path) -> None:
        reset(backend, env, cwd)

        async def alter() -> None:
            connection = await asyncpg.connect(platform_target.PG_ADMIN_DSN)
            try:
                for name, value in settings.items():
                    await connection.execute(
                        f'ALTER DATABASE "{platform_target.PG_DATABASE}" SET {name} = {value}'
                    )
            finally:
                await connection.close()

        asyncio.run(alter())

    platform_target.reset_backing_services = reset_and_set  # type: ignore[assignment]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rates", default="80")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--workers", type=int, default=bench.WORKER_PROCESSES)
    parser.add_argument("--flow", action="store_true", help="(c) instead of (b)")
    parser.add_argument("--flow-rate", type=float, default=bench.Settings.flow_rate)
    parser.add_argument("--flow-conversations", type=int, default=bench.Settings.flow_conversations)
    parser.add_argument(
        "--warm", action="store_true", help="(c) once unmeasured first: warm processes"
    )
    parser.add_argument("--profile", action="store_true", help="py-spy on one worker")
    parser.add_argument("--profile-serve", action="store_true", help="py-spy on serve instead")
    parser.add_argument("--profile-rate", type=int, default=50, help="py-spy samples per second")
    parser.add_argument(
        "--pg-setting", action="append", default=[], help="NAME=VALUE for the bench database"
    )
    parser.add_argument(
        "--env", action="append", default=[], help="NAME=VALUE for every platform process"
    )
    args = parser.parse_args()
    platform_target.PLATFORM_ENV_OVERRIDES.update(item.split("=", 1) for item in args.env)
    settings = bench.Settings(
        rates=args.rates,
        step_seconds=args.seconds,
        min_step_requests=1,
        worker_processes=args.workers,
        profile_rate=args.profile_rate,
        profile_serve=args.profile_serve,
        flow_rate=args.flow_rate,
        flow_conversations=args.flow_conversations,
    )
    if args.pg_setting:
        _with_database_settings(dict(item.split("=", 1) for item in args.pg_setting))
    scratch = Path(tempfile.mkdtemp(prefix="botplatform-quick-"))
    run = bench.Run(settings, scratch)
    backend = platform_target.POSTGRES
    (scratch / backend.name).mkdir()
    with Processes(run.logs) as procs:
        graph, graph_url = bench.start_fake_graph(procs)
        try:
            platform = bench.start_platform(procs, backend, scratch / backend.name, graph_url, run)
            platform.apparatus["fake Graph API"] = graph
            profile = scratch / "worker-profile.raw" if args.profile else None
            with bench.autoanalyzed(backend):
                if args.flow:
                    if args.warm:  # imports, prepared statements, caches: paid once
                        bench.bot_flow(run, platform, graph_url)
                    result = bench.bot_flow(run, platform, graph_url, profile)
                    messages = int(result["messages"])
                else:
                    platform_target.set_auto_reply(
                        platform.base, platform.channel, platform_target.AUTO_REPLY_TEXT
                    )
                    result = bench.end_to_end(run, platform, graph_url, profile)
                    messages = sum(s["requests"] for s in [result["warmup"], *result["steps"]])
        finally:
            procs.stop_all()
            platform_target.drop_backing_services(backend)
    cpu = result["cpu"]
    per = {k: round(1000 * v / messages, 2) for k, v in cpu.items()}
    per["platform"] = round(sum(per.get(k, 0.0) for k in bench.PLATFORM_LABELS), 2)
    sql = result["sql"]
    summary = {
        "messages": messages,
        "cpu_ms_per_message": per,
        "round_trips_per_message": round(sql["round_trips"] / messages, 2),
        "statements_per_message": {k: round(v / messages, 2) for k, v in sql["statements"].items()},
        "steps": [
            {k: v for k, v in step.items() if not isinstance(v, list | dict)}
            for step in result.get("steps", [])
        ],
        "profile": result.get("profile"),
        # (c): its figures (latencies, completed conversations), without the long lists.
        "flow": {k: v for k, v in result.items() if isinstance(v, int | float | str)},
    }
    print(json.dumps(summary, indent=1))
    print(f"scratch (raw profile, logs): {scratch}")


if __name__ == "__main__":
    main()
