"""The audit store: append to the event log and keep the projections in step.

`append_many` inserts the events whose `event_id` is new and re-projects their
submissions from all of their events in the same transaction, so at-least-once delivery
neither loses nor duplicates anything and the projections always equal a full replay.
The worker's hot path uses `append_logged` + `project_pending` instead (`pending`): the
same result, with the projection a moment later. Strings are
escaped on the way in and restored on the way out by the column types (`models.SafeText`,
`models.SafeJSON`), so NUL and surrogates are stored losslessly on both backends.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Sequence
from functools import cache
from types import TracebackType
from typing import Any

from sqlalchemy import Row, Table, delete, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from streamworker.audit.engine import create_engine
from streamworker.audit.migrate import is_at_head
from streamworker.audit.models import (
    audit_events,
    audit_pending_projection,
    execution_runs,
    executions,
)
from streamworker.audit.pending import (
    append_events,
    clear_marks,
    count_marks,
    defer_mark,
    take_marks,
)
from streamworker.audit.projection import Projection, project_submission, winning_result
from streamworker.audit.quarantine import QuarantineStore
from streamworker.audit.records import RESULT_KINDS, AuditKind, AuditRecord

__all__ = ["AuditRecord", "AuditStore"]

log = logging.getLogger(__name__)

_REBUILD_BATCH = 500
_KNOWN_KINDS = frozenset(kind.value for kind in AuditKind)


_LOCK_ALL = text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS BIGINT[])) AS t(k)")


def _lock_key(submission_id: str) -> int:
    """A stable signed 64-bit advisory-lock key (Python's `hash` is salted per process)."""
    name = submission_id.encode("utf-8", "surrogatepass")  # ids may hold lone surrogates
    digest = hashlib.blake2b(name, digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@cache
def _projection_upsert(dialect: str) -> Any:
    stmt = (postgresql if dialect == "postgresql" else sqlite).insert(executions)
    return stmt.on_conflict_do_update(
        index_elements=[executions.c.submission_id],
        set_={c.name: stmt.excluded[c.key] for c in executions.c if not c.primary_key},
    )


def _row_dict(table: Table, row: Row[Any]) -> dict[str, Any]:
    mapping = row._mapping
    return {column.name: mapping[column] for column in table.c}


def _records(rows: Iterable[Row[Any]]) -> list[AuditRecord]:
    records = []
    for row in rows:
        if row.kind not in _KNOWN_KINDS:
            # Written by a newer version; this one cannot project it and must not crash.
            log.warning("skipping audit event %s of unknown kind %r", row.event_id, row.kind)
            continue
        records.append(
            AuditRecord(
                event_id=row.event_id,
                submission_id=row.submission_id,
                kind=AuditKind(row.kind),
                attempt=row.attempt,
                worker_id=row.worker_id,
                occurred_at=row.occurred_at,
                payload=row.payload,
            )
        )
    return records


class AuditStore:
    """Async access to the audit log on PostgreSQL or SQLite."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.quarantine = QuarantineStore(engine)
        """Records the database refused (see `streamworker.audit.writer`)."""
        self._dialect = engine.dialect.name
        # The hot path's one-statement read (a submission's events, looked up for every
        # submission) needs no transaction: on PostgreSQL that saves the BEGIN and the
        # ROLLBACK round trips around it.
        self._reads = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if self._dialect == "postgresql"
            else engine
        )

    @classmethod
    async def open(cls, url: str) -> AuditStore:
        """A store on `url`; connects lazily, so a database that is down fails `ping()`."""
        return cls(create_engine(url))

    async def close(self) -> None:
        await self.engine.dispose()

    async def __aenter__(self) -> AuditStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- writing -----------------------------------------------------------------------

    async def append(self, record: AuditRecord) -> bool:
        """Append one event; False when its `event_id` was already in the log."""
        (inserted,) = await self._append([record])
        return inserted

    async def append_many(self, records: Iterable[AuditRecord]) -> list[bool]:
        """Append events in one transaction; one `inserted` flag per record, in order."""
        return await self._append(list(records))

    async def _append(self, records: Sequence[AuditRecord]) -> list[bool]:
        if not records:
            return []
        async with self.engine.begin() as conn:
            await self._lock_submissions(conn, {r.submission_id for r in records})
            inserted = [await self._insert_event(conn, r) for r in records]
            touched = sorted(
                {r.submission_id for r, new in zip(records, inserted, strict=True) if new}
            )
            for submission_id in touched:
                await self._reproject(conn, submission_id)
        for record, new in zip(records, inserted, strict=True):
            if not new:
                log.debug("audit event %s already recorded", record.event_id)
        return inserted

    async def append_logged(self, records: Iterable[AuditRecord]) -> list[bool]:
        """The hot path: append events and mark their submissions for projection, in one
        short transaction (`pending`); `project_pending` brings the projections up."""
        batch = list(records)
        if not batch:
            return []
        async with self.engine.begin() as conn:
            return await self._insert_events(conn, batch)

    async def _insert_events(
        self, conn: AsyncConnection, records: Sequence[AuditRecord]
    ) -> list[bool]:
        return await append_events(conn, self._dialect, records)

    async def project_pending(self, limit: int = 200, only: Sequence[str] | None = None) -> int:
        """Project up to `limit` marked submissions (oldest first) in one transaction;
        how many were projected. A submission re-marked meanwhile stays marked."""
        async with self.engine.begin() as conn:
            marks = await take_marks(conn, self._dialect, limit, only)
            if not marks:
                return 0
            await self._lock_submissions(conn, set(marks))
            grouped: dict[str, list[AuditRecord]] = {sid: [] for sid in marks}
            for record in _records(await self._events_of(conn, list(marks))):
                grouped[record.submission_id].append(record)
            projections = [project_submission(r) for r in grouped.values() if r]
            await self._write_projections(conn, projections)
            await clear_marks(conn, marks)
        return len(marks)

    async def pending_marks(self, limit: int = 200) -> list[str]:
        """The oldest marked submissions (to project one by one after a batch failed)."""
        async with self.engine.connect() as conn:
            return list(await take_marks(conn, "", limit))

    async def defer_mark(self, submission_id: str) -> None:
        async with self.engine.begin() as conn:
            await defer_mark(conn, submission_id)

    async def unprojected(self) -> int:
        async with self.engine.connect() as conn:
            return await count_marks(conn)

    async def _lock_submissions(self, conn: AsyncConnection, submission_ids: set[str]) -> None:
        # Two workers appending for one submission must not project from each other's
        # uncommitted halves. SQLite takes its single write lock at the first INSERT;
        # PostgreSQL needs a per-submission lock, taken in a fixed order (no deadlocks).
        if self._dialect != "postgresql":
            return
        # One statement for the whole batch: the keys come sorted, and a function scan
        # over unnest takes them (and so the locks) in array order.
        keys = sorted({_lock_key(sid) for sid in submission_ids})
        if keys:
            await conn.execute(_LOCK_ALL, {"keys": keys})

    def _upsert(self, table: Table) -> Any:
        module = postgresql if self._dialect == "postgresql" else sqlite
        return module.insert(table)

    async def _insert_event(self, conn: AsyncConnection, record: AuditRecord) -> bool:
        stmt = (
            self._upsert(audit_events)
            .values(
                event_id=record.event_id,
                submission_id=record.submission_id,
                kind=str(record.kind),
                attempt=record.attempt,
                worker_id=record.worker_id,
                occurred_at=record.occurred_at,
                payload=dict(record.payload),
            )
            .on_conflict_do_nothing(index_elements=[audit_events.c.event_id])
            .returning(audit_events.c.id)
        )
        return (await conn.execute(stmt)).first() is not None

    async def _events_of(self, conn: AsyncConnection, submission_ids: Sequence[str]) -> list[Any]:
        query = (
            select(audit_events)
            .where(audit_events.c.submission_id.in_(submission_ids))
            .order_by(audit_events.c.id)
        )
        return list((await conn.execute(query)).all())

    async def _reproject(self, conn: AsyncConnection, submission_id: str) -> None:
        records = _records(await self._events_of(conn, [submission_id]))
        if records:
            await self._write_projection(conn, project_submission(records))

    async def _write_projections(
        self, conn: AsyncConnection, projections: Sequence[Projection]
    ) -> None:
        """Several submissions' rows in three statements (upsert, delete, insert), each
        compiled once per process."""
        if not projections:
            return
        await conn.execute(_projection_upsert(self._dialect), [p.execution for p in projections])
        sids = [p.execution["submission_id"] for p in projections]
        await conn.execute(delete(execution_runs).where(execution_runs.c.submission_id.in_(sids)))
        runs = [run for p in projections for run in p.runs]
        if runs:
            await conn.execute(execution_runs.insert(), runs)

    async def _write_projection(self, conn: AsyncConnection, projection: Projection) -> None:
        row = projection.execution
        stmt = self._upsert(executions).values(row)
        stmt = stmt.on_conflict_do_update(
            index_elements=[executions.c.submission_id],
            set_={c.name: stmt.excluded[c.key] for c in executions.c if not c.primary_key},
        )
        await conn.execute(stmt)
        sid = row["submission_id"]
        await conn.execute(delete(execution_runs).where(execution_runs.c.submission_id == sid))
        if projection.runs:
            await conn.execute(execution_runs.insert(), projection.runs)

    async def rebuild_projections(self) -> int:
        """Drop every projected row and replay the whole log; returns the submissions count.

        One transaction: readers see the old or the new projections, never a half.
        """
        started = time.monotonic()
        count = 0
        async with self.engine.begin() as conn:
            if self._dialect == "postgresql":
                # Appends wait until the replay is committed instead of racing it.
                await conn.execute(text("LOCK TABLE audit_events IN SHARE MODE"))
            await conn.execute(delete(execution_runs))
            await conn.execute(delete(executions))
            await conn.execute(delete(audit_pending_projection))  # the replay covers them
            last: str | None = None
            while True:
                query = select(audit_events.c.submission_id).distinct()
                if last is not None:
                    query = query.where(audit_events.c.submission_id > last)
                query = query.order_by(audit_events.c.submission_id).limit(_REBUILD_BATCH)
                batch = list((await conn.execute(query)).scalars())
                if not batch:
                    break
                grouped: dict[str, list[AuditRecord]] = {sid: [] for sid in batch}
                for record in _records(await self._events_of(conn, batch)):
                    grouped[record.submission_id].append(record)
                for records in grouped.values():
                    if records:
                        await self._write_projection(conn, project_submission(records))
                        count += 1
                last = batch[-1]
        log.info(
            "rebuilt projections of %d submissions in %.3f s", count, time.monotonic() - started
        )
        return count

    # -- reading -----------------------------------------------------------------------

    async def get_execution(self, submission_id: str) -> dict[str, Any] | None:
        """The `executions` row of a submission plus its `runs` (execution_runs rows)."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(executions).where(executions.c.submission_id == submission_id)
                )
            ).first()
            if row is None:
                return None
            runs = await conn.execute(
                select(execution_runs)
                .where(execution_runs.c.submission_id == submission_id)
                .order_by(execution_runs.c.stage, execution_runs.c.ordinal)
            )
            execution = _row_dict(executions, row)
            execution["runs"] = [_row_dict(execution_runs, r) for r in runs]
        return execution

    async def list_executions(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest `limit` executions rows (by `received_at`), newest first."""
        query = (
            select(executions)
            .order_by(executions.c.received_at.desc(), executions.c.submission_id.desc())
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_row_dict(executions, row) for row in rows]

    async def events(self, submission_id: str) -> list[AuditRecord]:
        """Every logged event of a submission, in the order they were appended."""
        async with self._reads.connect() as conn:
            return _records(await self._events_of(conn, [submission_id]))

    async def finished_result(self, submission_id: str) -> dict[str, Any] | None:
        """The published result that answers the submission, or None if none was.

        Read from the log itself, so it holds even while projections are being rebuilt.
        """
        query = (
            select(audit_events)
            .where(audit_events.c.submission_id == submission_id)
            .where(audit_events.c.kind.in_([kind.value for kind in RESULT_KINDS]))
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        result = winning_result(_records(rows))
        return dict(result.payload) if result is not None else None

    # -- health ------------------------------------------------------------------------

    async def ping(self) -> None:
        """Round-trip to the database; raises when it does not answer."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def is_migrated(self) -> bool:
        """True when the schema is at the head revision of the shipped migrations."""
        return await is_at_head(self.engine)
