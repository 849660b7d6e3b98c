"""Which audit databases take the one-hop SQLite path, and that it runs work in one
transaction per hop."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Connection, text

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

        def create(conn: Connection) -> None:
            conn.execute(text("CREATE TABLE t (v INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))

        def fail(conn: Connection) -> None:
            conn.execute(text("INSERT INTO t VALUES (2)"))
            raise RuntimeError("rolled back")

        def values(conn: Connection) -> list[int]:
            return [row[0] for row in conn.execute(text("SELECT v FROM t"))]

        await lane.transaction(create)
        with pytest.raises(RuntimeError):
            await lane.transaction(fail)
        assert await lane.read(values) == [1]
        assert await lane.read(lambda c: c.execute(text("PRAGMA journal_mode")).scalar()) == "wal"
    finally:
        await lane.close()
