"""The audit store against real databases: SQLite in a temp dir and PostgreSQL.

PostgreSQL tests each get a fresh schema (created and dropped here), on the server at
`STREAMWORKER_TEST_PG_URL` (default: the local stack's). They are skipped when it is
unreachable, unless `STREAMWORKER_REQUIRE_STACK=1` (CI), where that is a failure.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, delete, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from streamworker import metrics
from streamworker.audit import (
    AuditRecord,
    AuditStore,
    downgrade,
    project_all,
    published_record,
    result_record,
    started_record,
    upgrade,
)
from streamworker.audit.models import (
    Base,
    audit_events,
    audit_quarantine,
    execution_runs,
    executions,
)
from streamworker.audit.quarantine import record_from_json, record_json
from streamworker.audit.writer import AuditWriter
from streamworker.contract import ResultEvent, RunResult, Runtime, Status
from streamworker.replay import requeue_quarantined

pytestmark = pytest.mark.no_runtime_images

REPO = Path(__file__).resolve().parents[2]
PG_URL = os.environ.get(
    "STREAMWORKER_TEST_PG_URL",
    "postgresql+asyncpg://streamworker:streamworker@127.0.0.1:5432/streamworker",
)
REQUIRE_STACK = os.environ.get("STREAMWORKER_REQUIRE_STACK") == "1"
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _unavailable(reason: str) -> NoReturn:
    if REQUIRE_STACK:
        pytest.fail(f"PostgreSQL required (STREAMWORKER_REQUIRE_STACK=1): {reason}")
    pytest.skip(f"PostgreSQL not available: {reason}")


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A URL whose tables live in a brand-new schema, dropped after the test.

    A schema, not a database: the stack's role owns its database but may not create others.
    """
    schema = f"sw_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(PG_URL, poolclass=NullPool, connect_args={"timeout": 5})
    try:
        try:
            async with admin.begin() as conn:
                await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        except (OSError, TimeoutError, DBAPIError) as exc:
            _unavailable(f"{make_url(PG_URL).render_as_string()}: {exc!r}")
        try:
            url = make_url(PG_URL).update_query_dict({"search_path": schema})
            yield url.render_as_string(hide_password=False)
        finally:
            async with admin.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        await admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'state' / 'audit.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each test runs on both backends."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    yield request.getfixturevalue(name)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[AuditStore]:
    await upgrade(database_url)
    audit = await AuditStore.open(database_url)
    try:
        yield audit
    finally:
        await audit.close()


def make_result(
    sid: str, attempt: int = 1, t: float = 3, status: Status = Status.ACCEPTED
) -> ResultEvent:
    return ResultEvent(
        submission_id=sid,
        status=status,
        language="python",
        worker_id=f"w{attempt}",
        received_at=at(0),
        started_at=at(1),
        finished_at=at(t),
        runtime=Runtime("streamworker-runtime-python", "sha256:abc"),
        compile=RunResult(None, Status.ACCEPTED, cpu_time_s=1.5, wall_time_s=2.0, memory_kb=9),
        runs=(
            RunResult("1", Status.ACCEPTED, "ok\n", "", False, False, 0, None, 0.125, 0.25, 2048),
            RunResult("2", status, "no\n", "é", True, False, 1, None, 0.375, 0.5, 4096),
        ),
        metadata={"tenant": "t1", "tags": ["a", "ü"]},
        attempt=attempt,
    )


def received(sid: str, attempt: int = 1, t: float = 0) -> AuditRecord:
    payload = {"language": "python", "metadata": {"tenant": "t1"}, "received_at": at(t).isoformat()}
    return AuditRecord(f"{sid}:received:{attempt}", sid, "received", attempt, "w1", at(t), payload)


