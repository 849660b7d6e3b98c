"""Run the Alembic migrations programmatically, on the caller's async engine.

The scripts live in `migrations/` at the repository top (a development install). An
installed wheel has no repository: ship the scripts as package data under
`streamworker/audit/migrations/` and they are found there first.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from streamworker.audit.engine import create_engine

log = logging.getLogger(__name__)

_CANDIDATES = (
    Path(__file__).resolve().parent / "migrations",  # packaged copy, if any
    Path(__file__).resolve().parents[2] / "migrations",  # repository checkout
)


def migrations_dir() -> Path:
    """The directory holding `env.py` and `versions/`; raises if none is found."""
    for candidate in _CANDIDATES:
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError(
        "Alembic migrations not found; looked in " + ", ".join(str(c) for c in _CANDIDATES)
    )


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config without an ini file (so the app's logging is left alone)."""
    config = Config()
    config.attributes["configure_logger"] = False  # migrations/env.py: keep the app's logging
    config.set_main_option("script_location", str(migrations_dir()))
    if url is not None:
        # ConfigParser interpolation: a literal '%' (e.g. in a password) must be doubled.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@cache
def head_revision() -> str | None:
    """The newest revision shipped with this code (read once; the scripts don't change)."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _current_heads(connection: Connection) -> tuple[str, ...]:
    return tuple(MigrationContext.configure(connection).get_current_heads())


async def current_revisions(connection: AsyncConnection) -> tuple[str, ...]:
    """The revisions the database is at (empty when it was never migrated)."""
    return await connection.run_sync(_current_heads)


async def is_at_head(engine: AsyncEngine) -> bool:
    """True when the database schema is at this code's head revision."""
    async with engine.connect() as connection:
        current = await current_revisions(connection)
    return current == (head_revision(),)


def _upgrade(connection: Connection, config: Config, revision: str) -> None:
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _downgrade(connection: Connection, config: Config, revision: str) -> None:
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


async def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` to `revision` (idempotent)."""
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_upgrade, alembic_config(url), revision)
    finally:
        await engine.dispose()
    log.info("database migrated to %s", revision)


async def downgrade(url: str, revision: str) -> None:
    """Migrate the database at `url` back to `revision` (`base` drops everything)."""
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_downgrade, alembic_config(url), revision)
    finally:
        await engine.dispose()
    log.info("database downgraded to %s", revision)
