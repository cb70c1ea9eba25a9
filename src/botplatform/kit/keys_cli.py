"""`botplatform keys rotate`: re-encrypts every secret column under the newest key."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from botplatform.kit.cli_help import Group

if TYPE_CHECKING:
    from botplatform.runtime import Runtime

# Models and the database are imported inside the functions: the CLI's start stays fast.
keys_app = typer.Typer(
    help="Encryption keys for secrets at rest",
    no_args_is_help=True,
    rich_markup_mode=None,
    cls=Group,
)


def encrypted_columns() -> list[tuple[str, str]]:
    """(table, column) of every EncryptedText column in the models."""
    from botplatform.kit import crypto
    from botplatform.models import Base

    return [
        (table.name, column.name)
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, crypto.EncryptedText)
    ]


async def rotate_all(runtime: Runtime) -> int:
    from sqlalchemy import Text, select, type_coerce, update

    from botplatform.kit import crypto
    from botplatform.models import Base

    rotated = 0
    async with runtime.db.unit_of_work(system=True) as db:
        for table_name, column_name in encrypted_columns():
            table = Base.metadata.tables[table_name]
            # Read and write the raw ciphertext (the column type would decrypt it).
            raw = type_coerce(table.c[column_name], Text)
            rows = (await db.execute(select(table.c.id, raw).where(raw.is_not(None)))).all()
            for row_id, token in rows:
                new_token = crypto.rotate(token)
                await db.execute(
                    update(table)
                    .where(table.c.id == row_id)
                    .values({column_name: type_coerce(new_token, Text)})
                )
                rotated += 1
    return rotated


@keys_app.command("rotate")
def rotate() -> None:
    """Re-encrypt every stored secret with the first key of ENCRYPTION_KEYS. Afterwards the
    older keys can be removed from the list."""
    from botplatform.config import load_settings
    from botplatform.runtime import run_with_runtime

    count = run_with_runtime(load_settings(), rotate_all)
    typer.echo(f"re-encrypted {count} secret(s) under the newest key")