def lifecycle(sid: str) -> list[AuditRecord]:
    """Two attempts: the first crashes, the second answers and is published."""
    answer = make_result(sid, attempt=2, t=20, status=Status.WRONG_ANSWER)
    return [
        received(sid, 1, 0),
        started_record(sid, worker_id="w1", attempt=1, started_at=at(1), image="img"),
        received(sid, 2, 10),
        started_record(sid, worker_id="w2", attempt=2, started_at=at(11), image="img"),
        result_record(answer),
        published_record(
            answer, topic="streamworker.results", partition=0, offset=42, published_at=at(21)
        ),
    ]


async def snapshot(audit: AuditStore) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    async with audit.engine.connect() as conn:
        rows = await conn.execute(select(executions).order_by(executions.c.submission_id))
        runs = await conn.execute(
            select(execution_runs).order_by(
                execution_runs.c.submission_id, execution_runs.c.stage, execution_runs.c.ordinal
            )
        )
        return [dict(r._mapping) for r in rows], [dict(r._mapping) for r in runs]


async def count_events(audit: AuditStore) -> int:
    async with audit.engine.connect() as conn:
        return int(
            (await conn.execute(select(func.count()).select_from(audit_events))).scalar_one()
        )


# -- migrations ---------------------------------------------------------------------------


async def test_migrations_are_idempotent_and_reach_head(database_url: str) -> None:
    audit = await AuditStore.open(database_url)
    try:
        assert not await audit.is_migrated()
        await upgrade(database_url)
        await upgrade(database_url)
        assert await audit.is_migrated()
        await downgrade(database_url, "base")
        assert not await audit.is_migrated()
        await upgrade(database_url)
        assert await audit.is_migrated()
    finally:
        await audit.close()


def _schema_diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_hand_written_migration_matches_the_models(store: AuditStore) -> None:
    async with store.engine.connect() as conn:
        assert await conn.run_sync(_schema_diff) == []


