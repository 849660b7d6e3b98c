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

Short work (a submission's lookup and appends: `quick_read`, `quick_transaction`) is
first tried on the event loop's own thread, on a second connection that never waits for
SQLite's lock and never checkpoints: a hop to the lane's thread and back cost more of
the worker's CPU than such a statement itself. When another connection holds the lock
it falls back to the lane, which waits; the projector's larger transactions, and the
WAL checkpoints, always run there.

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

from streamworker import metrics
from streamworker.audit.engine import SQLITE_BUSY_TIMEOUT_MS, async_url, sqlite_pragmas

T = TypeVar("T")


class SqliteLane:
    """One `sqlite3` connection to the audit file, used from one thread only."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._inline: sqlite3.Connection | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-sqlite")
        self.inline_runs = 0
        self.fallbacks = 0

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
        return await self._hop(lambda: _in_transaction(self._connection(), work, args))

    async def read(self, work: Callable[..., T], *args: Any) -> T:
        """`work(conn, *args)` outside a transaction: for one-statement reads."""
        return await self._hop(lambda: work(self._connection(), *args))

    async def quick_transaction(self, work: Callable[..., T], *args: Any) -> T:
        """`transaction` for short work: on this thread unless SQLite's lock is taken."""
        done, result = self._try_inline(lambda conn: _in_transaction(conn, work, args))
        return result if done else await self.transaction(work, *args)

    async def quick_read(self, work: Callable[..., T], *args: Any) -> T:
        """`read` for short work: on this thread unless SQLite answers busy."""
        done, result = self._try_inline(lambda conn: work(conn, *args))
        return result if done else await self.read(work, *args)

    def _try_inline(self, call: Callable[[sqlite3.Connection], T]) -> tuple[bool, Any]:
        """(True, what `call` returned on the loop's connection), or (False, None) when
        that connection is not open yet or SQLite answered busy; other errors raise."""
        inline = self._inline_connection()
        if inline is None:
            return False, None
        try:
            result = call(inline)
        except sqlite3.OperationalError as exc:
            if not _busy(exc):
                raise
            self.fallbacks += 1
            metrics.AUDIT_SQLITE_QUICK.labels("busy").inc()
            return False, None
        self.inline_runs += 1
        metrics.AUDIT_SQLITE_QUICK.labels("inline").inc()
        return True, result

    def _inline_connection(self) -> sqlite3.Connection | None:
        """The event loop thread's connection, once the lane's has opened the file (and
        made it WAL, which needs waiting); None until then, or if it cannot be opened."""
        if self._inline is None and self._conn is not None:
            try:
                conn = sqlite3.connect(
                    self.path, timeout=0, isolation_level=None, check_same_thread=False
                )
            except sqlite3.Error:
                return None
            for pragma in ("busy_timeout=0", "foreign_keys=ON", "synchronous=NORMAL"):
                conn.execute(f"PRAGMA {pragma}")
            conn.execute("PRAGMA wal_autocheckpoint=0")  # the lane's thread checkpoints
            self._inline = conn
        return self._inline

    async def _hop(self, run: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, run)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        if self._inline is not None:
            self._inline.close()
            self._inline = None
        await self._hop(self._close)
        self._thread.shutdown(wait=True)


def _in_transaction(conn: sqlite3.Connection, work: Callable[..., T], args: Any) -> T:
    """`work(conn, *args)` between BEGIN IMMEDIATE and COMMIT; rolled back if it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = work(conn, *args)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return result


def _busy(exc: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED, extended codes included: another connection holds
    what this one needs (retrying on the lane, which waits, will do)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
