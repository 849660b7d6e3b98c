"""The SQLite lane's hot path in plain `sqlite3`: append, look up, project.

Why not SQLAlchemy here: with the thread hops gone (`sqlite_lane`), what was left of
the audit log's cost per submission was SQLAlchemy's own work around each statement
(cache keys, compiled-statement setup, type processing, result proxies): about four
fifths of it, against one fifth for SQLite itself (`python -m
streamworker.bench.audit_cost`, profiled). These functions do exactly what
`pending.append_events`, `projecting.event_rows`/`records_of` and
`projecting.project_marked` do, on the same tables and in the same stored forms, so a
file written by either reads the same through both; `tests/unit/test_sqlite_plain.py`
runs both on the same records and compares every row. PostgreSQL keeps the SQLAlchemy
versions.

The stored forms are the models' column types, applied per column from the tables'
metadata (`_Codec`): strings escaped (`escape`), JSON as `json.dumps` of the escaped
document, timestamps as SQLAlchemy's SQLite text (naive UTC, microseconds), booleans 0/1.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, Table
from sqlalchemy.types import TypeDecorator

from streamworker.audit.escape import escape_json, escape_text, unescape_json, unescape_text
from streamworker.audit.models import (
    SafeJSON,
    SafeText,
    UTCDateTime,
    audit_events,
    execution_runs,
    executions,
)
from streamworker.audit.pending import insert_row
from streamworker.audit.projecting import known_kind
from streamworker.audit.projection import Projection, project_submission
from streamworker.audit.records import AuditKind, AuditRecord

log = logging.getLogger(__name__)

IN_CHUNK = 500
"""Values per `IN (…)` list: far below SQLite's bound on parameters per statement."""


def stored_time(value: datetime) -> str:
    """`UTCDateTime`'s SQLite form: naive UTC text with microseconds (SQLAlchemy's)."""
    if value.tzinfo is None:
        raise ValueError("naive datetimes are ambiguous; pass a timezone-aware one")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def read_time(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _text_in(value: Any) -> Any:
    return escape_text(value) if isinstance(value, str) else value


def _json_in(value: Any) -> str:
    return json.dumps(escape_json(value))


def _time_in(value: datetime | None) -> str | None:
    return None if value is None else stored_time(value)


def _bool_in(value: Any) -> Any:
    return None if value is None else int(bool(value))


def _plain(value: Any) -> Any:
    return value


def _converter(column_type: Any) -> Callable[[Any], Any]:
    """How a value of this column type is stored (the order matters: subclasses first)."""
    if isinstance(column_type, UTCDateTime):
        return _time_in
    if isinstance(column_type, SafeJSON):
        return _json_in
    if isinstance(column_type, SafeText):
        return _text_in
    if isinstance(column_type, Boolean):
        return _bool_in
    if isinstance(column_type, TypeDecorator):
        raise TypeError(f"no plain SQLite form for {type(column_type).__name__}")
    return _plain


class _Codec:
    """One table's INSERT in plain SQL and the stored form of each of its columns."""

    def __init__(self, table: Table, columns: Sequence[str]) -> None:
        self.columns = tuple(columns)
        self._convert = tuple(_converter(table.c[name].type) for name in self.columns)
        names = ", ".join(f'"{name}"' for name in self.columns)
        marks = ", ".join("?" for _ in self.columns)
        self.insert = f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})'

    def row(self, values: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(
            convert(values[name]) for name, convert in zip(self.columns, self._convert, strict=True)
        )


_EVENT_COLUMNS = ("event_id", "submission_id", "kind", "attempt", "worker_id", "occurred_at")
_EVENTS = _Codec(audit_events, (*_EVENT_COLUMNS, "payload"))
_APPEND = _EVENTS.insert + ' ON CONFLICT ("event_id") DO NOTHING'
_MARK = (
    'INSERT INTO "audit_pending_projection" ("submission_id", "seq", "marked_at") '
    'VALUES (?, 1, ?) ON CONFLICT ("submission_id") DO UPDATE SET '
    '"seq" = "audit_pending_projection"."seq" + 1, "marked_at" = excluded."marked_at"'
)
_CLEAR = 'DELETE FROM "audit_pending_projection" WHERE "submission_id" = ? AND "seq" = ?'

_EXECUTIONS = _Codec(executions, [c.name for c in executions.c])
_UPSERT_EXECUTION = (
    _EXECUTIONS.insert
    + ' ON CONFLICT ("submission_id") DO UPDATE SET '
    + ", ".join(f'"{c.name}" = excluded."{c.name}"' for c in executions.c if not c.primary_key)
)
_RUNS = _Codec(execution_runs, [c.name for c in execution_runs.c])


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), IN_CHUNK):
        yield values[start : start + IN_CHUNK]


