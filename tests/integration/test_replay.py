"""`streamworker replay`: projections rebuilt from the event log equal the originals row for
row, and a lost database is re-projected from the results topic."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from streamworker.audit.models import execution_runs, executions
from streamworker.audit.records import AuditRecord
from streamworker.audit.store import AuditStore
from tests.integration.kafka_util import event_bytes, produce, wait_for_count

pytestmark = [pytest.mark.integration]

CLI = str(Path(sys.executable).with_name("streamworker"))
T0 = datetime(2024, 5, 1, tzinfo=UTC)


async def snapshot(url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    store = await AuditStore.open(url)
    try:
        async with store.engine.connect() as conn:
            rows = (
                (await conn.execute(select(executions).order_by(executions.c.submission_id)))
                .mappings()
                .all()
            )
            runs = (
                (
                    await conn.execute(
                        select(execution_runs).order_by(
                            execution_runs.c.submission_id,
                            execution_runs.c.stage,
                            execution_runs.c.ordinal,
                        )
                    )
                )
                .mappings()
                .all()
            )
        return [dict(r) for r in rows], [dict(r) for r in runs]
    finally:
        await store.close()


async def drop_projections(url: str) -> None:
    store = await AuditStore.open(url)
    try:
        async with store.engine.begin() as conn:
            await conn.execute(delete(execution_runs))
            await conn.execute(delete(executions))
    finally:
        await store.close()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120)


def run_cli(env: dict[str, str], *args: str) -> str:
    done = cli(env, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_replay_rebuilds_projections_row_for_row(
    start_worker: Any, kafka_bootstrap: str, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/audit.db"
    worker = start_worker(database_url=url)
    tag = uuid.uuid4().hex[:6]
    events: list[dict[str, Any]] = [
        {
            "submission_id": f"rp-{tag}-ok",
            "language": "python",
            "source": "print(1)",
            "expected_output": "1\n",
        },
        {
            "submission_id": f"rp-{tag}-wa",
            "language": "python",
            "source": "print(2)",
            "test_cases": [
                {"id": "a", "stdin": "", "expected_output": "2\n"},
                {"id": "b", "stdin": "", "expected_output": "3\n"},
            ],
        },
        {"submission_id": f"rp-{tag}-ce", "language": "c", "source": "int main( {"},
        {"submission_id": f"rp-{tag}-bad", "language": "cobol-85", "source": "x"},
    ]
    sids = {e["submission_id"] for e in events}
    await produce(kafka_bootstrap, worker.topics["submissions"], [event_bytes(e) for e in events])
    assert len(await wait_for_count(kafka_bootstrap, worker.topics["results"], sids, 120)) == 4

    worker.process.terminate()  # drains and flushes the audit writer
    worker.process.wait(timeout=60)
    before = await snapshot(url)
    assert {r["submission_id"] for r in before[0]} == sids
    assert all(r["status"] for r in before[0])
    assert len(before[1]) >= 3

    await drop_projections(url)
    assert (await snapshot(url)) == ([], [])
    out = run_cli({**worker.env, "STREAMWORKER_DATABASE_URL": url}, "replay")
    assert "rebuilt projections of 4" in out
    assert await snapshot(url) == before

    # A lost database: an empty one, re-projected from the committed results topic.
    fresh = f"sqlite+aiosqlite:///{tmp_path}/fresh.db"
    env = {**worker.env, "STREAMWORKER_DATABASE_URL": fresh}
    run_cli(env, "db", "upgrade")
    out = run_cli(env, "replay", "--from-results-topic")
    assert "appended 4 result event(s)" in out
    rows, runs = await snapshot(fresh)
    compared = (
        "submission_id",
        "language",
        "status",
        "judge0_status_id",
        "cpu_time_s",
        "wall_time_s",
        "memory_kb",
        "attempts",
        "worker_id",
        "finished_at",
    )
    assert [{k: r[k] for k in compared} for r in rows] == [
        {k: r[k] for k in compared} for r in before[0]
    ]
    assert runs == before[1]


# -- what PostgreSQL refuses raw, end to end; quarantined records requeued from the CLI --------


@pytest.fixture
async def pg_schema_url(pg_url: str) -> AsyncIterator[str]:
    """`pg_url` with its tables in a fresh schema, dropped afterwards."""
    schema = f"sw_replay_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(pg_url, poolclass=NullPool)
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            url = make_url(pg_url).update_query_dict({"search_path": schema})
            yield url.render_as_string(hide_password=False)
        finally:
            async with admin.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        await admin.dispose()


async def test_nul_in_outputs_and_metadata_reaches_postgresql_and_replays(
    start_worker: Any, kafka_bootstrap: str, pg_schema_url: str, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    events: list[dict[str, Any]] = [
        {
            "submission_id": f"nul-{tag}-run",
            "language": "python",
            "source": "import sys\nsys.stdout.write('a\\0b')\nsys.stderr.write('\\0')\n",
            "metadata": {"k\u0000": "v\u0000", "plain": "x"},
        },
        # Refused as invalid: its language (and so the message) carries the NUL.
        {"submission_id": f"nul-{tag}-lang", "language": "py\u0000thon", "source": "x"},
    ]
    sids = {e["submission_id"] for e in events}
    worker = start_worker(database_url=pg_schema_url)
    await produce(kafka_bootstrap, worker.topics["submissions"], [event_bytes(e) for e in events])
    assert len(await wait_for_count(kafka_bootstrap, worker.topics["results"], sids, 120)) == 2
    worker.process.terminate()  # drains and flushes the audit writer
    worker.process.wait(timeout=60)

    async with await AuditStore.open(pg_schema_url) as store:
        ran = await store.finished_result(f"nul-{tag}-run")
        assert ran is not None
        assert ran["metadata"] == {"k\x00": "v\x00", "plain": "x"}
        assert [(r["stdout"], r["stderr"]) for r in ran["runs"]] == [("a\x00b", "\x00")]
        invalid = await store.get_execution(f"nul-{tag}-lang")
        assert invalid is not None and invalid["status"] == "invalid_submission"
        assert await store.quarantine.count_unresolved() == 0
    before = await snapshot(pg_schema_url)
    assert {r["submission_id"] for r in before[0]} == sids

    await drop_projections(pg_schema_url)
    run_cli({**worker.env, "STREAMWORKER_DATABASE_URL": pg_schema_url}, "replay")
    assert await snapshot(pg_schema_url) == before


async def test_replay_quarantined_requeues_from_the_cli(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/audit.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMWORKER_")}
    env["STREAMWORKER_DATABASE_URL"] = url
    run_cli(env, "db", "upgrade")
    good = AuditRecord("q-good:r", "q-good", "received", 1, "w1", T0, {"language": "py\x00"})
    bad = AuditRecord("q-bad:s", "q-bad", "started", 2**70, "w1", T0, {})
    async with await AuditStore.open(url) as store:
        await store.quarantine.add(good, "refused before the fix")
        await store.quarantine.add(bad, "out of range")

    done = cli(env, "replay", "--quarantined")
    assert done.returncode == 1, done.stderr  # one record is still refused
    assert "requeued 1 quarantined record(s)" in done.stdout
    assert "audit_quarantine.id=2 refused again:" in done.stdout

    async with await AuditStore.open(url) as store:
        assert await store.events("q-good") == [good]
        execution = await store.get_execution("q-good")
        assert execution is not None and execution["language"] == "py\x00"
        assert [row.id for row in await store.quarantine.unresolved()] == [2]
