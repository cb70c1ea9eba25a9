"""deploy/nginx/ as shipped: `nginx -t` accepts it, and Debian's nginx running it in front of
two app servers balances across them, upgrades the live WebSocket, compresses, caches
fingerprinted static files for a year and refuses bodies no route accepts.

The only change made to the files under test: the upstream names loopback ports instead of
the compose service `app`, and the server listens on a free loopback port instead of 80."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from websockets.asyncio.client import connect

from tests.conftest import REQUIRE_BACKENDS, Api
from tests.serving import free_port, serving

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "deploy" / "nginx"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@pytest.fixture(scope="module", autouse=True)
def _nginx_installed() -> None:
    if not Path(NGINX).exists():
        message = "nginx is not installed (Debian: nginx-light; .ci/run installs it)"
        if REQUIRE_BACKENDS:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


def _configure(folder: Path, upstream_ports: list[int], listen_port: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("nginx.conf", "botplatform.conf", "upstream.conf"):
        shutil.copy(SHIPPED / name, folder / name)
    shutil.copy("/etc/nginx/mime.types", folder / "mime.types")
    upstream = (folder / "upstream.conf").read_text()
    servers = "".join(
        f"server 127.0.0.1:{port} max_fails=3 fail_timeout=10s;\n    " for port in upstream_ports
    )
    upstream, count = re.subn(r"server app:3000[^;]*;\n    ", servers, upstream)
    assert count == 1
    (folder / "upstream.conf").write_text(upstream)
    site = (folder / "botplatform.conf").read_text()
    site = site.replace("listen 80;", f"listen 127.0.0.1:{listen_port};").replace(
        "listen [::]:80;\n", ""
    )
    site = site.replace("access_log /dev/stdout", f"access_log {folder / 'access.log'}")
    (folder / "botplatform.conf").write_text(site)
    main = (folder / "nginx.conf").read_text().replace("/run/nginx.pid", str(folder / "nginx.pid"))
    (folder / "nginx.conf").write_text(main)
    return folder / "nginx.conf"


def _nginx(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    error_log = config.parent / "error.log"
    command = [NGINX, "-p", str(config.parent), "-c", str(config), "-e", str(error_log), *args]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def test_nginx_accepts_the_shipped_configuration(tmp_path: Path) -> None:
    config = _configure(tmp_path, [free_port(), free_port()], free_port())
    result = _nginx(config, "-t")
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@contextlib.contextmanager
def _running(config: Path) -> Iterator[None]:
    """nginx in the foreground for the block (Popen's exit waits for it to stop)."""
    daemon_off = ["-g", "daemon off;"]
    command = [NGINX, "-p", str(config.parent), "-c", str(config), *daemon_off]
    with subprocess.Popen(command, stdout=subprocess.DEVNULL) as process:
        try:
            yield
        finally:
            process.terminate()


@pytest.fixture
async def proxied(app: FastAPI, tmp_path: Path) -> AsyncIterator[str]:
    """nginx on a loopback port in front of the app served twice (two upstream servers)."""
    async with serving(app) as first, serving(app) as second:
        port = free_port()
        config = _configure(tmp_path / "nginx", [first, second], port)
        with _running(config):
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient() as http:
                for _ in range(100):
                    with contextlib.suppress(httpx.TransportError):
                        if (await http.get(f"{base}/nginx-health")).status_code == 200:
                            break
                    await asyncio.sleep(0.05)
            yield base


async def test_through_nginx(proxied: str, api: Api, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=proxied, timeout=10) as http:
        for _ in range(6):
            assert (await http.get("/health/live")).status_code == 200
        log = (tmp_path / "nginx" / "access.log").read_text()
        upstreams = {
            match.group(1)
            for line in log.splitlines()
            if "/health/live" in line and (match := re.search(r" (127\.0\.0\.1:\d+) ", line))
        }
        assert len(upstreams) == 2, upstreams  # both app servers took requests

        headers = {"Accept-Encoding": "gzip"}
        fingerprinted = await http.get(
            "/app/static/vendor/htmx.min.js?v=0123456789ab", headers=headers
        )
        assert fingerprinted.status_code == 200
        assert fingerprinted.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert fingerprinted.headers["content-encoding"] == "gzip"
        plain = await http.get("/app/static/vendor/htmx.min.js")
        assert plain.headers["cache-control"] == "public, max-age=300"

        too_big = await http.post("/api/v1/auth/login", content=b"x" * (16 * 1024 * 1024 + 1))
        assert too_big.status_code == 413

    owner = await api.register()
    ws = await api.create_workspace(owner)
    url = proxied.replace("http://", "ws://") + f"/api/v1/workspaces/{ws}/events/ws"
    async with connect(url, additional_headers=owner.headers) as socket:
        hello = await asyncio.wait_for(socket.recv(), 10)
        assert '"live.subscribed"' in str(hello)
