"""`streamworker replay`: projections rebuilt from the event log equal the originals row for
row, and a lost database is re-projected from the results topic."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select

from streamworker.audit.models import execution_runs, executions
from streamworker.audit.store import AuditStore
from tests.integration.kafka_util import event_bytes, produce, wait_for_count

pytestmark = [pytest.mark.integration]

CLI = str(Path(sys.executable).with_name("streamworker"))


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


def run_cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_replay_rebuilds_projections_row_for_row(
    start_worker: Any, kafka_bootstrap: str, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/audit.db"
    worker = start_worker(database_url=url)
    tag = uuid.uuid4().hex[:6]
    events = [
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