def test_alembic_command_line_uses_the_settings_url(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    env = {**os.environ, "STREAMWORKER_DATABASE_URL": url}
    run = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    current = subprocess.run(
        [sys.executable, "-m", "alembic", "-x", f"url={url}", "current"],
        cwd=REPO,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert current.returncode == 0, current.stderr
    assert "(head)" in current.stdout


# -- appending ------------------------------------------------------------------------------


async def test_append_is_idempotent(store: AuditStore) -> None:
    record = received("s-dup")
    assert await store.append(record) is True
    assert await store.append(record) is False
    assert await store.append_many([record, record]) == [False, False]
    assert await count_events(store) == 1
    execution = await store.get_execution("s-dup")
    assert execution is not None
    assert execution["attempts"] == 1


async def test_append_many_flags_each_record(store: AuditStore) -> None:
    events = lifecycle("s-many")
    assert await store.append_many(events + events[:2]) == [True] * len(events) + [False] * 2
    assert await store.append_many([]) == []
    assert await count_events(store) == len(events)


async def test_in_progress_submission_has_a_null_status(store: AuditStore) -> None:
    await store.append(received("s-wip"))
    await store.append(
        started_record("s-wip", worker_id="w1", attempt=1, started_at=at(1), image="img")
    )
    execution = await store.get_execution("s-wip")
    assert execution is not None
    assert execution["status"] is None
    assert execution["received_at"] == at(0)
    assert execution["started_at"] == at(1)
    assert execution["metadata"] == {"tenant": "t1"}
    assert execution["runs"] == []
    assert await store.finished_result("s-wip") is None


async def test_projection_after_finished(store: AuditStore) -> None:
    await store.append_many(lifecycle("s-fin"))
    execution = await store.get_execution("s-fin")
    assert execution is not None
    runs = execution.pop("runs")
    assert execution["status"] == "wrong_answer"
    assert execution["judge0_status_id"] == 4
    assert execution["language"] == "python"
    assert execution["attempts"] == 2
    assert execution["worker_id"] == "w2"
    assert execution["received_at"] == at(0)
    assert execution["started_at"] == at(1)
    assert execution["finished_at"] == at(20)
    assert execution["finished_at"].tzinfo is not None
    assert execution["cpu_time_s"] == pytest.approx(0.5)
    assert execution["wall_time_s"] == pytest.approx(0.75)
    assert execution["memory_kb"] == 4096
    assert execution["metadata"] == {"tenant": "t1", "tags": ["a", "ü"]}
    assert execution["result_topic_offset"] == 42
    assert execution["updated_at"] == at(21)
    assert [(r["stage"], r["ordinal"], r["test_case_id"]) for r in runs] == [
        ("compile", 0, None),
        ("run", 0, "1"),
        ("run", 1, "2"),
    ]
    assert runs[2]["stdout_truncated"] is True
    assert runs[2]["exit_code"] == 1


async def test_finished_result_is_the_published_payload(store: AuditStore) -> None:
    first = make_result("s-res", attempt=1, t=3, status=Status.TIME_LIMIT_EXCEEDED)
    second = make_result("s-res", attempt=2, t=4)
    assert await store.finished_result("s-res") is None
    await store.append(result_record(second))
    await store.append(result_record(first))  # a late, older attempt does not win
    assert await store.finished_result("s-res") == second.to_dict()
    execution = await store.get_execution("s-res")
    assert execution is not None
    assert execution["status"] == "accepted"
    assert execution["result_event_id"] == second.event_id


async def test_invalid_submission_is_answered(store: AuditStore) -> None:
    invalid = ResultEvent(
        submission_id="s-bad",
        status=Status.INVALID_SUBMISSION,
        language=None,
        worker_id="w1",
        received_at=at(0),
        started_at=None,
        finished_at=at(0.5),
        message="language: is required",
    )
    await store.append(result_record(invalid))
    assert await store.finished_result("s-bad") == invalid.to_dict()
    execution = await store.get_execution("s-bad")
    assert execution is not None
    assert (execution["status"], execution["judge0_status_id"]) == ("invalid_submission", 13)
    assert execution["runs"] == []


async def test_concurrent_appends_for_one_submission_agree_with_a_replay(
    store: AuditStore,
) -> None:
    rng = random.Random(3)
    for i in range(10):
        events = lifecycle(f"s-race-{i}")
        rng.shuffle(events)
        # Every event on its own connection at once, some twice: the at-least-once case.
        # Without per-submission locking the projection misses concurrent events.
        await asyncio.gather(*(store.append(e) for e in events + events[::2]))
    incremental = await snapshot(store)
    await store.rebuild_projections()
    assert await snapshot(store) == incremental
    assert {row["status"] for row in incremental[0]} == {"wrong_answer"}


# -- replay -----------------------------------------------------------------------------------


async def test_rebuild_reproduces_the_projections_row_for_row(store: AuditStore) -> None:
    rng = random.Random(11)
    events: list[AuditRecord] = []
    for i in range(30):
        sid = f"s-{i:03d}"
        kind = i % 3
        if kind == 0:
            events += lifecycle(sid)
        elif kind == 1:
            events += [received(sid)]
        else:
            events += [received(sid), result_record(make_result(sid, status=Status.RUNTIME_ERROR))]
    rng.shuffle(events)
    for start in range(0, len(events), 7):
        await store.append_many(events[start : start + 7])
    before = await snapshot(store)
    assert len(before[0]) == 30

    async with store.engine.begin() as conn:
        await conn.execute(delete(execution_runs))
        await conn.execute(delete(executions))
    assert await snapshot(store) == ([], [])

    assert await store.rebuild_projections() == 30
    after = await snapshot(store)
    assert after == before
    # ... and both equal the pure projection of the log.
    logged = [
        e for sid in sorted({e.submission_id for e in events}) for e in await store.events(sid)
    ]
    pure = project_all(logged)
    assert [p.execution for p in pure.values()] == before[0]
    assert [run for p in pure.values() for run in p.runs] == before[1]


async def test_rebuild_of_an_empty_log(store: AuditStore) -> None:
    assert await store.rebuild_projections() == 0


# -- reading and health -----------------------------------------------------------------------


async def test_list_executions_newest_first(store: AuditStore) -> None:
    for i in range(5):
        await store.append(received(f"s-list-{i}", t=i))
    listed = await store.list_executions(limit=3)
    assert [row["submission_id"] for row in listed] == ["s-list-4", "s-list-3", "s-list-2"]
    assert await store.get_execution("nope") is None


async def test_events_round_trip(store: AuditStore) -> None:
    events = lifecycle("s-rt")
    await store.append_many(events)
    assert await store.events("s-rt") == events


async def test_ping_and_unreachable_database(store: AuditStore) -> None:
    await store.ping()
    down = await AuditStore.open("postgresql+asyncpg://nobody:x@127.0.0.1:1/none")
    try:
        with pytest.raises(OSError):
            await down.ping()
    finally:
        await down.close()


async def test_unsupported_urls_are_rejected() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        await AuditStore.open("mysql+aiomysql://u:p@localhost/db")
    with pytest.raises(ValueError, match="async driver"):
        await AuditStore.open("postgresql+psycopg2://u:p@localhost/db")


# -- lossless strings: NUL, surrogates and the escape character itself -------------------------

ODD = "a\x00b ␀ ␀0 \ud800 \ud83d\ude00 😀"


def odd_lifecycle(sid: str) -> list[AuditRecord]:
    """A submission whose every string field can carry what PostgreSQL refuses raw."""
    answer = ResultEvent(
        submission_id=sid,
        status=Status.RUNTIME_ERROR,
        language=f"py{ODD}",
        worker_id=f"w{ODD}",
        received_at=at(0),
        started_at=at(1),
        finished_at=at(3),
        message=f"crashed {ODD}",
        runtime=Runtime(f"img{ODD}", None),
        runs=(RunResult(f"case{ODD}", Status.RUNTIME_ERROR, f"out{ODD}\x00", f"err\x00{ODD}"),),
        metadata={f"key{ODD}": [f"value{ODD}", {"\x00": "\x00"}], "plain": "x"},
    )
    rec = received(sid)
    rec = AuditRecord(
        rec.event_id,
        sid,
        "received",
        1,
        f"w{ODD}",
        rec.occurred_at,
        {**rec.payload, "language": f"py{ODD}", "metadata": dict(answer.metadata)},
    )
    return [
        rec,
        started_record(sid, worker_id=f"w{ODD}", attempt=1, started_at=at(2), image=f"img{ODD}"),
        result_record(answer),
    ]


async def test_nul_and_surrogates_are_stored_losslessly(store: AuditStore) -> None:
    sid = f"s-odd{ODD}"
    events = odd_lifecycle(sid)
    assert await store.append_many(events) == [True, True, True]
    assert await store.append_many(events) == [False, False, False]  # the key still matches
    assert await store.events(sid) == events
    assert await store.finished_result(sid) == events[-1].payload
    execution = await store.get_execution(sid)
    assert execution is not None
    assert execution["submission_id"] == sid
    assert execution["language"] == f"py{ODD}"
    assert execution["message"] == f"crashed {ODD}"
    assert execution["worker_id"] == f"w{ODD}"
    assert execution["metadata"] == events[-1].payload["metadata"]
    assert [r["test_case_id"] for r in execution["runs"]] == [f"case{ODD}"]
    before = await snapshot(store)
    assert await store.rebuild_projections() == 1
    assert await snapshot(store) == before
    assert (await store.list_executions())[0]["language"] == f"py{ODD}"


async def test_sql_users_see_the_documented_escape(store: AuditStore) -> None:
    await store.append_many(odd_lifecycle("s-sql"))
    language = "payload->>'language'"
    if store.engine.dialect.name == "sqlite":
        language = "json_extract(payload, '$.language')"
    query = f"SELECT {language} FROM audit_events WHERE kind = 'received'"
    async with store.engine.connect() as conn:
        stored = (await conn.execute(text(query))).scalar_one()
        column = (
            await conn.execute(text("SELECT message FROM executions WHERE submission_id = 's-sql'"))
        ).scalar_one()
    assert stored == "pya␀0b ␀␀ ␀␀0 ␀ud800 ␀ud83d␀ude00 😀"
    assert column == "crashed a␀0b ␀␀ ␀␀0 ␀ud800 ␀ud83d␀ude00 😀"


# -- refused records: quarantined, never a stall ------------------------------------------------


def refused_by_every_backend(sid: str) -> AuditRecord:
    """`attempt` beyond any integer column: SQLite and PostgreSQL both refuse it."""
    return AuditRecord(f"{sid}:huge", sid, "started", 2**70, "w1", at(1), {"image": "img"})


async def test_a_refused_record_is_quarantined_while_the_rest_land(store: AuditStore) -> None:
    writer = AuditWriter(store, max_backoff_s=0.05)
    quarantined_before = (
        metrics.REGISTRY.get_sample_value("streamworker_audit_quarantined_total") or 0.0
    )
    good = [received(f"s-q{i}") for i in range(6)] + odd_lifecycle("s-q-odd")
    bad = refused_by_every_backend("s-q-bad")
    for record in [*good[:3], bad, *good[3:]]:  # one batch: the writer is not running yet
        writer.submit(record)
    assert writer.lag_seconds() > 0
    writer.start()
    try:
        assert await writer.drain(timeout_s=30) is True
        assert writer.lag_seconds() == 0.0 and writer.pending == 0
        assert writer.last_error is None
        for record in good:
            assert record in await store.events(record.submission_id)
        assert await store.events("s-q-bad") == []
        rows = await store.quarantine.unresolved()
        assert [(r.event_id, r.submission_id, r.attempts) for r in rows] == [
            (bad.event_id, "s-q-bad", 1)
        ]
        assert rows[0].error  # the database's reason
        assert record_from_json(rows[0].record) == bad
        assert (
            metrics.REGISTRY.get_sample_value("streamworker_audit_quarantined_total")
            == quarantined_before + 1
        )
        assert (await writer.health()).text() == "degraded: 1 record(s) quarantined"
    finally:
        await writer.stop()


@pytest.mark.integration
async def test_postgresql_refusing_nan_in_jsonb_is_quarantined(pg_url: str) -> None:
    await upgrade(pg_url)
    async with await AuditStore.open(pg_url) as audit:
        writer = AuditWriter(audit)
        nan = AuditRecord("s-nan:x", "s-nan", "started", 1, "w1", at(1), {"v": float("nan")})
        writer.submit(received("s-nan"))
        writer.submit(nan)
        writer.start()
        try:
            assert await writer.drain(timeout_s=30) is True
        finally:
            await writer.stop()
        assert [e.kind for e in await audit.events("s-nan")] == ["received"]
        (row,) = await audit.quarantine.unresolved()
        assert "[22P02]" in row.error and "json" in row.error


async def test_requeue_lands_a_record_once_the_database_takes_it(
    store: AuditStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = received("s-requeue")
    real_insert = store._insert_event

    async def refuse_once(conn: Any, rec: AuditRecord) -> bool:
        if rec.event_id == record.event_id:
            raise DataError("INSERT", {}, Exception("refused for this test"))
        return await real_insert(conn, rec)

    real_batch = store._insert_events

    async def refuse_batch(records: Any) -> list[bool]:
        if any(rec.event_id == record.event_id for rec in records):
            raise DataError("INSERT", {}, Exception("refused for this test"))
        return await real_batch(records)

    monkeypatch.setattr(store, "_insert_event", refuse_once)
    monkeypatch.setattr(store, "_insert_events", refuse_batch)
    writer = AuditWriter(store)
    writer.submit(record)
    writer.submit(received("s-requeue-other"))
    writer.start()
    assert await writer.drain(timeout_s=30) is True
    await writer.stop()
    assert await store.quarantine.count_unresolved() == 1
    assert await store.events("s-requeue") == []

    # Still refused: the row stays, with one more attempt on record.
    again = await requeue_quarantined(store)
    assert again.landed == 0 and list(again.refused.values()) == [
        "Exception: refused for this test"
    ]
    (row,) = await store.quarantine.unresolved()
    assert row.attempts == 2

    monkeypatch.setattr(store, "_insert_event", real_insert)
    done = await requeue_quarantined(store)
    assert (done.landed, done.refused) == (1, {})
    assert await store.events("s-requeue") == [record]
    assert await store.quarantine.count_unresolved() == 0
    assert (await requeue_quarantined(store)).landed == 0
    async with store.engine.connect() as conn:
        resolved = (await conn.execute(select(audit_quarantine.c.resolved_at))).scalar_one()
    assert resolved is not None


async def test_requeue_of_a_record_the_operator_fixed(store: AuditStore) -> None:
    bad = refused_by_every_backend("s-fix")
    await store.quarantine.add(bad, "out of range")
    assert (await requeue_quarantined(store)).landed == 0
    (row,) = await store.quarantine.unresolved()
    fixed = AuditRecord(bad.event_id, bad.submission_id, "started", 1, "w1", at(1), bad.payload)
    async with store.engine.begin() as conn:
        await conn.execute(
            audit_quarantine.update()
            .where(audit_quarantine.c.id == row.id)
            .values(record=record_json(fixed))
        )
    assert (await requeue_quarantined(store)).landed == 1
    assert await store.events("s-fix") == [fixed]


async def test_an_outage_during_requeue_raises_and_marks_nothing(store: AuditStore) -> None:
    await store.quarantine.add(received("s-outage"), "refused")
    down = AuditStore(store.engine)

    async def unreachable(records: Any) -> list[bool]:
        raise ConnectionRefusedError("database down")

    down._append = unreachable  # type: ignore[method-assign]
    with pytest.raises(ConnectionRefusedError):
        await requeue_quarantined(down)
    assert await store.quarantine.count_unresolved() == 1


# -- the hot path: append now, project right after ------------------------------------------


async def test_append_logged_then_project_equals_a_full_append(store: AuditStore) -> None:
    events = lifecycle("hot-1") + lifecycle("hot-2")
    flags = await store.append_logged(events + events[:2])  # a duplicate in the same batch
    assert flags == [True] * len(events) + [False, False]
    assert await store.append_logged(events) == [False] * len(events)
    assert (await snapshot(store))[0] == []  # nothing projected yet: only marked
    assert await store.unprojected() == 2
    assert await store.project_pending() == 2
    assert await store.unprojected() == 0 and await store.project_pending() == 0
    projected = await snapshot(store)
    await store.rebuild_projections()
    assert await snapshot(store) == projected  # the same as replaying the whole log


async def test_a_mark_renewed_meanwhile_survives_the_older_projection(store: AuditStore) -> None:
    from streamworker.audit.pending import clear_marks, take_marks

    events = lifecycle("race-1")
    await store.append_logged(events[:2])
    async with store.engine.begin() as conn:
        seen = await conn.run_sync(take_marks, store.engine.dialect.name, 10)
    await store.append_logged(events[2:])  # appended after the projector read its marks
    async with store.engine.begin() as conn:
        await conn.run_sync(clear_marks, seen)
    assert await store.unprojected() == 1  # still marked: the newer events get projected
    assert await store.project_pending() == 1
    rows, _ = await snapshot(store)
    assert rows[0]["attempts"] == 2 and rows[0]["status"] == "wrong_answer"
