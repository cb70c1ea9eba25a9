"""The Dockerfile, without Docker (none runs on this machine or in CI).

hadolint lints it. Then its instructions are carried out here, in order, by a small
interpreter: the build stage's ENV, WORKDIR, COPY (from this checkout) and RUN lines run in a
fresh folder standing for /app, with a fresh virtual environment; the runtime stage keeps only
what it copies from the build stage (the environment), runs its ENTRYPOINT and CMD as its USER
with its ENV, and its HEALTHCHECK command must pass, and the baked-in browser assets be served.

What is not reproduced, honestly: the base image (this machine's system Python 3.11 stands in
for python:3.11-slim's), and the RUN lines that install system packages (`apt-get`: npm, postgresql-
client) or uv itself (`pip install uv`) — this machine has them already, installed by .ci/run.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.serving import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
SYSTEM_STEPS = ("apt-get ", "pip install ")


@dataclass
class Stage:
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for word, args in self.instructions if word == keyword]


def _stages() -> dict[str, Stage]:
    """The Dockerfile's stages: (INSTRUCTION, arguments), continuation lines joined."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, args = line.partition(" ")
        if word == "FROM":
            name = args.split(" AS ")[-1].strip() if " AS " in args else args
            current = stages[name] = Stage(name)
        elif current is not None:
            current.instructions.append((word, " ".join(args.split())))
    return stages


def _env_pairs(args: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in shlex.split(args))


def _host_env() -> dict[str, str]:
    """This machine's environment (PATH, registries' settings) without a virtualenv or any
    platform setting of the test run."""
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV" and not k.startswith("TEST_")}
    if shutil.which("uv") is None:  # CI may run uv as `python3 -m uv`
        shim = Path(tempfile.mkdtemp()) / "uv"
        shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m uv "$@"\n')
        shim.chmod(0o755)
        env["PATH"] = f"{shim.parent}:{env['PATH']}"
    return env


def _shared_python() -> str:
    if os.geteuid() != 0:
        return sys.executable
    for candidate in ("/usr/local/bin/python3.11", "/usr/bin/python3.11"):
        if Path(candidate).exists():
            return candidate
    pytest.fail("no Python 3.11 outside root's home to build the image's environment with")


def _at(path: str, app: Path) -> str:
    """A path of the image, on this machine."""
    return path.replace("/app", str(app))


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    config = ROOT / ".hadolint.yaml"
    result = subprocess.run(
        [hadolint, "--config", str(config), str(DOCKERFILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_multi_stage_slim_and_runs_as_a_user() -> None:
    stages = _stages()
    assert list(stages) == ["build", "runtime"]
    assert any(
        "slim" in line for line in DOCKERFILE.read_text().splitlines() if "PYTHON_IMAGE=" in line
    )
    runtime = stages["runtime"]
    assert runtime.all("USER") == ["10001:10001"]
    assert runtime.all("COPY") == ["--from=build /app/.venv /app/.venv"]
    assert json.loads(runtime.all("ENTRYPOINT")[0]) == ["botplatform"]
    runs = " ".join(stages["build"].all("RUN"))
    assert "uv sync --frozen --no-dev" in runs and "botplatform assets" in runs


@pytest.fixture(scope="module")
def built() -> Iterator[Path]:
    """The build stage carried out in a fresh folder standing for /app."""
    app = Path(tempfile.mkdtemp(prefix="image-app-"))
    app.chmod(0o755)  # the runtime user must reach the environment, as in the image
    env = _host_env()
    # The environment's interpreter must be one the image's user can run, as the base image's
    # /usr/local/bin/python is: this machine's Python may live under root's home.
    env["UV_PYTHON"] = _shared_python()
    workdir = app
    for word, args in _stages()["build"].instructions:
        if word == "ENV":
            env.update({key: _at(value, app) for key, value in _env_pairs(args).items()})
        elif word == "WORKDIR":
            workdir = Path(_at(args, app))
            workdir.mkdir(parents=True, exist_ok=True)
        elif word == "COPY":
            *sources, target = args.split()
            for source in sources:
                destination = (
                    workdir / target / source if target.endswith("/") else workdir / target
                )
                if (ROOT / source).is_dir():
                    shutil.copytree(
                        ROOT / source,
                        destination,
                        dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "vendor"),
                    )
                else:
                    shutil.copy(ROOT / source, destination)
        elif word == "RUN" and not args.startswith(SYSTEM_STEPS):
            result = subprocess.run(
                ["/bin/sh", "-c", _at(args, app)],
                cwd=workdir,
                env=env,
                capture_output=True,
                text=True,
            )
            assert result.returncode == 0, f"RUN {args}\n{result.stdout}\n{result.stderr}"
    # The runtime stage copies the environment only.
    for child in app.iterdir():
        if child.name != ".venv":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    yield app
    shutil.rmtree(app, ignore_errors=True)


def _as_user(user: str) -> list[str]:
    if os.geteuid() != 0:
        return []  # already not root
    uid, gid = user.split(":")
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]


def _tail(process: subprocess.Popen[bytes]) -> str:
    return process.stdout.read().decode()[-3000:] if process.stdout else ""


def test_built_image_serves_passes_its_healthcheck_and_has_the_assets(
    built: Path, request: pytest.FixtureRequest
) -> None:
    runtime = _stages()["runtime"]
    site = next((built / ".venv" / "lib").glob("python3*/site-packages"))
    assert (site / "botplatform" / "dashboard" / "static" / "vendor" / "htmx.min.js").is_file()
    assert not list(site.glob("*.pth")) or "src" not in "".join(
        p.read_text() for p in site.glob("*.pth")
    )

    env = {k: v for k, v in _host_env().items() if not k.startswith("UV_")}
    data = Path(tempfile.mkdtemp(prefix="image-data-"))
    request.addfinalizer(lambda: shutil.rmtree(data, ignore_errors=True))
    user = runtime.all("USER")[0]
    if os.geteuid() == 0:
        os.chown(data, *map(int, user.split(":")))
    for args in runtime.all("ENV"):
        for key, value in _env_pairs(args).items():
            value = value.replace("$PATH", env["PATH"])
            env[key] = _at(value, built).replace("/data", str(data))
    port = free_port()
    env["PORT"] = str(port)
    command = json.loads(runtime.all("ENTRYPOINT")[0]) + json.loads(runtime.all("CMD")[0])
    assert command == ["botplatform", "serve"]
    healthcheck = json.loads(runtime.all("HEALTHCHECK")[0].split(" CMD ", 1)[1])
    with subprocess.Popen(
        [*_as_user(user), *command],
        cwd=data,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    ) as server:
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                probe = subprocess.run(
                    [*_as_user(user), *healthcheck], env=env, capture_output=True
                )
                if probe.returncode == 0:
                    break
                assert server.poll() is None, _tail(server)
                time.sleep(0.5)
            assert probe.returncode == 0, probe.stderr
            htmx = httpx.get(f"http://127.0.0.1:{port}/app/static/vendor/htmx.min.js", timeout=10)
            assert htmx.status_code == 200 and len(htmx.content) > 10_000
        finally:
            server.terminate()
    assert (data / "botplatform.db").is_file()  # the embedded database, written as the user
