"""Runs Alembic from code (the CLI and the tests), on the configured database."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from botplatform.config import Settings


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", "botplatform:migrations")
    config.set_main_option("sqlalchemy.url", settings.database_dsn.replace("%", "%%"))
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Brings the schema to `revision`. Must run outside an event loop (Alembic's env uses
    asyncio.run); from async code, call it in a thread."""
    command.upgrade(alembic_config(settings), revision)


def downgrade(settings: Settings, revision: str = "base") -> None:
    command.downgrade(alembic_config(settings), revision)


def check(settings: Settings) -> None:
    """Raises if the models and the migrations disagree."""
    command.check(alembic_config(settings))
