"""The embedded SQLite's hot path, one thread hop per transaction, in plain `sqlite3`.

aiosqlite runs every call of a statement (cursor, execute, fetch, close, commit) as its
own round trip to its thread and back through the event loop; a submission's audit
appends and lookup made ~15 of them, and they were the largest item of the worker's
CPU. Here one dedicated thread owns one `sqlite3` connection to the same file and runs
a whole transaction per hop; the statements themselves are plain SQL
(`sqlite_plain`), since SQLAlchemy's work around each statement then cost four times
what SQLite's did (docs/benchmarks.md).

Write transactions start with `BEGIN IMMEDIATE`: SQLite's write lock is taken, or
waited for within the busy timeout, before the first read, so a projection that reads
and then writes cannot fail on a lock upgrade when another process wrote in between.

Only for file databases: `:memory:` and `file:` URIs would name a different database
in a second connection. PostgreSQL stays on asyncpg, which measured cheaper than a
synchronous driver in a thread.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy.engine import URL, make_url

from streamworker.audit.engine import SQLITE_BUSY_TIMEOUT_MS, async_url, sqlite_pragmas

T = TypeVar("T")


class SqliteLane:
    """One `sqlite3` connection to the audit file, used from one thread only."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-sqlite")

    @classmethod
    def for_url(cls, url: str | URL) -> SqliteLane | None:
        """A lane when `url` is a SQLite file database; None for anything else."""
        parsed = async_url(make_url(url))
        database = parsed.database or ""
        if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
            return None
        if database.startswith("file:") or parsed.query:
            return None
        return cls(database)

    def _connection(self) -> sqlite3.Connection:
        """Opened in the lane's thread on first use, so a file that cannot be opened
        fails that call (an outage to the writer), not the store's construction."""
        if self._conn is None:
            conn = sqlite3.connect(
                self.path,
                timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,  # autocommit: transactions are explicit below
                check_same_thread=False,  # one thread at a time: the lane's
            )
            try:
                sqlite_pragmas(conn, None)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    async def transaction(self, work: Callable[..., T], *args: Any) -> T:
        """`work(conn, *args)` in one write transaction (committed unless it raises)."""

        def run() -> T:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn, *args)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

        return await self._hop(run)

    async def read(self, work: Callable[..., T], *args: Any) -> T:
        """`work(conn, *args)` outside a transaction: for one-statement reads."""
        return await self._hop(lambda: work(self._connection(), *args))

    async def _hop(self, run: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, run)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        await self._hop(self._close)
        self._thread.shutdown(wait=True)
