"""Where scheduled backups are kept: a folder, or an S3 bucket under a prefix; the newest
BACKUP_KEEP stay, older ones are deleted after each new one is stored."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any, Protocol

import anyio.to_thread

from botplatform.config import Settings
from botplatform.media.storage import s3_client

# Names carry a UTC timestamp, so name order is age order.
BACKUP_NAME = re.compile(r"botplatform-backup-\d{8}T\d{6}Z\.tar(\.enc)?")


class Destination(Protocol):
    async def store(self, source: Path, name: str) -> str:
        """Keeps the file `source` as `name`; returns where it went."""
        ...

    async def names(self) -> list[str]:
        """The backups kept there, oldest first."""
        ...

    async def remove(self, name: str) -> None: ...


class FolderDestination:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def store(self, source: Path, name: str) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / name
        await anyio.to_thread.run_sync(shutil.move, source, target)
        return str(target)

    async def names(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(p.name for p in self.folder.iterdir() if BACKUP_NAME.fullmatch(p.name))

    async def remove(self, name: str) -> None:
        (self.folder / name).unlink(missing_ok=True)


class S3Destination:
    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client, self.bucket, self.prefix = client, bucket, prefix

    async def store(self, source: Path, name: str) -> str:
        # upload_file streams in parts: a backup never has to fit in memory.
        call = self.client.upload_file
        await anyio.to_thread.run_sync(call, str(source), self.bucket, self.prefix + name)
        return f"s3://{self.bucket}/{self.prefix}{name}"

    async def names(self) -> list[str]:
        return await anyio.to_thread.run_sync(self._names)

    def _names(self) -> list[str]:
        found: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for item in page.get("Contents", []):
                name = item["Key"][len(self.prefix) :]
                if BACKUP_NAME.fullmatch(name):
                    found.append(name)
        return sorted(found)

    async def remove(self, name: str) -> None:
        call = self.client.delete_object
        await anyio.to_thread.run_sync(lambda: call(Bucket=self.bucket, Key=self.prefix + name))


def destination_for(settings: Settings) -> Destination:
    if settings.backup_s3_bucket:
        return S3Destination(
            s3_client(settings), settings.backup_s3_bucket, settings.backup_s3_prefix
        )
    return FolderDestination(settings.backup_folder)


async def prune(destination: Destination, keep: int) -> list[str]:
    """Deletes all but the newest `keep` backups; returns the names deleted."""
    names = await destination.names()
    old = names[: max(len(names) - keep, 0)]
    for name in old:
        await destination.remove(name)
    return old
