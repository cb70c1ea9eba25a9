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
        "server_reset_query =\nignore_startup_parameters = extra_float_digits\n"
        # A login refused while PostgreSQL restarts is tried again after 1 s, not 15.
        "server_login_retry = 1\n" + as_user
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


PG_VERSION = next(iter(sorted(Path("/usr/lib/postgresql").glob("*"))), Path("15")).name
HAS_PG_CREATECLUSTER = shutil.which("pg_createcluster") is not None


@dataclass
class Cluster:
    """A PostgreSQL cluster of our own (Debian's pg_createcluster), on a loopback port."""

    name: str
    port: int

    def url(self, user: str = "postgres", database: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def ctl(self, action: str, *options: str) -> None:
        _run("pg_ctlcluster", "--skip-systemctl-redirect", PG_VERSION, self.name, action, *options)

    @property
    def data_dir(self) -> Path:
        return Path("/var/lib/postgresql") / PG_VERSION / self.name


def _tool(name: str) -> str:
    return shutil.which(name) or name


def _run(*command: str) -> None:
    completed = subprocess.run(
        [_tool(command[0]), *command[1:]], capture_output=True, timeout=120, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {completed.stderr.decode()[-2000:]}")


def _create_cluster(name: str) -> Cluster:
    port = free_port()
    # Trust on loopback (replication included), as the test server; fsync off: a test's
    # cluster is thrown away, its durability is not under test.
    _run(
        "pg_createcluster", PG_VERSION, name, "-p", str(port),
        "-o", "fsync=off", "-o", "shared_buffers=32MB",
        "--", "--auth=trust",
    )  # fmt: skip
    return Cluster(name, port)


@contextmanager
def own_cluster(label: str) -> Iterator[Cluster]:
    """A new cluster of our own, started; dropped afterwards."""
    cluster = _create_cluster(f"scale_{label}_{os.getpid()}_{free_port()}")
    try:
        cluster.ctl("start")
        yield cluster
    finally:
        _drop(cluster)


def _drop(cluster: Cluster) -> None:
    subprocess.run(
        [_tool("pg_dropcluster"), "--stop", PG_VERSION, cluster.name],
        capture_output=True,
        timeout=120,
        check=False,
    )


@contextmanager
def primary_and_replica() -> Iterator[tuple[Cluster, Cluster]]:
    """Two new clusters: a primary, and a streaming replica of it (`pg_basebackup -R`), both
    started; both dropped afterwards."""
    suffix = f"{os.getpid()}_{free_port()}"
    created: list[Cluster] = []
    try:
        primary = _create_cluster(f"scale_primary_{suffix}")
        created.append(primary)
        primary.ctl("start")
        replica = _create_cluster(f"scale_replica_{suffix}")
        created.append(replica)
        for item in replica.data_dir.iterdir():  # emptied, kept: the postgres user's own
            shutil.rmtree(item) if item.is_dir() else item.unlink()
        _run(
            "runuser", "-u", "postgres", "--", "pg_basebackup", "-h", "127.0.0.1",
            "-p", str(primary.port), "-U", "postgres", "-D", str(replica.data_dir),
            "-R", "-X", "stream", "-c", "fast",
        )  # fmt: skip
        replica.ctl("start")
        yield primary, replica
    finally:
        for cluster in reversed(created):
            _drop(cluster)
