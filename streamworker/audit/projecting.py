"""Bringing `executions` up to the log, as synchronous functions of one connection.

Synchronous so that one implementation serves both backends: SQLite runs a whole
projection transaction in one thread hop (`sqlite_lane`), PostgreSQL runs the same
function through `AsyncConnection.run_sync`. The store decides which; nothing here
knows about event loops.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

from sqlalchemy import Connection, Row, delete, select, text
from sqlalchemy.dialects import postgresql, sqlite

from streamworker.audit.models import audit_events, execution_runs, executions
from streamworker.audit.pending import clear_marks, take_marks
from streamworker.audit.projection import Projection, project_submission
from streamworker.audit.records import AuditKind, AuditRecord

log = logging.getLogger(__name__)

_KNOWN_KINDS = frozenset(kind.value for kind in AuditKind)
_LOCK_ALL = text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS BIGINT[])) AS t(k)")


def lock_key(submission_id: str) -> int:
    """A stable signed 64-bit advisory-lock key (Python's `hash` is salted per process)."""
    name = submission_id.encode("utf-8", "surrogatepass")  # ids may hold lone surrogates
    digest = hashlib.blake2b(name, digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_submissions(conn: Connection, dialect: str, submission_ids: Iterable[str]) -> None:
    """Two workers appending for one submission must not project from each other's
    uncommitted halves. SQLite takes its single write lock at the first write;
    PostgreSQL needs per-submission locks, taken in a fixed order (no deadlocks) and in
    one statement: the keys come sorted, and a function scan over unnest takes them in
    array order."""
    if dialect != "postgresql":
        return
    keys = sorted({lock_key(sid) for sid in submission_ids})
    if keys:
        conn.execute(_LOCK_ALL, {"keys": keys})


def known_kind(kind: str, event_id: str) -> bool:
    """Whether this version can project `kind`; a newer version's kinds are skipped (and
    said so), never a crash."""
    if kind in _KNOWN_KINDS:
        return True
    log.warning("skipping audit event %s of unknown kind %r", event_id, kind)
    return False


def records_of(rows: Iterable[Row[Any]]) -> list[AuditRecord]:
    """Rows of `audit_events` as records; kinds this version does not know are skipped."""
    records = []
    for row in rows:
        if not known_kind(row.kind, row.event_id):
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


def event_rows(conn: Connection, submission_ids: Sequence[str]) -> list[Row[Any]]:
    """The submissions' events in append order."""
    query = (
        select(audit_events)
        .where(audit_events.c.submission_id.in_(submission_ids))
        .order_by(audit_events.c.id)
    )
    return list(conn.execute(query).all())


@cache
def _projection_upsert(dialect: str) -> Any:
    stmt = (postgresql if dialect == "postgresql" else sqlite).insert(executions)
    return stmt.on_conflict_do_update(
        index_elements=[executions.c.submission_id],
        set_={c.name: stmt.excluded[c.key] for c in executions.c if not c.primary_key},
    )


def write_projections(conn: Connection, dialect: str, projections: Sequence[Projection]) -> None:
    """Several submissions' rows in three statements (upsert, delete, insert), each
    compiled once per process."""
    if not projections:
        return
    conn.execute(_projection_upsert(dialect), [p.execution for p in projections])
    sids = [p.execution["submission_id"] for p in projections]
    conn.execute(delete(execution_runs).where(execution_runs.c.submission_id.in_(sids)))
    runs = [run for p in projections for run in p.runs]
    if runs:
        conn.execute(execution_runs.insert(), runs)


def reproject(conn: Connection, dialect: str, submission_ids: Sequence[str]) -> int:
    """Project these submissions from all of their events (no marks involved); how many
    had any."""
    grouped: dict[str, list[AuditRecord]] = {sid: [] for sid in submission_ids}
    for record in records_of(event_rows(conn, list(submission_ids))):
        grouped[record.submission_id].append(record)
    projections = [project_submission(r) for r in grouped.values() if r]
    write_projections(conn, dialect, projections)
    return len(projections)


def project_marked(
    conn: Connection, dialect: str, limit: int, only: Sequence[str] | None = None
) -> int:
    """Project up to `limit` marked submissions (oldest first) and clear their marks —
    unless a newer append re-marked one meanwhile; how many were projected."""
    marks = take_marks(conn, dialect, limit, only)
    if not marks:
        return 0
    lock_submissions(conn, dialect, marks)
    reproject(conn, dialect, list(marks))
    clear_marks(conn, marks)
    return len(marks)
