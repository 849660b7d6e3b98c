"""What the audit log costs the worker per submission, on one database, with nothing else
running: `python -m streamworker.bench.audit_cost [--url URL] [--submissions N]`.

Per submission it does what the worker's hot path does, one submission at a time (the
worst case: no batching across submissions): look up the submission's earlier events,
append `received` + `started`, append the result, project. The figure is this process's
CPU time (`time.process_time`, all threads — aiosqlite's and the SQLite lane's included)
and wall time, each divided by the submissions. Without `--url` it runs on a fresh
SQLite file. The database must be migrated (`streamworker db upgrade`; the SQLite file
is migrated here).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from streamworker.audit.migrate import upgrade
from streamworker.audit.records import AuditKind, AuditRecord
from streamworker.audit.store import AuditStore

WARMUP = 20


def _records(submission_id: str) -> list[AuditRecord]:
    now = datetime.now(UTC)
    payload = {"language": "python", "stdout": "hello\n", "status": "accepted"}
    return [
        AuditRecord(str(uuid.uuid4()), submission_id, kind, 1, "audit-cost", now, payload)
        for kind in (AuditKind.RECEIVED, AuditKind.STARTED, AuditKind.FINISHED)
    ]


async def _one(store: AuditStore, submission_id: str) -> None:
    received, started, finished = _records(submission_id)
    await store.events(submission_id)
    await store.append_logged([received, started])
    await store.append_logged([finished])
    await store.project_pending()


async def measure(url: str, submissions: int) -> tuple[float, float]:
    """(CPU ms, wall ms) per submission."""
    store = await AuditStore.open(url)
    try:
        tag = uuid.uuid4().hex[:8]
        for i in range(WARMUP):
            await _one(store, f"audit-cost-warm-{tag}-{i}")
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(submissions):
            await _one(store, f"audit-cost-{tag}-{i}")
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await store.close()
    return 1000 * cpu / submissions, 1000 * wall / submissions


async def _main(url: str | None, submissions: int) -> None:
    with tempfile.TemporaryDirectory(prefix="sw-audit-cost-") as tmp:
        if url is None:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'audit.db'}"
            await upgrade(url)
        cpu_ms, wall_ms = await measure(url, submissions)
    backend = url.split(":", 1)[0]
    print(f"{backend}: {cpu_ms:.2f} ms CPU, {wall_ms:.2f} ms wall per submission ({submissions})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="the audit database (default: a fresh SQLite file)")
    parser.add_argument("--submissions", type=int, default=300)
    args = parser.parse_args()
    asyncio.run(_main(args.url, max(1, args.submissions)))


if __name__ == "__main__":
    main()
