"""The README's "Try WhatsApp without a Meta account", step by step, as a newcomer runs it:
real `botplatform sandbox whatsapp` and `botplatform serve --port` processes on a fresh
SQLite data directory and a port that is not the default, the printed credentials, the
dashboard's "Connect the sandbox", `botplatform sandbox message` as two customers, and a reply
that reaches the sandbox and is read."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from botplatform.config import Settings
from tests.conftest import eventually
from tests.dashboard.helpers import browser_login, post_form
from tests.serving import free_port

ROOT = Path(__file__).resolve().parent.parent
WALKTHROUGH = (
    (ROOT / "README.md")
    .read_text()
    .split("## Try WhatsApp without a Meta account", 1)[1]
    .split("\n## ", 1)[0]
)


def test_the_readme_walkthrough_names_what_the_test_runs() -> None:
    for step in (
        "uv run botplatform sandbox whatsapp ",
        "WHATSAPP_API_BASE_URL=http://127.0.0.1:3100 make run",
        "botplatform serve --port 3210",
        "Connect the sandbox",
        "POST /api/v1/workspaces/{ws}/channels/sandbox",
        'uv run botplatform sandbox message "hello" --from 15551234567 --name Ada',
        "--from 15559876543",
        "curl 127.0.0.1:3100/_sandbox/sent",
        "Connect the sandbox again",
    ):
        assert step in WALKTHROUGH, step


def _environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A newcomer's shell: none of the suite's database, Redis, port or URL settings."""
    dropped = ("DATABASE_", "REDIS_", "APP_URL", "NEXTAUTH_", "PORT", "HOST", "ADMIN_", "AUTO_")
    environment = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    environment.update(
        DATA_DIR=str(tmp_path / "data"),
        LOG_DIR=str(tmp_path / "logs"),
        LOG_TO_STDOUT="false",
        ARGON2_TIME_COST="1",
        ARGON2_MEMORY_COST_KIB="1024",
        ARGON2_PARALLELISM="1",
        **extra,
    )
    return environment


@contextmanager
def _process(args: list[str], env: dict[str, str], out: Path, cwd: Path) -> Iterator[None]:
    with out.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "botplatform", *args],
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield
    finally:
        process.terminate()
        process.wait(timeout=30)


@asynccontextmanager
async def _up(http: httpx.AsyncClient, url: str, timeout: float = 90) -> AsyncIterator[None]:
    async def answers() -> bool:
        try:
            await http.get(url)
        except httpx.HTTPError:
            return False
        return True

    await eventually(answers, timeout=timeout, interval=0.2)
    yield


async def _cli(env: dict[str, str], cwd: Path, *args: str) -> str:
    import asyncio

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "botplatform",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()
    return output.decode()


async def test_the_readme_walkthrough_works_on_a_fresh_install(
    settings: Settings, tmp_path: Path
) -> None:
    if not settings.is_sqlite:
        pytest.skip("the walkthrough is the embedded SQLite default")
    sandbox_port, platform_port = free_port(), free_port()
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    env = _environment(tmp_path, WHATSAPP_API_BASE_URL=sandbox)
    serve_out, sandbox_out = tmp_path / "serve.out", tmp_path / "sandbox.out"
    with (
        # 1. the sandbox; 2. the platform on a port that is not the default
        _process(["sandbox", "whatsapp", "--port", str(sandbox_port)], env, sandbox_out, tmp_path),
        _process(["serve", "--port", str(platform_port)], env, serve_out, tmp_path),
    ):
        base = f"http://127.0.0.1:{platform_port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            async with _up(http, f"{sandbox}/_sandbox/channels"), _up(http, "/health/live"):
                pass
            assert "Connect the sandbox" in sandbox_out.read_text()

            # 3. open the address, log in with the printed credentials, connect the sandbox
            root = await http.get("/", follow_redirects=True)
            assert str(root.url).startswith(f"{base}/app/login")
            found = re.search(r"superadmin\s+(\S+@\S+)\s+(\S+)", serve_out.read_text())
            assert found, serve_out.read_text()
            email, password = found.groups()
            await browser_login(http, email, password)
            home = await http.get("/app")
            ws = home.headers["location"].rsplit("/", 1)[1]
            made = await post_form(
                http, f"/app/w/{ws}/channels", f"/app/w/{ws}/channels/sandbox", {}
            )
            assert made.status_code == 303, made.text
            channel_id = made.headers["location"].split("?")[0].rsplit("/", 1)[1]
            numbers = (await http.get(f"{sandbox}/_sandbox/channels")).json()["numbers"]
            hook = f"http://localhost:{platform_port}/webhooks/whatsapp/{channel_id}"
            assert hook in [n["webhook_url"] for n in numbers]

            # 4. be two customers
            said = await _cli(
                env, tmp_path, "sandbox", "message", "hello", "--from", "15551234567",
                "--name", "Ada", "--sandbox-url", sandbox,
            )  # fmt: skip
            assert "answered 200" in said
            await _cli(
                env, tmp_path, "sandbox", "message", "do you ship to Canada?",
                "--from", "15559876543", "--sandbox-url", sandbox,
            )  # fmt: skip

            # 5. both conversations, told apart; a reply reaches the sandbox and is read
            login = await http.post(
                "/api/v1/auth/login", json={"email": email, "password": password}
            )
            headers = {"Authorization": f"Bearer {login.json()['data']['access_token']}"}

            async def two() -> list[Any] | None:
                listed = await http.get(f"/api/v1/workspaces/{ws}/conversations", headers=headers)
                items = listed.json()["data"]["items"]
                return items if len(items) == 2 else None

            rows = await eventually(two, timeout=30)
            seen = {(c["contact_name"], c["contact_handle"]) for c in rows}
            assert seen == {("Ada", "+15551234567"), ("Customer 6543", "+15559876543")}
            inbox = (await http.get(f"/app/w/{ws}/inbox")).text
            assert "+15551234567" in inbox and "+15559876543" in inbox
            ada = next(c for c in rows if c["contact_name"] == "Ada")
            reply = await http.post(
                f"/api/v1/workspaces/{ws}/conversations/{ada['id']}/messages",
                json={"text": "It ships today!"},
                headers=headers,
            )
            assert reply.status_code in (200, 201, 202), reply.text

            async def reached() -> list[Any] | None:
                sent = (await http.get(f"{sandbox}/_sandbox/sent")).json()["sent"]
                return sent or None

            [out] = await eventually(reached, timeout=30)
            assert (out["to"], out["body"]["text"]["body"]) == ("15551234567", "It ships today!")

            async def read() -> bool:
                listed = await http.get(
                    f"/api/v1/workspaces/{ws}/conversations/{ada['id']}/messages", headers=headers
                )
                return any(m["status"] == "read" for m in listed.json()["data"]["items"])

            await eventually(read, timeout=30)
