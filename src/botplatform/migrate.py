"""Runs Alembic from code (the CLI and the tests), as the database owner.

In production the app connects as a role that neither owns the tables nor is a superuser
(DATABASE_URL), and migrations run as the owner (DATABASE_OWNER_URL). After upgrading, the
owner grants the app role what it needs on every table — and row-level security still
applies to it.
"""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import make_url

from botplatform.config import Settings
from botplatform.db import create_engine


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", "botplatform:migrations")
    config.set_main_option("sqlalchemy.url", settings.owner_dsn.replace("%", "%%"))
    return config


def app_role(settings: Settings) -> str | None:
    """The app's own PostgreSQL role, when it is not the owner's."""
    if settings.is_sqlite or not settings.database_owner_url:
        return None
    app_user = make_url(settings.database_dsn).username
    owner_user = make_url(settings.owner_dsn).username
    return app_user if app_user and app_user != owner_user else None


async def _grant(settings: Settings, role: str) -> None:
    engine = create_engine(settings, settings.owner_dsn)
    quoted = '"' + role.replace('"', '""') + '"'
    try:
        async with engine.begin() as connection:
            for statement in (
                f"GRANT USAGE ON SCHEMA public TO {quoted}",
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {quoted}",
                f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted}",
            ):
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Brings the schema to `revision`. Must run outside an event loop (Alembic's env uses
    asyncio.run); from async code, call it in a thread."""
    command.upgrade(alembic_config(settings), revision)
    role = app_role(settings)
    if role:
        asyncio.run(_grant(settings, role))


def downgrade(settings: Settings, revision: str = "base") -> None:
    command.downgrade(alembic_config(settings), revision)


def check(settings: Settings) -> None:
    """Raises if the models and the migrations disagree."""
    command.check(alembic_config(settings))
