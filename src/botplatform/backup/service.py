"""Writing a backup file and restoring from one.

A backup is a tar stream (sealed by `crypto` when BACKUP_ENCRYPTION_KEY is set) holding the
database snapshot, every media object as `media/<key>`, and last `manifest.json`: the backend,
the Alembic revision of the snapshot, and each file's size, SHA-256 and content type. A restore
first unpacks and checks everything into a staging folder, then checks the schema, asks, and
only then replaces anything.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, BinaryIO

import anyio.to_thread

from botplatform import migrate
from botplatform.backup import database
from botplatform.backup.crypto import MAGIC, DecryptingReader, EncryptingWriter
from botplatform.backup.database import Revisions
from botplatform.backup.destinations import Destination, prune
from botplatform.backup.errors import BackupError
from botplatform.config import Settings
from botplatform.kit.clock import utcnow
from botplatform.media.storage import MediaNotFound, MediaStorage, validate_key

FORMAT = 1
MANIFEST = "manifest.json"
MEDIA_DIR = "media/"
DATABASE_FILES = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}
_READ_BYTES = 1024 * 1024


@dataclass
class FileEntry:
    path: str
    size: int
    sha256: str
    content_type: str | None = None


@dataclass
class Manifest:
    backend: str
    revisions: list[str]
    created_at: str
    files: list[FileEntry] = field(default_factory=list)
    format: int = FORMAT
    encrypted: bool = False

    @property
    def media(self) -> list[FileEntry]:
        return [entry for entry in self.files if entry.path.startswith(MEDIA_DIR)]

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        raw = json.loads(data)
        if raw.get("format") != FORMAT:
            raise BackupError(f"unsupported backup format {raw.get('format')!r}")
        files = [FileEntry(**entry) for entry in raw.pop("files")]
        return cls(files=files, **raw)


def backup_file_name(settings: Settings) -> str:
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    return f"botplatform-backup-{stamp}.tar" + (".enc" if settings.backup_encryption_key else "")


def _media_skip_prefix(settings: Settings) -> str:
    """Backups kept in the media bucket are not media."""
    same_bucket = settings.backup_s3_bucket and settings.backup_s3_bucket == settings.aws_s3_bucket
    return settings.backup_s3_prefix if same_bucket else ""


# --- writing ---------------------------------------------------------------------------------


class _ArchiveWriter:
    """The tar stream of one backup, written to `path` (sealed when a key is given)."""

    def __init__(self, path: Path, key: str) -> None:
        # Owner-only from the first byte: a backup holds every workspace's data.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._sink: BinaryIO = os.fdopen(descriptor, "wb")
        self._sealer = EncryptingWriter(self._sink, key) if key else None
        stream = self._sealer or self._sink
        self._tar = tarfile.open(fileobj=stream, mode="w|")  # type: ignore[call-overload]  # noqa: SIM115
        self.entries: list[FileEntry] = []

    def add_file(self, name: str, source: Path) -> None:
        digest = hashlib.sha256()
        with source.open("rb") as handle:
            for block in iter(lambda: handle.read(_READ_BYTES), b""):
                digest.update(block)
        info = tarfile.TarInfo(name)
        info.size = source.stat().st_size
        with source.open("rb") as handle:
            self._tar.addfile(info, handle)
        self.entries.append(FileEntry(name, info.size, digest.hexdigest()))

    def add_bytes(self, name: str, data: bytes, content_type: str | None = None) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        self._tar.addfile(info, io.BytesIO(data))
        digest = hashlib.sha256(data).hexdigest()
        self.entries.append(FileEntry(name, len(data), digest, content_type))

    def close(self) -> None:
        self._tar.close()
        if self._sealer is not None:
            self._sealer.close()
        self._sink.flush()
        os.fsync(self._sink.fileno())
        self._sink.close()


async def _snapshot_database(settings: Settings, staging: Path) -> tuple[Path, Revisions]:
    target = staging / DATABASE_FILES[database.backend(settings)]
    if settings.is_sqlite:
        await anyio.to_thread.run_sync(database.dump, settings, target)
        return target, database.sqlite_file_revisions(target)
    # pg_dump copies one snapshot; a migration running meanwhile is not a thing we support.
    revisions = await database.current_revisions(settings)
    await anyio.to_thread.run_sync(database.dump, settings, target)
    return target, revisions


async def create_backup(settings: Settings, media: MediaStorage, output: Path) -> Manifest:
    """Writes a backup of the database and the media storage to `output` (atomically)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".backup-") as tmp:
        db_file, revisions = await _snapshot_database(settings, Path(tmp))
        manifest = Manifest(
            backend=database.backend(settings),
            revisions=list(revisions),
            created_at=utcnow().isoformat(),
            encrypted=bool(settings.backup_encryption_key),
        )
        writer = _ArchiveWriter(partial, settings.backup_encryption_key)
        try:
            await anyio.to_thread.run_sync(writer.add_file, db_file.name, db_file)
            # Listed after the snapshot: every file its rows name is there (files are
            # content-addressed and never rewritten).
            for key in await media.keys(_media_skip_prefix(settings)):
                try:
                    data, content_type = await media.get(key)
                except MediaNotFound:
                    continue  # deleted since the listing (retention, erasure)
                await anyio.to_thread.run_sync(
                    writer.add_bytes, MEDIA_DIR + key, data, content_type
                )
            manifest.files = list(writer.entries)
            await anyio.to_thread.run_sync(writer.add_bytes, MANIFEST, manifest.to_json())
            await anyio.to_thread.run_sync(writer.close)
        except BaseException:
            with contextlib.suppress(Exception):
                writer.close()
            partial.unlink(missing_ok=True)
            raise
    partial.replace(output)
    return manifest