def _marks(count: int) -> str:
    return ", ".join("?" for _ in range(count))


def append_events(conn: sqlite3.Connection, records: Sequence[AuditRecord]) -> list[bool]:
    """`pending.append_events` for SQLite: insert the new events and mark their
    submissions; one `inserted` flag per record (a repeat within `records` is new once)."""
    inserted = []
    for record in records:
        values = _EVENTS.row(insert_row(record))
        inserted.append(conn.execute(_APPEND, values).rowcount == 1)
    touched = sorted({r.submission_id for r, new in zip(records, inserted, strict=True) if new})
    if touched:
        now = stored_time(datetime.now(UTC))
        conn.executemany(_MARK, [(escape_text(sid), now) for sid in touched])
    return inserted


def event_records(conn: sqlite3.Connection, submission_ids: Sequence[str]) -> list[AuditRecord]:
    """`records_of(event_rows(…))` for SQLite: the submissions' events in append order;
    kinds this version does not know are skipped (a newer version wrote them)."""
    rows: list[tuple[Any, ...]] = []
    for chunk in _chunks(list(submission_ids)):
        rows += conn.execute(
            'SELECT "id", "event_id", "submission_id", "kind", "attempt", "worker_id", '
            f'"occurred_at", "payload" FROM "audit_events" WHERE "submission_id" IN '
            f"({_marks(len(chunk))})",
            [escape_text(sid) for sid in chunk],
        ).fetchall()
    rows.sort(key=lambda row: row[0])
    records = []
    for _, event_id, submission_id, kind, attempt, worker_id, occurred_at, payload in rows:
        if not known_kind(kind, event_id):
            continue
        records.append(
            AuditRecord(
                event_id=unescape_text(event_id),
                submission_id=unescape_text(submission_id),
                kind=AuditKind(kind),
                attempt=attempt,
                worker_id=unescape_text(worker_id),
                occurred_at=read_time(occurred_at),
                payload=unescape_json(json.loads(payload)),
            )
        )
    return records


def take_marks(
    conn: sqlite3.Connection, limit: int, only: Sequence[str] | None = None
) -> dict[str, int]:
    """Up to `limit` marked submissions (oldest first, or just `only`) with their `seq`;
    keyed by the stored (escaped) id."""
    query = 'SELECT "submission_id", "seq" FROM "audit_pending_projection"'
    if only is None:
        rows = conn.execute(f'{query} ORDER BY "marked_at" LIMIT ?', (limit,)).fetchall()
        return dict(rows)
    marks: dict[str, int] = {}
    for chunk in _chunks([escape_text(sid) for sid in only]):
        where = f' WHERE "submission_id" IN ({_marks(len(chunk))}) ORDER BY "marked_at"'
        marks.update(conn.execute(query + where, chunk).fetchall())
    return dict(list(marks.items())[:limit])


def write_projections(conn: sqlite3.Connection, projections: Sequence[Projection]) -> None:
    """`projecting.write_projections` for SQLite: upsert, delete the runs, insert them."""
    if not projections:
        return
    conn.executemany(_UPSERT_EXECUTION, [_EXECUTIONS.row(p.execution) for p in projections])
    sids = [escape_text(p.execution["submission_id"]) for p in projections]
    for chunk in _chunks(sids):
        conn.execute(
            f'DELETE FROM "execution_runs" WHERE "submission_id" IN ({_marks(len(chunk))})', chunk
        )
    runs = [_RUNS.row(run) for p in projections for run in p.runs]
    if runs:
        conn.executemany(_RUNS.insert, runs)


def project_marked(conn: sqlite3.Connection, limit: int, only: Sequence[str] | None = None) -> int:
    """`projecting.project_marked` for SQLite: project up to `limit` marked submissions
    and clear their marks, unless a newer append re-marked one meanwhile. The caller's
    transaction holds SQLite's write lock from its start (no other writer in between)."""
    marks = take_marks(conn, limit, only)
    if not marks:
        return 0
    stored_ids = list(marks)
    grouped: dict[str, list[AuditRecord]] = {}
    for record in event_records(conn, [unescape_text(sid) for sid in stored_ids]):
        grouped.setdefault(record.submission_id, []).append(record)
    write_projections(conn, [project_submission(r) for r in grouped.values()])
    conn.executemany(_CLEAR, list(marks.items()))
    return len(marks)
