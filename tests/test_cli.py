"""The `botplatform` command, run as a user would (in-process through typer's runner)."""

from __future__ import annotations

from pathlib import Path

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
