"""The `botplatform` command, run as a user would (in-process through typer's runner)."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from typer.testing import CliRunner

from botplatform.cli import app
from botplatform.config import Settings
from botplatform.main import create_app
from tests.conftest import base_settings

runner = CliRunner()


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "REDIS_URL": "",
        "DATA_DIR": str(tmp_path / "data"),
        "LOG_DIR": str(tmp_path / "logs"),
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_COST_KIB": "1024",
        "ARGON2_PARALLELISM": "1",
        # The same key as the app the tests start over the command's database (its links).
        "SECRET_KEY": "test-secret-key-not-for-production",
        **extra,
    }


@asynccontextmanager
async def _serving(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app over the database the commands used."""
    application = create_app(settings)
    async with LifespanManager(application, startup_timeout=30, shutdown_timeout=30):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            yield http


def test_setup_prints_credentials_once(tmp_path: Path) -> None:
    env = _env(tmp_path, ADMIN_EMAIL="root@example.com")
    first = runner.invoke(app, ["setup"], env=env)
    assert first.exit_code == 0, first.output
    assert "root@example.com" in first.output
    assert "superadmin" in first.output
    second = runner.invoke(app, ["setup"], env=env)
    assert second.exit_code == 0
    assert "root@example.com" not in second.output


def test_seed_creates_one_user_per_role(tmp_path: Path) -> None:
    env = _env(tmp_path)
    result = runner.invoke(app, ["db", "seed"], env=env)
    assert result.exit_code == 0, result.output
    for role in ("admin", "developer", "manager", "agent", "analyst", "viewer"):
        assert f"{role}@demo.example.com" in result.output
    again = runner.invoke(app, ["db", "seed"], env=env)
    assert "@demo.example.com" not in again.output


