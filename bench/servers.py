"""Starting and stopping the processes under test: each in its own session (so it and its
children can be stopped by its own id), logging to a file, waited for until it answers, and
always stopped when the block that started it ends, even on failure."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

BENCH_DIR = Path(__file__).resolve().parent
PYTHON = sys.executable
# Only these variables of the caller's environment reach the servers: a stray DATABASE_URL
# or LOG_LEVEL in the shell must not change what is measured.
INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")


class ServerFailed(RuntimeError):
    """A process under test exited or never became ready."""


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise ServerFailed(
                f"{self.name} exited ({self.process.returncode}); see {self.log_path}"
            )


def base_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {key: os.environ[key] for key in INHERITED_ENV if key in os.environ}
    env.update(extra or {})
    return env


def _stop(proc: Proc, grace_seconds: float = 10.0) -> None:
    """SIGTERM to the process's own group (it and nothing else), SIGKILL after the grace."""
    if proc.process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.process.pid, signal.SIGTERM)
    try:
        proc.process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.process.pid, signal.SIGKILL)
        proc.process.wait(timeout=grace_seconds)


def wait_ready(proc: Proc, url: str, timeout_seconds: float = 60.0) -> None:
    """Polls `url` until it answers below 500; fails fast if the process died meanwhile."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        proc.check_alive()
        try:
            if httpx.get(url, timeout=2.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise ServerFailed(f"{proc.name} not ready at {url} after {timeout_seconds:.0f} s")


class Processes:
    """The processes of one benchmark phase; all stopped when the `with` block ends."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._procs: list[Proc] = []

    def start(self, name: str, argv: Sequence[str], env: dict[str, str], cwd: Path) -> Proc:
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and scripts
                list(argv),
                env=env,
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        proc = Proc(name, process, log_path)
        self._procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self._procs):
            _stop(proc)
        self._procs.clear()

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


@contextlib.contextmanager
def processes(log_dir: Path) -> Iterator[Processes]:
    with Processes(log_dir) as group:
        yield group


def bench_script(name: str, *args: str) -> list[str]:
    return [PYTHON, str(BENCH_DIR / name), *args]


def botplatform_command(*args: str) -> list[str]:
    """`botplatform …` from the same virtual environment as this benchmark."""
    return [PYTHON, "-m", "botplatform", *args]


def start_redis(procs: Processes, host: str, port: int, database: int) -> tuple[Proc, str]:
    """A Redis server of the run's own (no persistence), in its own session: its CPU is
    measured like any process under test, and no other client's traffic is in it."""
    argv = ["redis-server", "--bind", host, "--port", str(port), "--save", "", "--appendonly", "no"]
    proc = procs.start("redis", argv, base_env(), BENCH_DIR)
    deadline = time.monotonic() + 30
    while True:
        proc.check_alive()
        try:
            with socket.create_connection((host, port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://{host}:{port}/{database}"
        except OSError:
            if time.monotonic() > deadline:
                raise ServerFailed(f"redis not ready on port {port}") from None
        time.sleep(0.1)


def start_sql_relay(procs: Processes, port: int, stats_port: int, upstream_port: int) -> Proc:
    """The counting relay in front of PostgreSQL (bench/pgcount.py)."""
    argv = bench_script(
        "pgcount.py",
        *("--port", str(port), "--stats-port", str(stats_port)),
        *("--upstream-port", str(upstream_port)),
    )
    proc = procs.start("sql-relay", argv, base_env(), BENCH_DIR)
    deadline = time.monotonic() + 30
    while True:
        proc.check_alive()
        try:
            socket.create_connection(("127.0.0.1", stats_port), timeout=1).close()
            return proc
        except OSError:
            if time.monotonic() > deadline:
                raise ServerFailed(f"sql relay not ready on port {stats_port}") from None
        time.sleep(0.1)
