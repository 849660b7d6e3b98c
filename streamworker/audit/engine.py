"""One way to build the audit store's async engine, shared by the store and migrations.

Only the two supported backends are accepted: PostgreSQL through asyncpg and the
embedded SQLite through aiosqlite (WAL, so readers never block the writer, plus a busy
timeout, so concurrent writers wait instead of failing).

A PostgreSQL URL may carry `?search_path=schema` to keep the audit tables in a schema of
their own, and psql's TLS parameters `sslmode`, `sslrootcert`, `sslcert`, `sslkey` (asyncpg
itself accepts none of these as keywords; SQLAlchemy would hand them over as such).
"""

from __future__ import annotations

import logging
import ssl
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
TLS_PARAMETERS = ("sslmode", "sslrootcert", "sslcert", "sslkey")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
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


WAL_SWITCH_RETRY_S = 2.0


def sqlite_pragmas(dbapi_connection: Any, _connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        switch_to_wal(cursor)
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def switch_to_wal(cursor: Any, retry_s: float = WAL_SWITCH_RETRY_S) -> None:
    """`PRAGMA journal_mode=WAL`, retried while the file is locked.

    Two connections switching a brand-new file to WAL at once (the doctor's checks, a
    worker and a gateway starting side by side) both hold a shared lock and want an
    exclusive one: SQLite breaks that deadlock by answering one of them "database is
    locked" at once, without waiting its busy timeout. Once the other has switched, the
    retry finds the file in WAL mode already. The wait is short and only ever happens
    while a file is created; it blocks the caller's thread, which here is the one that
    connects.
    """
    deadline = time.monotonic() + retry_s
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as exc:  # sqlite3's or the aiosqlite adapter's OperationalError
            text = str(exc).lower()
            locked = "database is locked" in text or "database is busy" in text
            if not locked or time.monotonic() + delay > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _param(parsed: URL, name: str) -> str | None:
    value = parsed.query.get(name)
    return value if isinstance(value, str) or value is None else value[-1]


def postgres_tls(parsed: URL) -> ssl.SSLContext | str | None:
    """asyncpg's `ssl` argument for psql's parameters, with psql's meaning: verify-full
    checks the chain and the host name, verify-ca only the chain, require with a root
    certificate is verify-ca (without one it encrypts only); the weaker modes go to
    asyncpg as they are. A root certificate without a verifying mode is refused, since
    it would silently verify nothing. No sslrootcert: the system's CAs."""
    mode = _param(parsed, "sslmode") or _param(parsed, "ssl")
    rootcert, cert, key = (_param(parsed, name) for name in TLS_PARAMETERS[1:])
    if mode is None:
        if rootcert or cert:
            raise ValueError("sslrootcert/sslcert need sslmode=verify-full (or verify-ca)")
        return None
    if mode not in SSL_MODES:
        raise ValueError(f"sslmode must be one of {', '.join(SSL_MODES)}, not {mode!r}")
    if mode == "require" and rootcert:
        mode = "verify-ca"
    if mode not in ("require", "verify-ca", "verify-full"):
        return mode
    context = ssl.create_default_context(cafile=rootcert)
    context.check_hostname = mode == "verify-full"
    if mode == "require":
        context.verify_mode = ssl.CERT_NONE
    if cert:
        context.load_cert_chain(cert, key)
    return context


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
        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
        return engine
    connect_args: dict[str, Any] = {}
    search_path = parsed.query.get("search_path")
    if search_path is not None:
        value = search_path if isinstance(search_path, str) else ",".join(search_path)
        connect_args["server_settings"] = {"search_path": value}
        parsed = parsed.difference_update_query(["search_path"])
    tls = postgres_tls(parsed)
    if tls is not None:
        connect_args["ssl"] = tls
        parsed = parsed.difference_update_query([*TLS_PARAMETERS, "ssl"])
    # No pre-ping: it is a round trip before every transaction, paid on the hot path. A
    # connection that died with the server fails its statement instead, the pool is
    # invalidated, and every caller already retries or treats the answer as unknown (the
    # writer's outage handling; tests/integration/test_faults.py restarts PostgreSQL).
    return create_async_engine(parsed, pool_pre_ping=False, connect_args=connect_args)
