"""Scenario: idle website-chat sockets held by one app process, and what they cost.

Starts one embedded `botplatform serve` (SQLite, in-process jobs, in a temporary folder),
creates a workspace with a webchat channel, takes one visitor token and opens N sockets with
it (each socket is a feed of its own, as N visitors' would be), then reads the server's
resident memory (VmRSS) before and after, and the time one agent reply takes to reach a
socket while the others idle. Kept small: run it with --sockets for a larger figure.

    uv run --frozen python bench/widget_sockets.py --sockets 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from common import free_port
from servers import Proc, base_env, botplatform_command, processes, wait_ready
from websockets.asyncio.client import ClientConnection, connect

ORIGIN = "https://shop.example.com"
PASSWORD = secrets.token_urlsafe(16)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _setup(http: httpx.AsyncClient) -> dict[str, Any]:
    user = await http.post(
        "/api/v1/auth/register",
        json={"email": "bench@example.com", "password": PASSWORD, "name": "Bench"},
    )
    headers = {"Authorization": f"Bearer {user.json()['data']['access_token']}"}
    ws = (await http.post("/api/v1/workspaces", json={"name": "Bench"}, headers=headers)).json()
    ws_id = ws["data"]["id"]
    body = {"provider": "webchat", "name": "Site", "allowed_origins": [ORIGIN]}
    channel = await http.post(f"/api/v1/workspaces/{ws_id}/channels", json=body, headers=headers)
    channel_id = channel.json()["data"]["id"]
    session = await http.post(f"/widget/{channel_id}/session", json={}, headers={"Origin": ORIGIN})
    return {
        "ws": ws_id,
        "channel": channel_id,
        "token": session.json()["data"]["token"],
        "headers": headers,
    }


async def _open(url: str, token: str) -> ClientConnection:
    socket = await connect(url, origin=ORIGIN, max_queue=4)  # type: ignore[arg-type]
    await socket.send(json.dumps({"type": "hello", "token": token}))
    await socket.recv()  # ready
    return socket


async def _reply_latency(
    http: httpx.AsyncClient, ctx: dict[str, Any], socket: ClientConnection
) -> float:
    """The visitor writes; once the conversation exists, an agent replies; the time from the
    reply's POST to its push on the socket."""
    visitor = {"Origin": ORIGIN, "Authorization": f"Bearer {ctx['token']}"}
    await http.post(
        f"/widget/{ctx['channel']}/messages",
        json={"client_id": "bench-0001", "text": "hello"},
        headers=visitor,
    )
    conversations: list[dict[str, Any]] = []
    while not conversations:
        listed = await http.get(
            f"/api/v1/workspaces/{ctx['ws']}/conversations", headers=ctx["headers"]
        )
        conversations = listed.json()["data"]["items"]
        await asyncio.sleep(0.05)
    started = time.perf_counter()
    await http.post(
        f"/api/v1/workspaces/{ctx['ws']}/conversations/{conversations[0]['id']}/messages",
        json={"text": "hi there"},
        headers=ctx["headers"],
    )
    while json.loads(await socket.recv()).get("type") != "message":
        pass
    return time.perf_counter() - started


async def measure(server: Proc, base: str, sockets: int) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        ctx = await _setup(http)
        before = rss_mib(server.process.pid)
        url = base.replace("http://", "ws://") + f"/widget/{ctx['channel']}/socket"
        opened: list[ClientConnection] = []
        started = time.perf_counter()
        for start in range(0, sockets, 100):
            batch = [_open(url, ctx["token"]) for _ in range(min(100, sockets - start))]
            opened += await asyncio.gather(*batch)
        open_seconds = time.perf_counter() - started
        await asyncio.sleep(2)
        after = rss_mib(server.process.pid)
        latency = await _reply_latency(http, ctx, opened[0])
        await asyncio.gather(*(s.close() for s in opened))
    return {
        "sockets": sockets,
        "open_seconds": round(open_seconds, 2),
        "rss_before_mib": round(before, 1),
        "rss_after_mib": round(after, 1),
        "kib_per_socket": round((after - before) * 1024 / sockets, 1),
        "reply_to_socket_ms": round(latency * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=1000)
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as folder, processes(Path(folder)) as procs:
        env = base_env({
            "DATA_DIR": folder,
            "DATABASE_URL": f"sqlite:///{folder}/bench.db",
            "SECRET_KEY": "bench-secret-key-not-for-production",
            "RATE_LIMIT_WEBCHAT_IP": "1000000/minute",
            "RATE_LIMIT_AUTH": "1000/minute",
            "LOG_LEVEL": "WARNING",
            "ARGON2_TIME_COST": "1",
            "ARGON2_MEMORY_COST_KIB": "1024",
        })  # fmt: skip
        server = procs.start(
            "serve", botplatform_command("serve", "--port", str(port)), env, Path(folder)
        )
        base = f"http://127.0.0.1:{port}"
        wait_ready(server, f"{base}/health/live")
        print(json.dumps(asyncio.run(measure(server, base, args.sockets)), indent=2))


if __name__ == "__main__":
    main()
