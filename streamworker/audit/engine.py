"""One way to build the audit store's async engine, shared by the store and migrations.

Only the two supported backends are accepted: PostgreSQL through asyncpg and the
embedded SQLite through aiosqlite (WAL, so readers never block the writer, plus a busy
timeout, so concurrent writers wait instead of failing).

A PostgreSQL URL may carry `?search_path=schema` to keep the audit tables in a schema of
their own (asyncpg itself accepts no such URL parameter).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
_ASYNC_DRIVERS = {"postgresql": "asyncpg", "sqlite": "aiosqlite"}


def async_url(url: str | URL) -> URL:
    """`url` with the async driver filled in; rejects unsupported backends and drivers."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    driver = _ASYNC_DRIVERS.get(backend)
    if driver is None:
        raise ValueError(f"unsupported database backend {backend!r}: use postgresql or sqlite")
    if parsed.get_driver_name() != driver:
        if "+" in parsed.drivername:
            raise ValueError(
                f"{backend} needs the async driver {driver!r}, not {parsed.drivername!r}"
            )
        parsed = parsed.set(drivername=f"{backend}+{driver}")
    return parsed


def _sqlite_pragmas(dbapi_connection: Any, _connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def create_engine(url: str | URL) -> AsyncEngine:
    """An `AsyncEngine` for `url`, tuned per backend."""
    parsed = async_url(url)
    if parsed.get_backend_name() == "sqlite":
        if (
            parsed.database
            and parsed.database != ":memory:"
            and not parsed.database.startswith("file:")
        ):
            # The embedded default lives under a data dir that may not exist yet.
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    connect_args: dict[str, Any] = {}
    search_path = parsed.query.get("search_path")
    if search_path is not None:
        value = search_path if isinstance(search_path, str) else ",".join(search_path)
        connect_args["server_settings"] = {"search_path": value}
        parsed = parsed.difference_update_query(["search_path"])
    return create_async_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
