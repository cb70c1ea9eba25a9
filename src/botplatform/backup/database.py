"""Copying the database out and back: pg_dump/pg_restore for PostgreSQL, SQLite's online
backup API for the embedded file. Both copy one consistent snapshot while the platform runs."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from botplatform import migrate
from botplatform.backup.errors import BackupError
from botplatform.config import Settings
from botplatform.db import create_engine

Revisions = tuple[str, ...]
# Tenant tables have forced row-level security: the owner reads and writes every row only in
# the platform's system mode (migrations/rls.py), which pg_dump/pg_restore enter like this.
_SYSTEM_MODE = "-c app.bypass_rls=on"


def backend(settings: Settings) -> str:
    return "sqlite" if settings.is_sqlite else "postgresql"


def sqlite_path(settings: Settings) -> Path:
    database = make_url(settings.database_dsn).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(database)


def _libpq_url(settings: Settings) -> str:
    url = make_url(settings.owner_dsn).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _pg_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} not found: install the PostgreSQL client (postgresql-client)")
    return path


def _run(command: list[str]) -> None:
    env = {**os.environ, "PGOPTIONS": _SYSTEM_MODE}
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise BackupError(f"{Path(command[0]).name} failed: {result.stderr.strip()}")


def dump(settings: Settings, target: Path) -> None:
    """Writes the database to `target` (custom-format dump, or a SQLite file)."""
    if settings.is_sqlite:
        source = sqlite3.connect(sqlite_path(settings), timeout=30)
        copy = sqlite3.connect(target)
        try:
            # One step: a consistent snapshot under a read lock, which WAL writers do not wait on.
            source.backup(copy)
        finally:
            copy.close()
            source.close()
        return
    _run(
        [
            _pg_tool("pg_dump"),
            "--format=custom",
            "--no-owner",
            "--no-privileges",
            "--enable-row-security",
            f"--file={target}",
            f"--dbname={_libpq_url(settings)}",
        ]
    )


def load(settings: Settings, source: Path) -> None:
    """Replaces the database's content with the dump at `source`."""
    if settings.is_sqlite:
        path = sqlite_path(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        snapshot = sqlite3.connect(source)
        live = sqlite3.connect(path, timeout=60)
        try:
            snapshot.backup(live)
        finally:
            live.close()
            snapshot.close()
        return
    _run(
        [
            _pg_tool("pg_restore"),
            "--clean",
            "--if-exists",
            "--no-owner",
            "--no-privileges",
            "--single-transaction",
            "--exit-on-error",
            "--enable-row-security",
            f"--dbname={_libpq_url(settings)}",
            str(source),
        ]
    )


async def current_revisions(settings: Settings) -> Revisions:
    """The Alembic revision(s) the database is at; () for an empty database."""
    engine = create_engine(settings, settings.owner_dsn)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(text("SELECT version_num FROM alembic_version"))
            return tuple(sorted(row[0] for row in rows))
    except DBAPIError:
        return ()  # no alembic_version table: nothing migrated yet
    finally:
        await engine.dispose()


def sqlite_file_revisions(path: Path) -> Revisions:
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.Error:
        return ()
    finally:
        connection.close()
    return tuple(sorted(row[0] for row in rows))


def _scripts(settings: Settings) -> ScriptDirectory:
    return ScriptDirectory.from_config(migrate.alembic_config(settings))


def code_heads(settings: Settings) -> Revisions:
    return tuple(sorted(_scripts(settings).get_heads()))


def _lineage(scripts: ScriptDirectory, revisions: Revisions, what: str) -> set[str]:
    """Every revision at or below `revisions`; BackupError if one is unknown to this code."""
    lineage: set[str] = set()
    for revision in revisions:
        try:
            lineage.update(r.revision for r in scripts.iterate_revisions(revision, "base") if r)
        except Exception as exc:  # alembic raises several kinds for an unknown id
            raise BackupError(
                f"the {what} is at revision {revision}, which this version of the platform does"
                " not know: install the version that wrote it (or a newer one) first"
            ) from exc
    return lineage


def check_restorable(settings: Settings, backup: Revisions, target: Revisions) -> None:
    """Refuses a backup from a newer platform, and a restore over a newer schema."""
    scripts = _scripts(settings)
    backup_lineage = _lineage(scripts, backup, "backup")
    _lineage(scripts, target, "database")
    if not set(target) <= backup_lineage:
        raise BackupError(
            f"the database's schema ({', '.join(target)}) is newer than the backup's"
            f" ({', '.join(backup) or 'empty'}): restore into an empty database, then run"
            " `botplatform db migrate`"
        )