# --- reading ---------------------------------------------------------------------------------


def _open_stream(path: Path, key: str, stack: contextlib.ExitStack) -> BinaryIO:
    handle: BinaryIO = stack.enter_context(path.open("rb"))
    encrypted = handle.read(len(MAGIC)) == MAGIC
    handle.seek(0)
    if not encrypted:
        return handle
    if not key:
        raise BackupError("the backup is encrypted: set BACKUP_ENCRYPTION_KEY to its key")
    return DecryptingReader(handle, key)  # type: ignore[return-value]


def _staged_path(staging: Path, name: str) -> Path:
    if name == MANIFEST or name in DATABASE_FILES.values():
        return staging / name
    if name.startswith(MEDIA_DIR):
        try:
            return staging / "media" / validate_key(name[len(MEDIA_DIR) :])
        except ValueError as exc:
            raise BackupError(f"unexpected file in the backup: {name!r}") from exc
    raise BackupError(f"unexpected file in the backup: {name!r}")


def _members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    for member in tar:
        if not member.isfile():
            raise BackupError(f"unexpected entry in the backup: {member.name!r}")
        yield member


def _copy_hashing(source: IO[bytes], target: Path) -> str:
    digest = hashlib.sha256()
    with target.open("wb") as out:
        while block := source.read(_READ_BYTES):
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def _extract(tar: tarfile.TarFile, staging: Path) -> dict[str, tuple[int, str]]:
    seen: dict[str, tuple[int, str]] = {}
    for member in _members(tar):
        target = _staged_path(staging, member.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        assert source is not None  # a regular file always has a body
        seen[member.name] = (member.size, _copy_hashing(source, target))
    return seen


def stage(settings: Settings, path: Path, staging: Path) -> Manifest:
    """Unpacks `path` into `staging`, checking every file against the manifest."""
    if not path.is_file():
        raise BackupError(f"no backup file at {path}")
    with contextlib.ExitStack() as stack:
        stream = _open_stream(path, settings.backup_encryption_key, stack)
        try:
            tar = stack.enter_context(tarfile.open(fileobj=stream, mode="r|"))
            seen = _extract(tar, staging)
        except tarfile.TarError as exc:
            raise BackupError(f"not a readable backup file: {exc}") from exc
    if MANIFEST not in seen:
        raise BackupError("the backup has no manifest: it is incomplete or not a backup")
    manifest = Manifest.from_json((staging / MANIFEST).read_bytes())
    expected = {entry.path: (entry.size, entry.sha256) for entry in manifest.files}
    seen.pop(MANIFEST)
    if seen != expected:
        bad = sorted(
            name for name in expected.keys() | seen.keys() if seen.get(name) != expected.get(name)
        )
        raise BackupError(f"the backup does not match its manifest (checksums): {bad[:5]}")
    return manifest


# --- restoring -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestorePlan:
    manifest: Manifest
    database_revisions: Revisions


Confirm = Callable[[RestorePlan], Awaitable[bool] | bool]


async def _replace_media(media: MediaStorage, manifest: Manifest, staging: Path, skip: str) -> None:
    wanted = {entry.path[len(MEDIA_DIR) :]: entry for entry in manifest.media}
    for key, entry in wanted.items():
        data = await anyio.to_thread.run_sync((staging / "media" / key).read_bytes)
        await media.put(key, data, entry.content_type or "application/octet-stream")
    # What the backup did not hold belongs to rows that are not restored either.
    for key in await media.keys(skip):
        if key not in wanted:
            await media.delete(key)


async def restore(
    settings: Settings, media: MediaStorage, path: Path, confirm: Confirm
) -> Manifest | None:
    """Replaces the database and the media with the backup at `path`; None if not confirmed."""
    staging_root = settings.data_dir / "tmp"
    staging_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=staging_root, prefix="restore-") as tmp:
        staging = Path(tmp)
        manifest = await anyio.to_thread.run_sync(stage, settings, path, staging)
        if manifest.backend != database.backend(settings):
            raise BackupError(
                f"this is a {manifest.backend} backup; the platform is configured for"
                f" {database.backend(settings)}"
            )
        target = await database.current_revisions(settings)
        database.check_restorable(settings, tuple(manifest.revisions), target)
        answer = confirm(RestorePlan(manifest, target))
        if not (await answer if not isinstance(answer, bool) else answer):
            return None
        db_file = staging / DATABASE_FILES[manifest.backend]
        await anyio.to_thread.run_sync(database.load, settings, db_file)
        await _replace_media(media, manifest, staging, _media_skip_prefix(settings))
    # An older backup comes up to this code's schema; grants the app role on PostgreSQL too.
    await anyio.to_thread.run_sync(migrate.upgrade, settings)
    return manifest


# --- scheduled -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredBackup:
    location: str
    manifest: Manifest
    pruned: list[str]


async def backup_to_destination(
    settings: Settings, media: MediaStorage, destination: Destination
) -> StoredBackup:
    """A new backup stored at the destination, then all but the newest BACKUP_KEEP removed."""
    staging_root = settings.data_dir / "tmp"
    staging_root.mkdir(parents=True, exist_ok=True)
    name = backup_file_name(settings)
    with tempfile.TemporaryDirectory(dir=staging_root, prefix="backup-") as tmp:
        manifest = await create_backup(settings, media, Path(tmp) / name)
        location = await destination.store(Path(tmp) / name, name)
    pruned = await prune(destination, settings.backup_keep)
    return StoredBackup(location, manifest, pruned)
