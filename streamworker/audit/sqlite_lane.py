"""The embedded SQLite's hot path, one thread hop per transaction.

aiosqlite runs every call of a statement (cursor, execute, fetch, close, commit) as its
own round trip to its thread and back through the event loop; a submission's audit
appends and lookup made ~15 of them, and they were the largest item of the worker's
CPU. Here the same SQLAlchemy statements run on a synchronous `sqlite3` engine in one
dedicated thread, a whole transaction per hop (measured: a third of the CPU for the
per-submission lookup and appends, docs/benchmarks.md). The same functions run on the
async engine through `run_sync` everywhere else, so there is one implementation.

Only for file databases: `:memory:` and `file:` URIs would name a different database
in a second engine. PostgreSQL stays on asyncpg, which measured cheaper than a
synchronous driver in a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

from streamworker.audit.engine import SQLITE_BUSY_TIMEOUT_MS, async_url, sqlite_pragmas

T = TypeVar("T")


class SqliteLane:
    """A synchronous engine on the same SQLite file, used from one thread."""

    def __init__(self, url: URL) -> None:
        self.engine: Engine = create_engine(
            url.set(drivername="sqlite+pysqlite"),
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
        event.listen(self.engine, "connect", sqlite_pragmas)
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
        return cls(parsed)

    async def transaction(self, work: Callable[..., T], *args: Any) -> T:
        """`work(conn, *args)` in one transaction (committed unless it raises)."""

        def run() -> T:
            with self.engine.begin() as conn:
                return work(conn, *args)

        return await self._hop(run)

    async def read(self, work: Callable[..., T], *args: Any) -> T:
        """`work(conn, *args)` on a connection, for reads (rolled back at the end)."""

        def run() -> T:
            with self.engine.connect() as conn:
                return work(conn, *args)

        return await self._hop(run)

    async def _hop(self, run: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, run)

    async def close(self) -> None:
        await self._hop(self.engine.dispose)
        self._thread.shutdown(wait=True)
