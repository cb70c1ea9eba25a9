"""Real Debian servers started for one test module: PgBouncer in front of the test
PostgreSQL, a second PostgreSQL cluster streaming from a first (a read replica). Each runs as
its own process on a free loopback port and is stopped (its files removed) afterwards."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.serving import free_port

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


@dataclass
class Bouncer:
    port: int
    process: subprocess.Popen[bytes]

    def url(self, server_url: str) -> str:
        """`server_url` (postgresql://user@host:port/db) reached through this PgBouncer."""
        scheme, rest = server_url.split("://", 1)
        user, location = rest.split("@", 1)
        database = location.split("/", 1)[1]
        return f"{scheme}://{user}@127.0.0.1:{self.port}/{database}"


def _server_of(url: str) -> tuple[str, int]:
    location = url.split("@", 1)[1].split("/", 1)[0]
    host, _, port = location.partition(":")
    return host, int(port or 5432)


@contextmanager
def pgbouncer(server_url: str, users: list[str], *, pool_size: int = 2) -> Iterator[Bouncer]:
    """PgBouncer in transaction pooling mode in front of `server_url`'s PostgreSQL (trust
    authentication on loopback, as the test server has), with a small server pool so that
    clients take turns on the same server connections."""
    if not Path(PGBOUNCER).exists():
        raise FileNotFoundError("pgbouncer is not installed (Debian package pgbouncer)")
    host, server_port = _server_of(server_url)
    port = free_port()
    # Its own directory, readable by the user PgBouncer runs as (pytest's are root-only).
    workdir = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    workdir.chmod(0o755)
    (workdir / "users.txt").write_text("".join(f'"{user}" ""\n' for user in users))
    # PgBouncer refuses to run as root: it switches to `user` after start-up.
    as_user = "user = postgres\n" if os.geteuid() == 0 else ""
    (workdir / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={host} port={server_port}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\n"
        f"unix_socket_dir =\nauth_type = trust\nauth_file = {workdir / 'users.txt'}\n"
        f"pool_mode = transaction\ndefault_pool_size = {pool_size}\nmax_client_conn = 500\n"
        f"logfile = {workdir / 'pgbouncer.log'}\npidfile = {workdir / 'pgbouncer.pid'}\n"
        "server_reset_query =\nignore_startup_parameters = extra_float_digits\n" + as_user
    )
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        for path in (workdir, *workdir.iterdir()):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    process = subprocess.Popen(
        [PGBOUNCER, str(workdir / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, process, workdir / "pgbouncer.log")
        yield Bouncer(port, process)
    finally:
        process.send_signal(signal.SIGINT)  # SIGINT: stop now, not after the clients leave
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    import socket

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = log.read_text() if log.exists() else ""
            raise RuntimeError(f"pgbouncer exited ({process.returncode}): {text[-2000:]}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"pgbouncer did not listen on {port}")
