"""Alembic environment for the audit store: async engines, batch mode on SQLite.

Three ways in:
- `streamworker.audit.migrate.upgrade(url)` hands over its own connection
  (`config.attributes["connection"]`), so migrations run inside the caller's engine;
- `alembic -x url=... upgrade head` or `sqlalchemy.url` set by a caller;
- plain `alembic upgrade head`: the URL streamworker itself would use, from its settings.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from streamworker.audit.engine import async_url, create_engine
from streamworker.audit.models import Base

config = context.config
target_metadata = Base.metadata

# Only the `alembic` command line configures logging (from alembic.ini, alembic at INFO).
# An embedding app keeps its own: `streamworker.audit.migrate` sets `configure_logger`
# to False (Alembic's cookbook convention), so `streamworker db upgrade` stays as quiet
# as the CLI asked, and an ini file handed to us by a caller never overrides that.
if (
    config.config_file_name is not None
    and "connection" not in config.attributes
    and config.attributes.get("configure_logger", True)
):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _database_url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if url:
        return url
    from streamworker.settings import load_settings

    return load_settings().resolved_database_url()


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def _run_with(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(_database_url())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_with)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_offline() -> None:
    """Emit SQL instead of running it (`alembic upgrade head --sql`)."""
    url = async_url(_database_url())
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=url.get_backend_name() == "sqlite",
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_with(connection)
    else:
        asyncio.run(_run_async())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
