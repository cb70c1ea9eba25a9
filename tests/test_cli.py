"""The `botplatform` command, run as a user would (in-process through typer's runner)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from botplatform.cli import app

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
        **extra,
    }


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
