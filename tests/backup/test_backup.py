"""Backup and restore on both backends, taken while messages keep arriving: every row and
media file comes back equal, the audit chain still verifies, and damaged, foreign, older or
unconfirmed restores change nothing."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tarfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import delete, func, select
from typer.testing import CliRunner

from botplatform import migrate
from botplatform.audit import service as audit
from botplatform.backup import database, service
from botplatform.backup.crypto import CHUNK_BYTES, MAGIC
from botplatform.backup.database import check_restorable, code_heads, current_revisions
from botplatform.backup.destinations import destination_for
from botplatform.backup.errors import BackupError
from botplatform.bootstrap import first_start
from botplatform.cli import app as cli
from botplatform.config import Settings
from botplatform.db import Database
from botplatform.media.storage import (
    LocalStorage,
    MediaStorage,
    create_storage,
    media_key,
    s3_client,
)
from botplatform.models import Base, InboundEvent, Message, Workspace
from botplatform.runtime import Runtime, run_with_runtime
from botplatform.worker.jobs import REGISTRY
from botplatform.worker.scheduler import BACKUP_JOB, Schedule, schedules_for
from tests.conftest import BACKENDS, PG_URL, Account, Api, app_role_url, base_settings, eventually

runner = CliRunner()
KEY = "correct-horse-battery-staple-0123456789"
Rows = dict[str, list[tuple[Any, ...]]]
MESSAGE_COLUMNS = [column.name for column in Message.__table__.columns]
ID = MESSAGE_COLUMNS.index("id")


# --- helpers -----------------------------------------------------------------------------


async def _rows(db: Database) -> Rows:
    """Every row of every table, in primary-key order."""
    found: Rows = {}
    async with db.unit_of_work(write=False, system=True) as session:
        for table in Base.metadata.sorted_tables:
            result = await session.execute(select(table).order_by(*table.primary_key.columns))
            found[table.name] = [tuple(row) for row in result]
    return found


async def _media(storage: MediaStorage, skip: str = "") -> dict[str, tuple[bytes, str]]:
    return {key: await storage.get(key) for key in await storage.keys(skip)}


async def _audit_intact(db: Database) -> int:
    async with db.unit_of_work(write=False, system=True) as session:
        checked, broken = await audit.verify(session)
    assert broken is None, broken
    return checked


async def _put_media(runtime: Runtime, ws: str, data: bytes) -> str:
    key = media_key(uuid.UUID(ws), hashlib.sha256(data).hexdigest(), "png")
    await runtime.media.put(key, data, "image/png")
    return key


async def _quiet(runtime: Runtime) -> None:
    """Waits until every accepted webhook has been processed."""

    async def drained() -> bool:
        async with runtime.db.unit_of_work(write=False, system=True) as session:
            pending = await session.scalar(
                select(func.count())
                .select_from(InboundEvent)
                .where(InboundEvent.status == "pending")
            )
        return pending == 0

    await eventually(drained, timeout=60)
    await asyncio.sleep(0.5)  # the jobs that follow a processed event (events, live) finish


async def _fresh_target(settings: Settings, tmp: Path) -> Settings:
    """An empty database and media folder of the same backend, as after losing a machine."""
    if settings.is_sqlite:
        return base_settings(tmp, database_url=f"sqlite:///{tmp / 'restored.db'}", redis_url="")
    base, name = PG_URL.rsplit("/", 1)
    target = f"{base}/{name}_restored"
    connection = await asyncpg.connect(f"{base}/postgres")
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}_restored" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}_restored"')
    finally:
        await connection.close()
    return base_settings(
        tmp, database_url=app_role_url(target), database_owner_url=target, redis_url=""
    )


@contextlib.asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[Database]:
    db = Database(settings)
    try:
        yield db
    finally:
        await db.dispose()


class Traffic:
    """Customers writing in (and media being stored) until stopped."""

    def __init__(self, api: Api, runtime: Runtime, channel_id: str, ws: str) -> None:
        self.api, self.runtime, self.channel_id, self.ws = api, runtime, channel_id, ws
        self.sent = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            self.sent += 1
            await self.api.inbound_text(
                self.channel_id, f"3160{self.sent % 7:04d}", f"m{self.sent}"
            )
            await _put_media(self.runtime, self.ws, os.urandom(64) + f"{self.sent}".encode())
            await asyncio.sleep(0.01)

    def __enter__(self) -> Traffic:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()

    async def stopped(self) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task


async def _tenant(api: Api, runtime: Runtime) -> tuple[Account, str, str]:
    owner = await api.register()
    ws = await api.create_workspace(owner)
    channel = await api.create_channel(owner, ws)
    for index in range(5):
        await api.inbound_text(channel["id"], f"3161{index:04d}", f"hello {index}")
        await _put_media(runtime, ws, f"picture {index}".encode())
    await _quiet(runtime)
    return owner, ws, channel["id"]


def _confirm(plan: service.RestorePlan) -> bool:
    return True


# --- the round trip ----------------------------------------------------------------------


async def test_round_trip_while_messages_arrive(
    api: Api, runtime: Runtime, settings: Settings, tmp_path: Path
) -> None:
    encrypted = settings.model_copy(update={"backup_encryption_key": KEY})
    _, ws, channel_id = await _tenant(api, runtime)

    # 1. A backup taken while customers keep writing in.
    traffic = Traffic(api, runtime, channel_id, ws)
    with traffic:
        await eventually(lambda: traffic.sent >= 5)
        async with _database(settings) as probe:
            before = {row[ID] for row in (await _rows(probe))["messages"]}
        started = traffic.sent
        under_load = await service.create_backup(encrypted, runtime.media, tmp_path / "a.tar.enc")
        # Customers kept writing in around it (on PostgreSQL pg_dump takes long enough for
        # messages to land during the dump; SQLite copies its snapshot in one step).
        await eventually(lambda: traffic.sent > started)
    await traffic.stopped()
    assert (tmp_path / "a.tar.enc").read_bytes().startswith(MAGIC)
    assert under_load.encrypted and under_load.revisions == list(code_heads(settings))
    await _quiet(runtime)

    # 2. A quiet backup, restored into an empty database and media folder: equal everywhere.
    source_rows = await _rows(runtime.db)
    source_media = await _media(runtime.media)
    assert len(source_rows["messages"]) >= 5 + traffic.sent
    await service.create_backup(encrypted, runtime.media, tmp_path / "b.tar.enc")
    target = (await _fresh_target(settings, tmp_path / "fresh")).model_copy(
        update={"backup_encryption_key": KEY}
    )
    target_media = LocalStorage(target.data_dir / "media")
    restored = await service.restore(target, target_media, tmp_path / "b.tar.enc", _confirm)
    assert restored is not None
    async with _database(target) as db:
        assert await _rows(db) == source_rows
        assert await _audit_intact(db) > 0
    assert await _media(target_media) == source_media

    # 3. The backup taken under load is one consistent moment: all that was there before it
    # began, each message as the source has it, the chain intact, every file its rows name.
    fresh = (await _fresh_target(settings, tmp_path / "load")).model_copy(
        update={"backup_encryption_key": KEY}
    )
    load_media = LocalStorage(fresh.data_dir / "media")
    await service.restore(fresh, load_media, tmp_path / "a.tar.enc", _confirm)
    async with _database(fresh) as db:
        snapshot = await _rows(db)
        await _audit_intact(db)
        async with db.unit_of_work(write=False, system=True) as session:
            keys = set(
                await session.scalars(
                    select(Message.media_key).where(Message.media_key.is_not(None))
                )
            )
    by_id = {row[ID]: row for row in source_rows["messages"]}
    restored_ids = {row[ID] for row in snapshot["messages"]}
    assert before <= restored_ids <= set(by_id)
    fixed = [
        MESSAGE_COLUMNS.index(name)
        for name in ("id", "conversation_id", "direction", "text", "content", "created_at")
    ]
    for row in snapshot["messages"]:
        assert [row[i] for i in fixed] == [by_id[row[ID]][i] for i in fixed]
    assert keys <= set(await load_media.keys())

    # 4. Restored over the live platform after more traffic: back to the quiet backup exactly.
    for index in range(3):
        await api.inbound_text(channel_id, f"3162{index:04d}", f"after {index}")
        await _put_media(runtime, ws, f"later {index}".encode())
    await _quiet(runtime)
    await service.restore(encrypted, runtime.media, tmp_path / "b.tar.enc", _confirm)
    await runtime.db.dispose()  # pooled connections may hold plans of the dropped tables
    runtime.cache.clear()
    assert await _rows(runtime.db) == source_rows
    assert await _media(runtime.media) == source_media
    await _audit_intact(runtime.db)


# --- refusals ----------------------------------------------------------------------------


@pytest.fixture
def embedded(tmp_path: Path) -> Settings:
    settings = base_settings(
        tmp_path, database_url=f"sqlite:///{tmp_path / 'one.db'}", redis_url=""
    )
    migrate.upgrade(settings)
    return settings


async def _backup(settings: Settings, path: Path) -> service.Manifest:
    return await service.create_backup(settings, LocalStorage(settings.data_dir / "media"), path)


async def _restore(settings: Settings, path: Path, answer: bool = True) -> service.Manifest | None:
    storage = LocalStorage(settings.data_dir / "media")
    return await service.restore(settings, storage, path, lambda _: answer)


async def test_refuses_over_a_newer_schema_and_restores_into_an_empty_one(tmp_path: Path) -> None:
    old = base_settings(
        tmp_path / "old", database_url=f"sqlite:///{tmp_path / 'old.db'}", redis_url=""
    )
    heads = code_heads(old)
    previous = (
        ScriptDirectory.from_config(migrate.alembic_config(old))
        .get_revision(heads[0])
        .down_revision
    )
    await asyncio.to_thread(migrate.upgrade, old, str(previous))
    manifest = await _backup(old, tmp_path / "old.tar")
    assert manifest.revisions == [previous]

    current = base_settings(
        tmp_path / "new", database_url=f"sqlite:///{tmp_path / 'new.db'}", redis_url=""
    )
    await asyncio.to_thread(migrate.upgrade, current)
    with pytest.raises(BackupError, match="newer than the backup"):
        await _restore(current, tmp_path / "old.tar")

    # Into an empty database it goes, and is brought up to this code's schema.
    empty = base_settings(
        tmp_path / "e", database_url=f"sqlite:///{tmp_path / 'e.db'}", redis_url=""
    )
    assert await _restore(empty, tmp_path / "old.tar") is not None
    assert await current_revisions(empty) == heads


def test_a_backup_from_a_newer_platform_is_refused(embedded: Settings) -> None:
    with pytest.raises(BackupError, match="does not know"):
        check_restorable(embedded, ("ffffffffffff",), ())
    with pytest.raises(BackupError, match="does not know"):
        check_restorable(embedded, code_heads(embedded), ("ffffffffffff",))
    check_restorable(embedded, code_heads(embedded), code_heads(embedded))


async def test_not_confirmed_changes_nothing(embedded: Settings, tmp_path: Path) -> None:
    await _backup(embedded, tmp_path / "x.tar")
    db_file = Path(str(embedded.database_dsn).split(":///", 1)[1])
    before = db_file.read_bytes()
    await LocalStorage(embedded.data_dir / "media").put("ws/a/extra.png", b"x", "image/png")
    assert await _restore(embedded, tmp_path / "x.tar", answer=False) is None
    assert db_file.read_bytes() == before
    assert await LocalStorage(embedded.data_dir / "media").exists("ws/a/extra.png")


async def test_encryption_needs_the_key_and_detects_any_change(
    embedded: Settings, tmp_path: Path
) -> None:
    sealed = embedded.model_copy(update={"backup_encryption_key": KEY})
    # Media larger than one chunk: the stream crosses several sealed chunks.
    await LocalStorage(embedded.data_dir / "media").put(
        "ws/a/big.bin", os.urandom(CHUNK_BYTES * 2 + 7), "x/y"
    )
    path = tmp_path / "s.tar.enc"
    await _backup(sealed, path)
    data = path.read_bytes()
    assert b"big.bin" not in data and b"alembic_version" not in data

    with pytest.raises(BackupError, match="encrypted"):
        await _restore(embedded, path)
    wrong = embedded.model_copy(update={"backup_encryption_key": "x" * 40})
    with pytest.raises(BackupError, match="cannot decrypt"):
        await _restore(wrong, path)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 1
    (tmp_path / "flipped").write_bytes(bytes(flipped))
    with pytest.raises(BackupError, match="cannot decrypt"):
        await _restore(sealed, tmp_path / "flipped")
    # Cut after a whole chunk: every chunk left is authentic, but none is marked the last.
    (tmp_path / "cut").write_bytes(data[: len(MAGIC) + 23 + CHUNK_BYTES + 16])
    with pytest.raises(BackupError, match="cannot decrypt"):
        await _restore(sealed, tmp_path / "cut")
    assert await _restore(sealed, path) is not None


async def test_checksums_catch_a_changed_file(embedded: Settings, tmp_path: Path) -> None:
    await LocalStorage(embedded.data_dir / "media").put(
        "ws/a/p.png", b"original bytes", "image/png"
    )
    path = tmp_path / "plain.tar"
    await _backup(embedded, path)
    assert path.stat().st_mode & 0o077 == 0  # readable by its owner alone
    data = path.read_bytes()
    assert data.count(b"original bytes") == 1
    path.write_bytes(data.replace(b"original bytes", b"0riginal bytes"))
    with pytest.raises(BackupError, match="does not match its manifest"):
        await _restore(embedded, path)
    with tarfile.open(tmp_path / "evil.tar", "w") as tar:
        tar.add(path, arcname="../../etc/evil")
    with pytest.raises(BackupError, match="unexpected file"):
        await _restore(embedded, tmp_path / "evil.tar")


# --- media on S3, scheduled backups, the commands ------------------------------------------


def _with_bucket(settings: Settings, endpoint: str, **extra: Any) -> Settings:
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    s3 = {
        "aws_s3_bucket": bucket,
        "aws_endpoint_url": endpoint,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    s3.update(extra)
    configured = settings.model_copy(update=s3)
    client = s3_client(configured)
    client.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    return configured


async def test_s3_media_and_backups_in_the_same_bucket(
    embedded: Settings, s3_endpoint: str, tmp_path: Path
) -> None:
    settings = _with_bucket(embedded, s3_endpoint)
    settings = settings.model_copy(update={"backup_s3_bucket": settings.aws_s3_bucket})
    media = create_storage(settings)
    files = {f"ws/{uuid.uuid4()}/ab/{index}.png": os.urandom(300) for index in range(4)}
    for key, data in files.items():
        await media.put(key, data, "image/png")
    destination = destination_for(settings)
    stored = await service.backup_to_destination(settings, media, destination)
    assert stored.location.startswith(f"s3://{settings.aws_s3_bucket}/backups/")
    # The backup object sits in the media bucket, and is not media.
    assert sorted(await media.keys("backups/")) == sorted(files)
    assert len(await destination.names()) == 1

    for key in files:
        await media.delete(key)
    await media.put("ws/x/stray.png", b"not in the backup", "image/png")
    name = (await destination.names())[0]
    local = tmp_path / name
    s3_client(settings).download_file(settings.aws_s3_bucket, "backups/" + name, str(local))  # type: ignore[attr-defined]
    assert await service.restore(settings, media, local, _confirm) is not None
    # The stray file is gone, the backups kept beside the media are not.
    assert await _media(media, "backups/") == {
        key: (data, "image/png") for key, data in files.items()
    }
    assert await destination.names() == [name]


async def test_scheduled_backups_keep_the_newest_n(embedded: Settings, tmp_path: Path) -> None:
    settings = embedded.model_copy(update={"backup_keep": 2, "backup_dir": tmp_path / "kept"})
    folder = tmp_path / "kept"
    folder.mkdir()
    for stamp in ("20240101T000000Z", "20250101T000000Z", "20250601T000000Z"):
        (folder / f"botplatform-backup-{stamp}.tar").write_bytes(b"old")
    (folder / "notes.txt").write_text("not a backup: left alone")
    media = LocalStorage(settings.data_dir / "media")
    stored = await service.backup_to_destination(settings, media, destination_for(settings))
    assert stored.pruned == [
        "botplatform-backup-20240101T000000Z.tar",
        "botplatform-backup-20250101T000000Z.tar",
    ]
    kept = sorted(path.name for path in folder.iterdir())
    assert kept[0] == "botplatform-backup-20250601T000000Z.tar" and "notes.txt" in kept
    assert Path(stored.location).name in kept and len(kept) == 3
    assert service.stage(settings, Path(stored.location), tmp_path / "check").backend == "sqlite"


def test_backup_schedule_adds_the_job_and_is_validated(tmp_path: Path) -> None:
    assert BACKUP_JOB in REGISTRY
    plain = base_settings(tmp_path)
    assert all(schedule.job != BACKUP_JOB for schedule in schedules_for(plain))
    nightly = base_settings(tmp_path, backup_schedule="30 2 * * *")
    assert Schedule(BACKUP_JOB, "30 2 * * *") in schedules_for(nightly)
    with pytest.raises(ValueError, match="cron"):
        base_settings(tmp_path, backup_schedule="every night")
    with pytest.raises(ValueError, match="32 characters"):
        base_settings(tmp_path, backup_encryption_key="short")


def test_cli_backup_and_restore(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "REDIS_URL": "",
        "DATA_DIR": str(tmp_path / "data"),
        "SECRET_KEY": "test-secret-key-not-for-production",
        "BACKUP_ENCRYPTION_KEY": KEY,
    }
    assert runner.invoke(cli, ["db", "migrate"], env=env).exit_code == 0
    out = tmp_path / "cli.tar.enc"
    made = runner.invoke(cli, ["backup", "--output", str(out)], env=env)
    assert made.exit_code == 0, made.output
    assert "(encrypted)" in made.output and out.exists()

    declined = runner.invoke(cli, ["restore", str(out)], env=env, input="n\n")
    assert declined.exit_code == 1 and "REPLACES the database" in declined.output
    assert "nothing restored" in declined.output
    done = runner.invoke(cli, ["restore", str(out), "--yes"], env=env)
    assert done.exit_code == 0, done.output
    assert "audit verify" in done.output

    no_key = runner.invoke(
        cli, ["restore", str(out), "--yes"], env={**env, "BACKUP_ENCRYPTION_KEY": ""}
    )
    assert no_key.exit_code == 1 and "set BACKUP_ENCRYPTION_KEY" in no_key.output
    kept = runner.invoke(cli, ["backup", "--to-destination"], env=env)
    assert kept.exit_code == 0 and str(tmp_path / "data" / "backups") in kept.output


def test_db_wait_passes_once_migrated(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}",
        "REDIS_URL": "",
        "DATA_DIR": str(tmp_path / "data"),
        "SECRET_KEY": "test-secret-key-not-for-production",
    }
    waiting = runner.invoke(cli, ["db", "wait", "--timeout", "0"], env=env)
    assert waiting.exit_code == 1 and "still waiting" in waiting.output
    assert runner.invoke(cli, ["db", "migrate"], env=env).exit_code == 0
    done = runner.invoke(cli, ["db", "wait", "--timeout", "0"], env=env)
    assert done.exit_code == 0 and "latest migration" in done.output


async def test_the_scheduled_job_runs_on_a_worker(runtime: Runtime, settings: Settings) -> None:
    """What the scheduler fires at BACKUP_SCHEDULE: a worker writes a backup where they go."""
    folder = settings.backup_folder
    before = set(folder.glob("botplatform-backup-*")) if folder.is_dir() else set()
    runtime.jobs.send(BACKUP_JOB)

    async def written() -> list[Path]:
        return [p for p in folder.glob("botplatform-backup-*.tar") if p not in before]

    (path,) = await eventually(written, timeout=60)
    staged = await asyncio.to_thread(
        service.stage, settings, path, settings.data_dir / "tmp" / "chk"
    )
    assert staged.backend == database.backend(settings)
    path.unlink()


@pytest.mark.skipif("postgres" not in BACKENDS, reason="PostgreSQL roles: PostgreSQL only")
async def test_postgres_owner_without_superuser_backs_up_and_restores_every_tenant(
    tmp_path: Path,
) -> None:
    """In production the owner is no superuser, and forced row-level security binds it too:
    pg_dump and pg_restore must still see and write every workspace's rows."""
    base, name = PG_URL.rsplit("/", 1)
    owner, database_name = f"ops_owner_{uuid.uuid4().hex[:8]}", f"{name}_owner"
    admin = await asyncpg.connect(f"{base}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database_name}" WITH (FORCE)')
        await admin.execute(f'CREATE ROLE "{owner}" LOGIN')
        await admin.execute(f'CREATE DATABASE "{database_name}" OWNER "{owner}"')
        host = base.split("@", 1)[1]
        owner_url = f"postgresql://{owner}@{host}/{database_name}"
        settings = base_settings(
            tmp_path,
            database_url=app_role_url(owner_url),
            database_owner_url=owner_url,
            redis_url="",
        )
        await asyncio.to_thread(migrate.upgrade, settings)
        await asyncio.to_thread(run_with_runtime, settings, first_start)  # tenant rows
        async with _database(settings) as db:
            before = await _rows(db)
        assert before["workspaces"] and before["users"]

        await _backup(settings, tmp_path / "owner.tar")
        async with _database(settings) as db, db.unit_of_work(system=True) as session:
            await session.execute(delete(Workspace))
        assert await _restore(settings, tmp_path / "owner.tar") is not None
        async with _database(settings) as db:
            assert await _rows(db) == before
            await _audit_intact(db)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database_name}" WITH (FORCE)')
        await admin.execute(f'DROP ROLE IF EXISTS "{owner}"')
        await admin.close()
