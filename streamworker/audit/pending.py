"""The hot path's half of the audit store: append events in one statement and mark their
submissions for projection; project the marks later, in batches.

Why split: the worker acknowledges a submission only once its events are durable, and
that wait used to include re-projecting the submission (read all its events, upsert its
rows) statement by statement. Now the wait is one multi-row `INSERT … ON CONFLICT DO
NOTHING` plus one upsert of the marks, in one transaction; `executions` follows a few
milliseconds later. The log stays the source of truth (`prior` reads it, not the
projections), so nothing about exactly-once depends on the projection's timing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from streamworker.audit.models import audit_events, audit_pending_projection
from streamworker.audit.records import AuditRecord

pending = audit_pending_projection


def _insert(dialect: str, table: Any) -> Any:
    return (postgresql if dialect == "postgresql" else sqlite).insert(table)


@cache
def _append_stmt(dialect: str) -> Any:
    """Built once per dialect: executed with a list of rows (SQLAlchemy batches them into
    multi-row INSERTs and caches the compiled form — a `.values([...])` statement would
    be compiled anew for every batch size, the worker's main CPU cost in the profile)."""
    return (
        _insert(dialect, audit_events)
        .on_conflict_do_nothing(index_elements=[audit_events.c.event_id])
        .returning(audit_events.c.event_id)
    )


@cache
def _mark_stmt(dialect: str) -> Any:
    stmt = _insert(dialect, pending)
    return stmt.on_conflict_do_update(
        index_elements=[pending.c.submission_id],
        set_={"seq": pending.c.seq + 1, "marked_at": stmt.excluded.marked_at},
    )


def insert_row(record: AuditRecord) -> dict[str, Any]:
    """The `audit_events` row of a record (one mapping for the batched and single insert)."""
    return {
        "event_id": record.event_id,
        "submission_id": record.submission_id,
        "kind": str(record.kind),
        "attempt": record.attempt,
        "worker_id": record.worker_id,
        "occurred_at": record.occurred_at,
        "payload": dict(record.payload),
    }


def append_events(conn: Connection, dialect: str, records: Sequence[AuditRecord]) -> list[bool]:
    """Insert the new events (one statement) and mark their submissions; one flag each.

    A record repeated within `records` counts as new once, like separate appends would.
    Synchronous: SQLite runs it in one thread hop (`sqlite_lane`), PostgreSQL through
    `AsyncConnection.run_sync`.
    """
    result = conn.execute(_append_stmt(dialect), [insert_row(r) for r in records])
    new_ids = set(result.scalars())
    inserted, seen = [], set()
    for record in records:
        fresh = record.event_id in new_ids and record.event_id not in seen
        seen.add(record.event_id)
        inserted.append(fresh)
    touched = sorted({r.submission_id for r, new in zip(records, inserted, strict=True) if new})
    if touched:
        now = datetime.now(UTC)
        conn.execute(
            _mark_stmt(dialect),
            [{"submission_id": sid, "seq": 1, "marked_at": now} for sid in touched],
        )
    return inserted


def take_marks(
    conn: Connection, dialect: str, limit: int, only: Sequence[str] | None = None
) -> dict[str, int]:
    """Up to `limit` marked submissions (oldest first, or just `only`) with their `seq`."""
    query = select(pending.c.submission_id, pending.c.seq).order_by(pending.c.marked_at)
    if only is not None:
        query = query.where(pending.c.submission_id.in_(list(only)))
    query = query.limit(limit)
    if dialect == "postgresql":
        query = query.with_for_update(skip_locked=True)  # two projectors share the work
    return {row.submission_id: row.seq for row in conn.execute(query).all()}


_CLEAR = delete(pending).where(
    and_(pending.c.submission_id == bindparam("sid"), pending.c.seq == bindparam("seen"))
)


def clear_marks(conn: Connection, marks: dict[str, int]) -> None:
    """Remove the marks projected — unless a newer append re-marked one meanwhile."""
    if marks:
        conn.execute(_CLEAR, [{"sid": sid, "seen": seq} for sid, seq in marks.items()])


async def defer_mark(conn: AsyncConnection, submission_id: str) -> None:
    """Send a mark whose projection failed to the back of the line (it stays marked)."""
    await conn.execute(
        pending.update()
        .where(pending.c.submission_id == submission_id)
        .values(marked_at=datetime.now(UTC))
    )


async def count_marks(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(pending))).scalar() or 0)
