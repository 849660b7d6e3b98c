"""The audit store: append to the event log and keep the projections in step.

`append_many` inserts the events whose `event_id` is new and re-projects their
submissions from all of their events in the same transaction, so at-least-once delivery
neither loses nor duplicates anything and the projections always equal a full replay.
The worker's hot path uses `append_logged` + `project_pending` instead (`pending`,
`projecting`): the same result, with the projection a moment later, and on a SQLite file
a whole transaction per thread hop in plain SQL (`sqlite_lane`, `sqlite_plain`). Strings are
escaped on the way in and restored on the way out by the column types (`models.SafeText`,
`models.SafeJSON`), so NUL and surrogates are stored losslessly on both backends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any

from sqlalchemy import Row, Table, delete, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from streamworker.audit import sqlite_plain
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
    count_marks,
    defer_mark,
    insert_row,
    take_marks,
)
from streamworker.audit.projecting import (
    event_rows,
    lock_submissions,
    project_marked,
    records_of,
    reproject,
)
from streamworker.audit.projection import winning_result
from streamworker.audit.quarantine import QuarantineStore
from streamworker.audit.records import RESULT_KINDS, AuditRecord
from streamworker.audit.sqlite_lane import SqliteLane

__all__ = ["AuditRecord", "AuditStore"]

log = logging.getLogger(__name__)

_REBUILD_BATCH = 500
QUICK_APPEND_MAX = 32
"""Appends of up to this many records may run on the event loop's thread (`SqliteLane.
quick_transaction`, well under a millisecond); a larger batch would hold up the loop."""


def _row_dict(table: Table, row: Row[Any]) -> dict[str, Any]:
    mapping = row._mapping
    return {column.name: mapping[column] for column in table.c}


class AuditStore:
    """Async access to the audit log on PostgreSQL or SQLite."""

    def __init__(self, engine: AsyncEngine, lane: SqliteLane | None = None) -> None:
        self.engine = engine
        self._lane = lane
        """SQLite files only: the per-submission lookup and appends in one thread hop."""
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
        return cls(create_engine(url), SqliteLane.for_url(url))

    async def close(self) -> None:
        if self._lane is not None:
            await self._lane.close()
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
            sids = {r.submission_id for r in records}
            await conn.run_sync(lock_submissions, self._dialect, sids)
            inserted = [await self._insert_event(conn, r) for r in records]
            touched = sorted(
                {r.submission_id for r, new in zip(records, inserted, strict=True) if new}
            )
            await conn.run_sync(reproject, self._dialect, touched)
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
        return await self._insert_events(batch)

    async def _insert_events(self, records: Sequence[AuditRecord]) -> list[bool]:
        if self._lane is not None:
            if len(records) <= QUICK_APPEND_MAX:
                return await self._lane.quick_transaction(sqlite_plain.append_events, records)
            return await self._lane.transaction(sqlite_plain.append_events, records)
        async with self.engine.begin() as conn:
            return await conn.run_sync(append_events, self._dialect, records)

    async def project_pending(self, limit: int = 200, only: Sequence[str] | None = None) -> int:
        """Project up to `limit` marked submissions (oldest first) in one transaction;
        how many were projected. A submission re-marked meanwhile stays marked."""
        if self._lane is not None:
            return await self._lane.transaction(sqlite_plain.project_marked, limit, only)
        async with self.engine.begin() as conn:
            return await conn.run_sync(project_marked, self._dialect, limit, only)

    async def pending_marks(self, limit: int = 200) -> list[str]:
        """The oldest marked submissions (to project one by one after a batch failed)."""
        async with self.engine.connect() as conn:
            return list(await conn.run_sync(take_marks, "", limit))

    async def defer_mark(self, submission_id: str) -> None:
        async with self.engine.begin() as conn:
            await defer_mark(conn, submission_id)

    async def unprojected(self) -> int:
        async with self.engine.connect() as conn:
            return await count_marks(conn)

    def _upsert(self, table: Table) -> Any:
        module = postgresql if self._dialect == "postgresql" else sqlite
        return module.insert(table)

    async def _insert_event(self, conn: AsyncConnection, record: AuditRecord) -> bool:
        stmt = (
            self._upsert(audit_events)
            .values(insert_row(record))
            .on_conflict_do_nothing(index_elements=[audit_events.c.event_id])
            .returning(audit_events.c.id)
        )
        return (await conn.execute(stmt)).first() is not None

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
                count += await conn.run_sync(reproject, self._dialect, batch)
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
        if self._lane is not None:
            return await self._lane.quick_read(sqlite_plain.event_records, [submission_id])
        async with self._reads.connect() as conn:
            return records_of(await conn.run_sync(event_rows, [submission_id]))

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
        result = winning_result(records_of(rows))
        return dict(result.payload) if result is not None else None

    # -- health ------------------------------------------------------------------------

    async def ping(self) -> None:
        """Round-trip to the database; raises when it does not answer."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def is_migrated(self) -> bool:
        """True when the schema is at the head revision of the shipped migrations."""
        return await is_at_head(self.engine)