def test_reset_and_migrate(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert runner.invoke(app, ["db", "migrate"], env=env).exit_code == 0
    assert runner.invoke(app, ["db", "seed"], env=env).exit_code == 0
    assert runner.invoke(app, ["db", "reset", "--yes"], env=env).exit_code == 0
    reseeded = runner.invoke(app, ["db", "seed"], env=env)
    assert "admin@demo.example.com" in reseeded.output  # the old users were wiped
    refused = runner.invoke(
        app, ["db", "reset", "--yes"], env={**env, "APP_ENV": "production", "SECRET_KEY": "k"}
    )
    assert refused.exit_code == 1


def test_create_admin(tmp_path: Path) -> None:
    env = _env(tmp_path)
    runner.invoke(app, ["db", "migrate"], env=env)
    made = runner.invoke(app, ["create-admin", "--email", "ops@example.com"], env=env)
    assert made.exit_code == 0, made.output
    assert "ops@example.com" in made.output
    weak = runner.invoke(
        app, ["create-admin", "--email", "x@example.com", "--password", "short"], env=env
    )
    assert weak.exit_code == 1
    assert "too weak" in weak.output


def test_db_ping_up(tmp_path: Path) -> None:
    result = runner.invoke(app, ["db", "ping"], env=_env(tmp_path))
    assert result.exit_code == 0
    assert "database: up" in result.output
    assert "redis: in-process" in result.output


@pytest.mark.parametrize(
    ("extra", "down"),
    [
        ({"REDIS_URL": "redis://127.0.0.1:9/0"}, "redis: down"),
        ({"DATABASE_URL": "postgresql://postgres@127.0.0.1:9/none"}, "database: down"),
    ],
)
def test_db_ping_down_exits_non_zero(tmp_path: Path, extra: dict[str, str], down: str) -> None:
    result = runner.invoke(app, ["db", "ping"], env=_env(tmp_path, **extra))
    assert result.exit_code == 1
    assert down in result.output


def test_serve_holds_sockets_without_compression(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An idle socket's largest cost was its zlib state (docs/decisions.md): `serve` runs
    uvicorn without per-message compression and with a small frame limit."""
    monkeypatch.setenv("HOST", "127.0.0.1")  # `serve` sets both; restored after the test
    monkeypatch.setenv("PORT", "3000")
    ran: list[dict[str, Any]] = []
    monkeypatch.setattr("uvicorn.run", lambda *args, **kwargs: ran.append(kwargs))
    env = _env(tmp_path, AUTO_MIGRATE="false")
    result = runner.invoke(app, ["serve", "--port", "3999"], env=env)
    assert result.exit_code == 0, result.output
    [kwargs] = ran
    assert kwargs["ws_per_message_deflate"] is False
    assert kwargs["ws_max_size"] == 64 * 1024


@pytest.mark.parametrize("command", ["worker", "scheduler"])
def test_separate_processes_need_redis(tmp_path: Path, command: str) -> None:
    result = runner.invoke(app, [command], env=_env(tmp_path))
    assert result.exit_code == 2
    assert "runs inside `botplatform serve`" in result.output


def test_sandbox_whatsapp_prints_the_exact_channel_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    served: list[Any] = []
    monkeypatch.setattr("botplatform.sandbox.run", lambda host, port, graph: served.append(graph))
    result = runner.invoke(
        app, ["sandbox", "whatsapp", "--port", "3999", "--phone-number-id", "4445556667"]
    )
    assert result.exit_code == 0, result.output
    [graph] = served
    for line in (
        "WHATSAPP_API_BASE_URL=http://127.0.0.1:3999",
        "'Connect the sandbox'",
        "phone_number_id      4445556667",
        f"business_account_id  {graph.waba_id}",
        "access_token         sandbox-token",
        "app_secret           sandbox-app-secret",
        'botplatform sandbox message "hello" --from 15551234567 --name Ada',
        "curl http://127.0.0.1:3999/_sandbox/sent",
    ):
        assert line in result.output, line
    # The number it was told about is one it answers for; no webhook URL needed to start.
    assert graph.number("4445556667") is not None and graph.webhook_url is None


@pytest.mark.parametrize("provider", ["messenger", "instagram"])
def test_sandbox_messenger_and_instagram_say_how_to_connect(
    monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    served: list[Any] = []
    monkeypatch.setattr("botplatform.sandbox.run", lambda host, port, graph: served.append(graph))
    result = runner.invoke(app, ["sandbox", provider, "--port", "3998"])
    assert result.exit_code == 0, result.output
    [graph] = served
    assert graph.access_tokens == {"sandbox-token"}
    for line in (
        "MESSENGER_API_BASE_URL=http://127.0.0.1:3998",
        f'{{"provider": "{provider}"}}',
        "http://127.0.0.1:3998/_sandbox/meta/inbound",
        "curl http://127.0.0.1:3998/_sandbox/meta/sent",
    ):
        assert line in result.output, line


def test_sandbox_telegram_says_how_to_connect_a_bot(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[Any] = []
    monkeypatch.setattr(
        "botplatform.sandbox.telegram.run", lambda host, port, fake: served.append(fake)
    )
    result = runner.invoke(app, ["sandbox", "telegram", "--port", "3997", "--token", "42:abc"])
    assert result.exit_code == 0, result.output
    [fake] = served
    assert set(fake.bots) == {"42:abc"} and fake.bots["42:abc"].id == 42
    for line in (
        "TELEGRAM_API_BASE_URL=http://127.0.0.1:3997",
        '{"provider": "telegram", "bot_token": "42:abc"}',
        "http://127.0.0.1:3997/_sandbox/telegram/inbound",
        "curl http://127.0.0.1:3997/_sandbox/telegram/sent",
    ):
        assert line in result.output, line


async def test_sandbox_message_writes_as_a_customer() -> None:
    from botplatform.sandbox import FakeGraph, create_app
    from tests.serving import serving

    hooks: list[dict[str, Any]] = []

    async def platform(scope: Any, receive: Any, send: Any) -> None:  # a webhook endpoint
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        hooks.append(json.loads(body))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    graph = FakeGraph(access_tokens={"t"}, app_secret="s")
    async with serving(platform) as hook_port, serving(create_app(graph), lifespan="on") as port:
        graph.connect("4445556667", f"http://127.0.0.1:{hook_port}/webhooks/whatsapp/x")
        sandbox = f"http://127.0.0.1:{port}"

        async def say(*args: str) -> Any:
            command = ["sandbox", "message", *args, "--sandbox-url", sandbox]
            return await asyncio.to_thread(runner.invoke, app, command)

        said = await say("hello", "--from", "15551234567", "--name", "Ada")
        assert said.exit_code == 0, said.output
        assert "Ada (+15551234567) wrote 'hello'" in said.output and "answered 200" in said.output
        other = await say("hi", "--from", "15559876543")
        assert "Customer 6543 (+15559876543)" in other.output
        profiles = [h["entry"][0]["changes"][0]["value"]["contacts"][0] for h in hooks]
        assert [p["profile"]["name"] for p in profiles] == ["Ada", "Customer 6543"]
        unknown = await say("hi", "--phone-number-id", "999")
        assert unknown.exit_code == 1 and "no phone number 999" in unknown.output
    down = runner.invoke(app, ["sandbox", "message", "hi", "--sandbox-url", "http://127.0.0.1:9"])
    assert down.exit_code == 1 and "start it with `botplatform sandbox whatsapp`" in down.output


def _cpu_seconds(*args: str, env: dict[str, str] | None = None, expect: str = "Usage:") -> float:
    """User+system CPU of one `botplatform …` run in a child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    script = Path(sys.executable).parent / "botplatform"  # the installed console script
    done = subprocess.run(
        [script, *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert expect in done.stdout
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def test_help_costs_under_a_second_of_cpu() -> None:
    # Best of three: the first run may also compile bytecode.
    assert min(_cpu_seconds("--help") for _ in range(3)) < 1.0
    assert min(_cpu_seconds("users", "--help") for _ in range(2)) < 1.0


def test_db_ping_and_queue_status_cost_under_a_second_of_cpu(tmp_path: Path) -> None:
    # It pings through the bare drivers: no app, no models, no job queue imported.
    env = _env(tmp_path)
    assert min(_cpu_seconds("db", "ping", env=env, expect="database: up") for _ in range(3)) < 1.0
    assert runner.invoke(app, ["db", "migrate"], env=env).exit_code == 0
    # Embedded mode's queue status reads only the database, through the bare driver too.
    assert min(_cpu_seconds("queue", "status", env=env, expect="dead") for _ in range(3)) < 1.0


def test_help_text_is_plain_and_not_broken_mid_sentence() -> None:
    width = 80
    top = runner.invoke(app, ["--help"], terminal_width=width)
    assert top.exit_code == 0
    serve = runner.invoke(app, ["serve", "--help"], terminal_width=width)
    admin = runner.invoke(app, ["create-admin", "--help"], terminal_width=width)
    for result in (top, serve, admin):
        assert "<bool>" not in result.output
        assert "<text>" not in result.output
        assert "╭" not in result.output  # no boxes that re-break long lines
        assert all(len(line) <= width for line in result.output.splitlines())
    # A docstring's own line breaks are not kept: its paragraph is re-flowed to the width,
    # so every line of it but the last is filled.
    description = serve.output.split("\n\n")[1].splitlines()
    assert len(description) >= 2
    assert all(len(line) > width - 20 for line in description[:-1])
    assert "creates the first superadmin" in " ".join(line.strip() for line in description)
    assert "create-admin" in top.output and "users" in top.output
    # Sub-command summaries are whole sentences, wrapped, never cut with "...".
    for group in ([], ["db"], ["queue"], ["audit"], ["keys"], ["sandbox"], ["users"]):
        listed = runner.invoke(app, [*group, "--help"], terminal_width=width).output
        commands = listed.split("Commands:", 1)[1]
        assert not any(line.rstrip().endswith("...") for line in commands.splitlines()), listed


def test_create_admin_sets_the_password_of_an_existing_superadmin(tmp_path: Path) -> None:
    env = _env(tmp_path)
    runner.invoke(app, ["db", "migrate"], env=env)
    first = [
        "create-admin",
        "--email",
        "boss@example.com",
        "--password",
        "violet-harbour-lantern-42",
    ]
    assert runner.invoke(app, first, env=env).exit_code == 0
    changed = runner.invoke(
        app,
        ["create-admin", "--email", "boss@example.com", "--password", "amber-orchard-compass-77"],
        env=env,
    )
    assert changed.exit_code == 0, changed.output
    assert "password was set" in changed.output
    weak = runner.invoke(
        app, ["create-admin", "--email", "boss@example.com", "--password", "password"], env=env
    )
    assert weak.exit_code == 1
    assert "too weak" in weak.output
    too_long = runner.invoke(
        app, ["create-admin", "--email", "boss@example.com", "--password", "x" * 2000], env=env
    )
    assert too_long.exit_code == 1
    assert "at most 1024" in too_long.output

    async def check() -> None:
        settings = base_settings(tmp_path, database_url=env["DATABASE_URL"], redis_url="")
        async with _serving(settings) as http:
            for password, status in (
                ("violet-harbour-lantern-42", 401),
                ("amber-orchard-compass-77", 200),
            ):
                response = await http.post(
                    "/api/v1/auth/login", json={"email": "boss@example.com", "password": password}
                )
                assert response.status_code == status

    asyncio.run(check())


def test_create_admin_password_lifts_a_lockout(tmp_path: Path) -> None:
    env = _env(tmp_path)
    runner.invoke(app, ["db", "migrate"], env=env)
    made = [
        "create-admin",
        "--email",
        "boss@example.com",
        "--password",
        "violet-harbour-lantern-42",
    ]
    assert runner.invoke(app, made, env=env).exit_code == 0
    settings = base_settings(tmp_path, database_url=env["DATABASE_URL"], redis_url="")

    async def lock() -> None:
        async with _serving(settings) as http:
            for _ in range(settings.login_max_failures):
                wrong = {"email": "boss@example.com", "password": "wrong-password-123"}
                await http.post("/api/v1/auth/login", json=wrong)
            right = {"email": "boss@example.com", "password": "violet-harbour-lantern-42"}
            assert (await http.post("/api/v1/auth/login", json=right)).status_code == 429

    async def back_in() -> None:
        async with _serving(settings) as http:
            right = {"email": "boss@example.com", "password": "amber-orchard-compass-77"}
            assert (await http.post("/api/v1/auth/login", json=right)).status_code == 200

    asyncio.run(lock())
    reset = [
        "create-admin",
        "--email",
        "boss@example.com",
        "--password",
        "amber-orchard-compass-77",
    ]
    assert runner.invoke(app, reset, env=env).exit_code == 0
    asyncio.run(back_in())


def test_users_reset_password_prints_a_one_time_link(tmp_path: Path) -> None:
    env = _env(tmp_path)
    runner.invoke(app, ["db", "migrate"], env=env)
    made = [
        "create-admin",
        "--email",
        "boss@example.com",
        "--password",
        "violet-harbour-lantern-42",
    ]
    assert runner.invoke(app, made, env=env).exit_code == 0
    unknown = runner.invoke(app, ["users", "reset-password", "nobody@example.com"], env=env)
    assert unknown.exit_code == 1
    assert "no active account" in unknown.output
    printed = runner.invoke(app, ["users", "reset-password", "boss@example.com"], env=env)
    assert printed.exit_code == 0, printed.output
    token = printed.output.split("token=", 1)[1].split()[0]
    settings = base_settings(tmp_path, database_url=env["DATABASE_URL"], redis_url="")

    async def use() -> None:
        async with _serving(settings) as http:
            body = {"token": token, "password": "amber-orchard-compass-77"}
            assert (await http.post("/api/v1/auth/password/reset", json=body)).status_code == 200
            again = await http.post("/api/v1/auth/password/reset", json=body)
            assert again.status_code == 410
            login = {"email": "boss@example.com", "password": "amber-orchard-compass-77"}
            assert (await http.post("/api/v1/auth/login", json=login)).status_code == 200

    asyncio.run(use())
