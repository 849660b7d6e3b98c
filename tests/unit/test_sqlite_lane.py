"""Which audit databases take the one-hop SQLite path, and that it runs work in one
transaction per hop."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from streamworker import metrics
from streamworker.audit.refusal import is_refusal
from streamworker.audit.sqlite_lane import SqliteLane


@pytest.mark.parametrize(
    "url",
    [
        "sqlite+aiosqlite:///:memory:",
        "sqlite+aiosqlite://",
        "sqlite+aiosqlite:///file:shared?mode=memory&cache=shared&uri=true",
        "postgresql+asyncpg://u:p@127.0.0.1:5432/db",
    ],
)
def test_no_lane_where_a_second_engine_would_see_another_database(url: str) -> None:
    assert SqliteLane.for_url(url) is None


async def test_a_file_database_gets_a_lane_that_commits_per_hop(tmp_path: Path) -> None:
    lane = SqliteLane.for_url(f"sqlite:///{tmp_path / 'audit.db'}")
    assert lane is not None
    try:

        def create(conn: sqlite3.Connection) -> None:
            conn.execute("CREATE TABLE t (v INTEGER)")
            conn.execute("INSERT INTO t VALUES (1)")

        def fail(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO t VALUES (2)")
            raise RuntimeError("rolled back")

        def values(conn: sqlite3.Connection) -> list[int]:
            return [row[0] for row in conn.execute("SELECT v FROM t")]

        def pragma(name: str) -> Callable[[sqlite3.Connection], object]:
            return lambda conn: conn.execute(f"PRAGMA {name}").fetchone()[0]

        await lane.transaction(create)
        with pytest.raises(RuntimeError):
            await lane.transaction(fail)
        assert await lane.read(values) == [1]
        assert await lane.read(pragma("journal_mode")) == "wal"
        assert await lane.read(pragma("foreign_keys")) == 1
        # Another connection sees what the lane committed: nothing is left open.
        with sqlite3.connect(tmp_path / "audit.db") as other:
            assert [row[0] for row in other.execute("SELECT v FROM t")] == [1]
    finally:
        await lane.close()


async def test_a_file_that_cannot_be_opened_is_an_outage_not_a_refusal(tmp_path: Path) -> None:
    """The writer retries an outage and quarantines a refusal: a missing directory is the
    database's trouble, not the records'."""
    lane = SqliteLane.for_url(f"sqlite:///{tmp_path / 'missing' / 'audit.db'}")
    assert lane is not None
    try:
        with pytest.raises(sqlite3.OperationalError) as caught:
            await lane.read(lambda conn: conn.execute("SELECT 1").fetchone())
        assert not is_refusal(caught.value)
    finally:
        await lane.close()


async def test_short_work_runs_on_the_loop_and_falls_back_when_the_lock_is_taken(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.db"
    lane = SqliteLane.for_url(f"sqlite:///{path}")
    assert lane is not None

    def insert(value: int) -> Callable[[sqlite3.Connection], object]:
        return lambda conn: conn.execute("INSERT INTO t VALUES (?)", (value,))

    def values(conn: sqlite3.Connection) -> list[int]:
        return [row[0] for row in conn.execute("SELECT v FROM t ORDER BY v")]

    try:
        quick = metrics.AUDIT_SQLITE_QUICK
        busy_before = quick.labels("busy")._value.get()
        inline_before = quick.labels("inline")._value.get()
        # Before the lane opened the file (and made it WAL) nothing runs on the loop.
        await lane.quick_transaction(lambda c: c.execute("CREATE TABLE t (v INTEGER)"))
        assert (lane.inline_runs, lane.fallbacks) == (0, 0)
        await lane.quick_transaction(insert(1))
        assert lane.inline_runs == 1

        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        other.execute("INSERT INTO t VALUES (2)")
        waiting = asyncio.create_task(lane.quick_transaction(insert(3)))
        await asyncio.sleep(0.2)
        assert lane.fallbacks == 1 and not waiting.done()  # the lane waits for the lock
        assert await lane.quick_read(values) == [1]  # a WAL reader is never held up
        assert lane.inline_runs == 2
        assert quick.labels("busy")._value.get() - busy_before == 1
        assert quick.labels("inline")._value.get() - inline_before == 2
        other.execute("COMMIT")
        other.close()
        await asyncio.wait_for(waiting, 10)
        assert await lane.quick_read(values) == [1, 2, 3]

        def fail(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO t VALUES (4)")
            raise RuntimeError("rolled back")

        with pytest.raises(RuntimeError):
            await lane.quick_transaction(fail)
        assert await lane.read(values) == [1, 2, 3]
    finally:
        await lane.close()
