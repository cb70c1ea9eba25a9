"""`botplatform backup` and `botplatform restore`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from botplatform.backup.service import Manifest, RestorePlan


def _summary(manifest: Manifest) -> str:
    media = manifest.media
    size = sum(entry.size for entry in manifest.files)
    return (
        f"{manifest.backend} backup of {manifest.created_at}, schema"
        f" {', '.join(manifest.revisions) or 'empty'}, {len(media)} media files,"
        f" {size / 1_048_576:.1f} MiB{' (encrypted)' if manifest.encrypted else ''}"
    )


def backup(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="File to write (default: ./botplatform-backup-<UTC time>.tar[.enc])",
        ),
    ] = None,
    to_destination: Annotated[
        bool,
        typer.Option(
            "--to-destination",
            help="Store it where scheduled backups go (BACKUP_DIR or BACKUP_S3_BUCKET)"
            " and keep the newest BACKUP_KEEP",
        ),
    ] = False,
) -> None:
    """Back up the database and the media storage into one file, while the platform runs
    (encrypted when BACKUP_ENCRYPTION_KEY is set)."""
    from botplatform.backup import service
    from botplatform.backup.destinations import destination_for
    from botplatform.backup.errors import BackupError
    from botplatform.config import load_settings
    from botplatform.media.storage import create_storage

    settings = load_settings()
    media = create_storage(settings)
    try:
        if to_destination:
            stored = asyncio.run(
                service.backup_to_destination(settings, media, destination_for(settings))
            )
            typer.echo(f"backup written to {stored.location}: {_summary(stored.manifest)}")
            for name in stored.pruned:
                typer.echo(f"  removed old backup {name} (BACKUP_KEEP={settings.backup_keep})")
            return
        target = output or Path(service.backup_file_name(settings))
        manifest = asyncio.run(service.create_backup(settings, media, target))
    except BackupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"backup written to {target}: {_summary(manifest)}")


def restore(
    file: Annotated[Path, typer.Argument(help="A file written by `botplatform backup`")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
) -> None:
    """Replace the database and the media storage with a backup. Stop the app, workers and
    scheduler first. Refuses a backup older than the database's schema."""
    from botplatform.backup import service
    from botplatform.backup.errors import BackupError
    from botplatform.config import load_settings
    from botplatform.media.storage import create_storage

    settings = load_settings()

    def confirm(plan: RestorePlan) -> bool:
        typer.echo(f"backup checked: {_summary(plan.manifest)}")
        current = ", ".join(plan.database_revisions) or "empty"
        typer.echo(f"this REPLACES the database (now at schema {current}) and the media storage")
        return yes or typer.confirm("restore it?", default=False)

    try:
        manifest = asyncio.run(service.restore(settings, create_storage(settings), file, confirm))
    except BackupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    if manifest is None:
        typer.echo("nothing restored")
        raise typer.Exit(1)
    typer.echo(f"restored {file}; run `botplatform audit verify` to check the audit chain")
