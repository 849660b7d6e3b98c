"""The plain-SQL SQLite lane writes and reads exactly what the SQLAlchemy statements do.

Both paths get the same records, hostile strings included, on two fresh files; every
stored column of every table must then be byte-for-byte the same (only the wall-clock
columns `recorded_at` and `marked_at` differ by nature), and each path must read what
the other wrote as the same records.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from streamworker.audit import sqlite_plain
from streamworker.audit.engine import create_engine
from streamworker.audit.migrate import upgrade
from streamworker.audit.records import AuditKind, AuditRecord
from streamworker.audit.store import AuditStore

WALL_CLOCK = {"recorded_at", "marked_at"}
T0 = datetime(2026, 11, 30, 19, 0, 0, 123456, tzinfo=UTC)

HOSTILE_IDS = [
    "plain-1",
    "nul\x00inside",
    "lone\ud800surrogate",
    "escape\u2400char",
    "quote'\"); DROP TABLE audit_events; --",
    "x" * 128,
]


def _result_payload(sid: str, status: str) -> dict[str, object]:
    run = {
        "test_case_id": "1\x00",
        "status": status,
        "stdout": "out\ud83d",
        "exit_code": 1,
        "signal": None,
        "cpu_time_s": 0.125,
        "wall_time_s": 0.25,
        "memory_kb": 2**40,
        "stdout_truncated": True,
        "stderr_truncated": False,
    }
    return {
        "submission_id": sid,
        "status": status,
        "language": "python\u2400",
        "judge0_status_id": 4,
        "received_at": T0.isoformat(),
        "started_at": (T0 + timedelta(seconds=1)).isoformat(),
        "finished_at": (T0 + timedelta(seconds=2)).isoformat(),
        "compile": {"status": "accepted", "cpu_time_s": 1.5, "memory_kb": 9},
        "runs": [run, dict(run, test_case_id=None, stdout_truncated=False)],
        "metadata": {"k\x00ey": ["\ud800", {"nested": 2**70}], "f": 1e300, "b": True},
    }


def lifecycle(sid: str) -> list[AuditRecord]:
    """Received twice (two attempts), started, answered, published; one zone not UTC."""
    east = timezone(timedelta(hours=5, minutes=30))
    received = {"language": "python", "metadata": {"t": "\x00"}, "received_at": T0.isoformat()}
    return [
        AuditRecord(f"{sid}:r1", sid, AuditKind.RECEIVED, 1, "w\x00", T0, received),
        AuditRecord(f"{sid}:r2", sid, AuditKind.RECEIVED, 2, "w2", T0.astimezone(east), received),
        AuditRecord(f"{sid}:s2", sid, AuditKind.STARTED, 2, "w2", T0, {"image": "img\ud800"}),
        AuditRecord(
            f"{sid}:f2", sid, AuditKind.FINISHED, 2, "w2", T0, _result_payload(sid, "wrong")
        ),
        AuditRecord(
            f"{sid}:p2",
            sid,
            AuditKind.PUBLISHED,
            2,
            "w2",
            T0 + timedelta(seconds=3),
            {"result_event_id": f"{sid}:f2", "offset": 42},
        ),
    ]


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[AuditStore, AuditStore]]:
    """(SQLAlchemy statements, plain lane) on two migrated files."""
    urls = [f"sqlite+aiosqlite:///{tmp_path / name}.db" for name in ("alchemy", "plain")]
    for url in urls:
        await upgrade(url)
    alchemy = AuditStore(create_engine(urls[0]), lane=None)
    plain = await AuditStore.open(urls[1])
    assert plain._lane is not None and alchemy._lane is None
    try:
        yield alchemy, plain
    finally:
        await alchemy.close()
        await plain.close()


def _dump(store: AuditStore) -> dict[str, list[tuple[object, ...]]]:
    path = store.engine.url.database
    assert path is not None
    tables = ("audit_events", "audit_pending_projection", "executions", "execution_runs")
    with sqlite3.connect(path) as conn:
        dump = {}
        for table in tables:
            columns = [
                row[1]
                for row in conn.execute(f"PRAGMA table_info({table})")
                if row[1] not in WALL_CLOCK
            ]
            names = ", ".join(f'"{c}"' for c in columns)
            order = ", ".join(str(i + 1) for i in range(min(3, len(columns))))
            dump[table] = conn.execute(f"SELECT {names} FROM {table} ORDER BY {order}").fetchall()
    return dump


async def _same_calls(stores: tuple[AuditStore, AuditStore], records: list[AuditRecord]) -> None:
    flags = [await store.append_logged(records) for store in stores]
    assert flags[0] == flags[1]


async def test_both_paths_store_the_same_bytes(stores: tuple[AuditStore, AuditStore]) -> None:
    records = [r for sid in HOSTILE_IDS for r in lifecycle(sid)]
    await _same_calls(stores, records[:7] + records[:2])  # repeats within one batch
    await _same_calls(stores, records)  # and across batches
    for store in stores:
        assert await store.unprojected() == len(HOSTILE_IDS)
    dumps = [_dump(store) for store in stores]
    assert dumps[0] == dumps[1]
    assert len(dumps[0]["audit_events"]) == len(records)

    assert [await store.project_pending(limit=2) for store in stores] == [2, 2]
    assert [await store.project_pending() for store in stores] == [4, 4]
    dumps = [_dump(store) for store in stores]
    assert dumps[0] == dumps[1]
    assert len(dumps[0]["executions"]) == len(HOSTILE_IDS)
    assert len(dumps[0]["execution_runs"]) == 3 * len(HOSTILE_IDS)  # compile + two runs
    assert dumps[0]["audit_pending_projection"] == []


async def test_each_path_reads_what_the_other_wrote(
    stores: tuple[AuditStore, AuditStore],
) -> None:
    alchemy, plain = stores
    for store in stores:
        for sid in HOSTILE_IDS:
            await store.append_logged(lifecycle(sid))
    # The other path on each file: the plain lane on SQLAlchemy's, SQLAlchemy on the lane's.
    crossed = [await AuditStore.open(str(alchemy.engine.url)), AuditStore(plain.engine, None)]
    try:
        for sid in HOSTILE_IDS:
            expected = await alchemy.events(sid)
            assert [r.event_id for r in expected] == [r.event_id for r in lifecycle(sid)]
            assert expected[1].occurred_at == T0 and expected[1].occurred_at.tzinfo is UTC
            assert expected[3].payload == _result_payload(sid, "wrong")
            for store in (plain, *crossed):
                assert await store.events(sid) == expected
    finally:
        await crossed[0].close()


async def test_a_kind_of_a_newer_version_is_skipped_by_both(
    stores: tuple[AuditStore, AuditStore],
) -> None:
    newer = AuditRecord("n:1", "n", AuditKind.RECEIVED, 1, "w", T0, {})
    for store in stores:
        await store.append_logged([newer, *lifecycle("n")[1:]])
        path = store.engine.url.database
        assert path is not None
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE audit_events SET kind = 'from_the_future' WHERE event_id = 'n:1'")
        assert [r.event_id for r in await store.events("n")] == ["n:r2", "n:s2", "n:f2", "n:p2"]
        assert await store.project_pending() == 1
    assert _dump(stores[0]) == _dump(stores[1])


async def test_only_projects_just_the_named_submissions(
    stores: tuple[AuditStore, AuditStore],
) -> None:
    for store in stores:
        await store.append_logged(lifecycle("a") + lifecycle("b\x00"))
        assert await store.project_pending(10, only=["b\x00", "not-marked"]) == 1
        assert await store.unprojected() == 1
    assert _dump(stores[0]) == _dump(stores[1])


def test_a_naive_time_is_refused_like_the_models_refuse_it() -> None:
    with pytest.raises(ValueError, match="naive"):
        sqlite_plain.stored_time(datetime(2026, 1, 1))


def test_long_id_lists_are_read_in_chunks(tmp_path: Path) -> None:
    """More ids than one statement may bind (SQLite's bound is 32766 parameters)."""
    conn = sqlite3.connect(tmp_path / "x.db")
    conn.execute(
        "CREATE TABLE audit_events (id INTEGER PRIMARY KEY, event_id, submission_id, kind, "
        "attempt, worker_id, occurred_at, payload)"
    )
    conn.execute(
        "INSERT INTO audit_events VALUES (1, 'e', 's-40000', 'received', 1, 'w', ?, '{}')",
        (sqlite_plain.stored_time(T0),),
    )
    ids = [f"s-{i}" for i in range(40_001)]
    assert [r.event_id for r in sqlite_plain.event_records(conn, ids)] == ["e"]
    conn.close()


async def test_numbers_no_column_holds_project_as_null_on_both_paths(
    stores: tuple[AuditStore, AuditStore],
) -> None:
    """A JSON number may be any size; the row must still project (as NULL there) rather
    than fail on every try."""
    huge = dict(_result_payload("huge", "accepted"), judge0_status_id=2**31)
    huge["runs"] = [
        {"status": "accepted", "exit_code": -(2**31) - 1, "memory_kb": 2**63},
        {"status": "accepted", "cpu_time_s": 10**400, "wall_time_s": -(10**400)},
    ]
    records = lifecycle("huge")
    records[3] = dataclasses.replace(records[3], payload=huge)
    for store in stores:
        await store.append_logged(records)
        assert await store.project_pending() == 1
        assert await store.unprojected() == 0
    dumps = [_dump(store) for store in stores]
    assert dumps[0] == dumps[1]
    runs = [row for row in dumps[0]["execution_runs"] if row[1] == "run"]
    # submission, stage, ordinal, test case, status, exit, signal, cpu, wall, memory, ...
    assert [(r[5], r[7], r[8], r[9]) for r in runs] == [(None,) * 4, (None,) * 4]
