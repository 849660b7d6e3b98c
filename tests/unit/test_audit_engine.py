"""The SQLite engine's set-up: WAL on a brand-new file, even when several open it at once."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from streamworker.audit.engine import switch_to_wal
from streamworker.audit.store import AuditStore


class _Cursor:
    """Answers "database is locked" a given number of times, then switches."""

    def __init__(self, locked: int, error: str = "database is locked") -> None:
        self.locked, self.error, self.calls = locked, error, 0

    def execute(self, sql: str) -> Any:
        self.calls += 1
        if self.calls <= self.locked:
            raise RuntimeError(self.error)
        return None


def test_a_locked_switch_is_retried_until_it_succeeds() -> None:
    cursor = _Cursor(locked=3)
    switch_to_wal(cursor, retry_s=2.0)
    assert cursor.calls == 4


def test_a_lock_that_outlasts_the_retry_time_is_raised() -> None:
    cursor = _Cursor(locked=1000)
    with pytest.raises(RuntimeError, match="locked"):
        switch_to_wal(cursor, retry_s=0.05)
    assert 2 <= cursor.calls < 1000


def test_any_other_error_is_raised_at_once() -> None:
    cursor = _Cursor(locked=5, error="disk I/O error")
    with pytest.raises(RuntimeError, match="disk I/O"):
        switch_to_wal(cursor)
    assert cursor.calls == 1


async def _open_and_ping(url: str) -> None:
    store = await AuditStore.open(url)
    try:
        await store.ping()
    finally:
        await store.close()


async def test_eight_stores_opening_a_new_file_at_once_all_answer(tmp_path: Path) -> None:
    """The doctor opens the store twice at once; a worker and a gateway may too. Before
    the retry about one round in fifteen had a store fail with "database is locked"."""
    for round_ in range(60):
        url = f"sqlite+aiosqlite:///{tmp_path / str(round_) / 'streamworker.db'}"
        outcomes = await asyncio.gather(
            *(_open_and_ping(url) for _ in range(8)), return_exceptions=True
        )
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        assert not failures, f"round {round_}: {failures[0]!r}"
