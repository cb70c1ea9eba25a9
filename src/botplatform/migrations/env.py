"""Alembic environment: one history for SQLite and PostgreSQL, run on our own async engine
(so SQLite gets its pragmas) and, on PostgreSQL, under an advisory lock so that several
replicas starting at once migrate one after another."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection

from botplatform.config import load_settings
from botplatform.db import create_engine
from botplatform.kit.crypto import EncryptedText
from botplatform.models import Base
from botplatform.models.base import UTCDateTime

MIGRATION_LOCK_ID = 727_465_001


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    # Migrations must not import application types: UTCDateTime is DateTime(timezone=True)
    # in the database, and that is what the migration files say.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, EncryptedText):
        return "sa.Text()"  # ciphertext
    return False


def _configure(connection: Connection, **options: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=render_item,
        compare_type=True,
        **options,
    )


def _driver_sql(connection: Connection, statement: str) -> list[Any]:
    """A statement on the driver's own connection, outside SQLAlchemy's transaction (which
    running it through SQLAlchemy would begin)."""
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(statement)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _orphans(rows: Sequence[Any]) -> Counter[str]:
    """`PRAGMA foreign_key_check`'s rows: how many rows of each table refer to nothing."""
    return Counter(str(row[0]) for row in rows)


def _keeps_foreign_keys(before: Counter[str]) -> Callable[..., None]:
    """After each migration, in its own transaction (a raise rolls it back): no table may
    have more rows that refer to nothing than before the run."""

    def check(*, ctx: MigrationContext, **_: Any) -> None:
        assert ctx.connection is not None
        now = _orphans(ctx.connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall())
        grown = {table: n for table, n in now.items() if n > before[table]}
        if grown:
            raise RuntimeError(f"the migration left rows that refer to nothing: {grown}")

    return check


def _run(connection: Connection) -> None:
    """SQLite changes a table's keys by rebuilding it (batch mode): a new table, the rows
    copied, the old one dropped. With foreign keys on, that drop would first delete every
    row, cascading into the tables that refer to it; so they are off while migrating (the
    pragma is ignored inside a transaction: it is set before ours begins), and each
    migration is checked instead."""
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        _driver_sql(connection, "PRAGMA foreign_keys=OFF")
        before = _orphans(_driver_sql(connection, "PRAGMA foreign_key_check"))
    _configure(connection, on_version_apply=[_keeps_foreign_keys(before)] if sqlite else [])
    try:
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Held until the migrations' transaction ends (a session lock would not
                # survive a pooler in transaction mode, nor be released by it).
                connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})"))
            context.run_migrations()
    finally:
        if sqlite:
            _driver_sql(connection, "PRAGMA foreign_keys=ON")


async def _run_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    settings = load_settings()
    engine = create_engine(settings, url or None)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url") or load_settings().database_dsn,
        target_metadata=Base.metadata,
        literal_binds=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
