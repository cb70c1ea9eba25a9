"""docker-compose.yml: valid against the Compose specification, scalable as documented, and
its PgBouncer and PostgreSQL pieces working with Debian's pgbouncer and our PostgreSQL.

Docker is not installed here, so `docker compose config` cannot run: the file is checked
against the Compose specification's JSON schema (the copy shipped in check-jsonschema,
`vendor.compose-spec`) and by the assertions below; where `docker` exists, `docker compose
config` runs too."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from tests.conftest import APP_ROLE, PG_URL, REQUIRE_BACKENDS
from tests.serving import free_port

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
SCALED = ("app", "worker")
LONG_RUNNING = ("app", "worker", "scheduler", "nginx", "pgbouncer", "postgres", "redis")


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def _tool(name: str) -> str:
    return shutil.which(name) or str(Path(sys.executable).parent / name)


def test_valid_against_the_compose_specification() -> None:
    result = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _has_compose() -> bool:
    """The docker CLI may be here without its compose plugin (it is on this machine)."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
    return probe.returncode == 0


@pytest.mark.skipif(not _has_compose(), reason="`docker compose` is not installed here")
def test_docker_compose_config() -> None:
    env = {**os.environ, "POSTGRES_PASSWORD": "x", "POSTGRES_APP_PASSWORD": "y"}
    docker = shutil.which("docker") or "docker"
    command = [docker, "compose", "-f", str(COMPOSE), "config", "--quiet"]
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_scaled_services_can_be_scaled() -> None:
    services = _compose()["services"]
    for name in SCALED:
        assert "container_name" not in services[name], name
        assert "ports" not in services[name], f"{name} publishes a host port"
    # nginx finds the apps by the service name, on the port the app exposes.
    upstream = (ROOT / "deploy" / "nginx" / "upstream.conf").read_text()
    assert re.search(r"^\s*server app:3000\b", upstream, re.MULTILINE)
    assert services["app"]["expose"] == ["3000"]
    assert services["app"]["command"] == ["serve"]
    assert services["worker"]["command"] == ["worker"]
    assert services["scheduler"]["command"] == ["scheduler"]


def test_healthchecks_env_and_volumes() -> None:
    compose = _compose()
    services = compose["services"]
    for name in LONG_RUNNING:
        if name == "app":
            assert "HEALTHCHECK" in (ROOT / "Dockerfile").read_text()  # the image's own
            continue
        assert services[name]["healthcheck"]["test"], name
    for name in ("migrate", "app", "worker", "scheduler"):
        assert services[name]["env_file"] == ".env"
        assert services[name]["image"] == services["app"]["image"]  # one image
    declared = set(compose["volumes"])
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
            else:
                assert source in declared, source
    # Every variable the file interpolates is in .env.example, where `.env` starts from.
    example = (ROOT / ".env.example").read_text()
    for variable in set(re.findall(r"\$\{([A-Z_]+)", COMPOSE.read_text())):
        assert f"\n{variable}=" in example, variable
    # The app starts after the migration, which runs once.
    assert services["app"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["db", "migrate"]


def _pgbouncer_ini(folder: Path, port: int, password: str) -> Path:
    shipped = (ROOT / "deploy" / "pgbouncer" / "pgbouncer.ini").read_text()
    database = PG_URL.rsplit("/", 1)[1]
    text = shipped.replace(
        "botplatform = host=postgres port=5432 dbname=botplatform",
        f"botplatform = host=127.0.0.1 port=5432 dbname={database}",
    )
    text = text.replace("listen_port = 6432", f"listen_port = {port}")
    text = text.replace("listen_addr = 0.0.0.0", "listen_addr = 127.0.0.1")
    shipped_userlist = "/tmp/pgbouncer-userlist.txt"  # noqa: S108 - the container's path
    text = text.replace(shipped_userlist, str(folder / "userlist.txt"))
    (folder / "userlist.txt").write_text(f'"{APP_ROLE}" "{password}"\n')
    (folder / "pgbouncer.ini").write_text(text)
    return folder / "pgbouncer.ini"


async def test_pgbouncer_config_pools_transactions() -> None:
    """Debian's pgbouncer runs the shipped pgbouncer.ini (only the addresses and the user list
    are this machine's), and the app role works through it the way the app connects."""
    pgbouncer = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(pgbouncer).exists():
        message = "pgbouncer is not installed (Debian: pgbouncer; .ci/run installs it)"
        if REQUIRE_BACKENDS:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    assert "pool_mode = transaction" in (ROOT / "deploy/pgbouncer/pgbouncer.ini").read_text()
    # Readable by pgbouncer's own user (pytest's folders are root's alone).
    tmp_path = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    tmp_path.chmod(0o755)
    port, password = free_port(), uuid.uuid4().hex
    config = _pgbouncer_ini(tmp_path, port, password)
    user = (
        ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
        if os.geteuid() == 0
        else []
    )
    if user:
        shutil.chown(tmp_path / "userlist.txt", "postgres")
    process = await asyncio.create_subprocess_exec(
        *user, pgbouncer, str(config), stderr=asyncio.subprocess.PIPE
    )
    try:
        name = PG_URL.rsplit("/", 1)[1]
        connection = None
        for _ in range(100):
            try:
                connection = await asyncpg.connect(
                    host="127.0.0.1",
                    port=port,
                    user=APP_ROLE,
                    password=password,
                    database="botplatform",
                    statement_cache_size=0,
                )
                break
            except (OSError, asyncpg.PostgresError):
                await asyncio.sleep(0.05)
        assert connection is not None, "pgbouncer did not accept a connection"
        try:
            async with connection.transaction():
                await connection.execute("SET LOCAL app.workspace_id = 'x'")
                assert (
                    await connection.fetchval("SELECT current_setting('app.workspace_id', true)")
                    == "x"
                )
            # The next transaction may be another server connection: nothing was kept.
            assert await connection.fetchval("SELECT current_database()") == name
        finally:
            await connection.close()
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()
        shutil.rmtree(tmp_path, ignore_errors=True)


async def test_postgres_init_script_creates_the_app_role() -> None:
    role = f"ops_probe_{uuid.uuid4().hex[:8]}"
    base, name = PG_URL.rsplit("/", 1)
    env = {
        **os.environ,
        "POSTGRES_USER": "postgres",
        "POSTGRES_DB": name,
        "POSTGRES_APP_USER": role,
        "POSTGRES_APP_PASSWORD": 'it\'s a "quoted" secret',
        "PGHOST": "127.0.0.1",
    }
    script = ROOT / "deploy" / "postgres" / "init-app-role.sh"
    result = await asyncio.to_thread(
        subprocess.run, ["/bin/sh", str(script)], env=env, capture_output=True, text=True
    )
    connection = await asyncpg.connect(f"{base}/postgres")
    try:
        assert result.returncode == 0, result.stderr
        row = await connection.fetchrow(
            "SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = $1", role
        )
        assert row is not None and row["rolcanlogin"] and not row["rolsuper"]
    finally:
        await connection.execute(f'REVOKE ALL ON DATABASE "{name}" FROM "{role}"')
        await connection.execute(f'DROP ROLE IF EXISTS "{role}"')
        await connection.close()
