"""Projections: the `executions` and `execution_runs` rows folded from the event log.

Pure and deterministic: the rows depend on the *set* of events only, never on delivery
order or duplicates, so an incremental update and a full replay always agree. Rules:
the result event (`finished`/`invalid`) with the highest attempt wins (ties: later
`occurred_at`, then larger `event_id`); any result beats `received`/`started`;
without a result the row is in progress (`status` NULL).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from streamworker.audit.records import RESULT_KINDS, AuditKind, AuditRecord

EXECUTION_COLUMNS = (
    "submission_id",
    "language",
    "status",
    "judge0_status_id",
    "message",
    "received_at",
    "started_at",
    "finished_at",
    "cpu_time_s",
    "wall_time_s",
    "memory_kb",
    "worker_id",
    "attempts",
    "metadata",
    "result_event_id",
    "result_topic_offset",
    "updated_at",
)
RUN_COLUMNS = (
    "submission_id",
    "stage",
    "ordinal",
    "test_case_id",
    "status",
    "exit_code",
    "signal",
    "cpu_time_s",
    "wall_time_s",
    "memory_kb",
    "stdout_truncated",
    "stderr_truncated",
)

# Within one attempt, later lifecycle steps count as "newer" whatever their clocks say.
_KIND_RANK: dict[str, int] = {
    AuditKind.RECEIVED: 0,
    AuditKind.STARTED: 1,
    AuditKind.PUBLISHED: 3,
    AuditKind.INVALID: 4,
    AuditKind.FINISHED: 4,
    AuditKind.CALLBACK: 5,
}


class Projection(NamedTuple):
    """The projected rows of one submission."""

    execution: dict[str, Any]
    runs: list[dict[str, Any]]


def _recency(record: AuditRecord) -> tuple[int, int, datetime, str]:
    return (record.attempt, _KIND_RANK[record.kind], record.occurred_at, record.event_id)


def _content_key(record: AuditRecord) -> tuple[datetime, int, str, str, str]:
    payload = json.dumps(record.payload, sort_keys=True, default=str)
    return (record.occurred_at, record.attempt, str(record.kind), record.worker_id, payload)


def dedupe(records: Iterable[AuditRecord]) -> list[AuditRecord]:
    """One record per `event_id`, sorted by `event_id`.

    Should two differing records share an id (a producer bug), the choice between them
    still does not depend on order.
    """
    chosen: dict[str, AuditRecord] = {}
    for record in records:
        seen = chosen.get(record.event_id)
        if seen is None or _content_key(record) < _content_key(seen):
            chosen[record.event_id] = record
    return [chosen[event_id] for event_id in sorted(chosen)]


def winning_result(records: Iterable[AuditRecord]) -> AuditRecord | None:
    """The result event that answers the submission, or None while it is unanswered."""
    results = [r for r in dedupe(records) if r.kind in RESULT_KINDS]
    if not results:
        return None
    return max(results, key=lambda r: (r.attempt, r.occurred_at, r.event_id))


def _parse_time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else None
    return None


_BIGINT = range(-(2**63), 2**63)
_INTEGER = range(-(2**31), 2**31)
"""What BIGINT and INTEGER columns hold on PostgreSQL (SQLite: BIGINT's range for both).
A JSON number outside projects as NULL: the database would refuse the whole row, and the
submission's projection would fail on every try."""


def _int(value: object, bounds: range = _BIGINT) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value in bounds:
        return value
    return None


def _float(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # an integer beyond any float (JSON allows 10**400)
            return None
    return None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _run_row(
    submission_id: str, stage: str, ordinal: int, run: Mapping[str, Any]
) -> dict[str, Any]:
    test_case_id = run.get("test_case_id")
    return {
        "submission_id": submission_id,
        "stage": stage,
        "ordinal": ordinal,
        "test_case_id": None if test_case_id is None else str(test_case_id),
        "status": _str(run.get("status")),
        "exit_code": _int(run.get("exit_code"), _INTEGER),
        "signal": _str(run.get("signal")),
        "cpu_time_s": _float(run.get("cpu_time_s")),
        "wall_time_s": _float(run.get("wall_time_s")),
        "memory_kb": _int(run.get("memory_kb")),
        "stdout_truncated": bool(run.get("stdout_truncated", False)),
        "stderr_truncated": bool(run.get("stderr_truncated", False)),
    }


def project_runs(result: AuditRecord | None) -> list[dict[str, Any]]:
    """`execution_runs` rows of a result: its compile run (if any), then each run, in order."""
    if result is None:
        return []
    rows: list[dict[str, Any]] = []
    compile_run = result.payload.get("compile")
    if isinstance(compile_run, Mapping):
        rows.append(_run_row(result.submission_id, "compile", 0, compile_run))
    runs = result.payload.get("runs")
    if isinstance(runs, Sequence) and not isinstance(runs, str):
        for ordinal, run in enumerate(r for r in runs if isinstance(r, Mapping)):
            rows.append(_run_row(result.submission_id, "run", ordinal, run))
    return rows


def _total(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _peak(values: Iterable[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def _latest(records: Sequence[AuditRecord], kind: AuditKind) -> AuditRecord | None:
    of_kind = [r for r in records if r.kind == kind]
    return max(of_kind, key=_recency) if of_kind else None


def _published_offset(records: Sequence[AuditRecord], result: AuditRecord) -> int | None:
    offsets = [
        offset
        for r in records
        if r.kind == AuditKind.PUBLISHED
        and r.payload.get("result_event_id") == result.event_id
        and (offset := _int(r.payload.get("offset"))) is not None
    ]
    return min(offsets) if offsets else None


def project_submission(records: Iterable[AuditRecord]) -> Projection:
    """Fold every event of one submission into its `executions` and `execution_runs` rows."""
    events = dedupe(records)
    if not events:
        raise ValueError("cannot project a submission without events")
    submission_ids = {r.submission_id for r in events}
    if len(submission_ids) != 1:
        raise ValueError(f"events of several submissions: {sorted(submission_ids)}")
    (submission_id,) = submission_ids

    result = winning_result(events)
    latest = max(events, key=_recency)
    received = [r for r in events if r.kind == AuditKind.RECEIVED]
    first_received = min(received, key=lambda r: (r.occurred_at, r.event_id), default=None)
    latest_received = _latest(events, AuditKind.RECEIVED)
    latest_started = _latest(events, AuditKind.STARTED)
    runs = project_runs(result)
    measured = [r for r in runs if r["stage"] == "run"]

    def received_time() -> datetime:
        if first_received is not None:
            stamp = _parse_time(first_received.payload.get("received_at"))
            return stamp or first_received.occurred_at
        return min(r.occurred_at for r in events)

    fallback_language = _str(latest_received.payload.get("language")) if latest_received else None
    fallback_metadata = latest_received.payload.get("metadata") if latest_received else None
    row: dict[str, Any] = {
        "submission_id": submission_id,
        "attempts": max(r.attempt for r in events),
        "updated_at": max(r.occurred_at for r in events),
        "cpu_time_s": _total(r["cpu_time_s"] for r in measured),
        "wall_time_s": _total(r["wall_time_s"] for r in measured),
        "memory_kb": _peak(r["memory_kb"] for r in measured),
    }
    if result is not None:
        # The row mirrors the published result, so SQL and Kafka consumers agree.
        payload = result.payload
        metadata = payload.get("metadata")
        row |= {
            "language": _str(payload.get("language")) or fallback_language,
            "status": _str(payload.get("status")),
            "judge0_status_id": _int(payload.get("judge0_status_id"), _INTEGER),
            "message": _str(payload.get("message")),
            "received_at": _parse_time(payload.get("received_at")) or received_time(),
            "started_at": _parse_time(payload.get("started_at")),
            "finished_at": _parse_time(payload.get("finished_at")) or result.occurred_at,
            "worker_id": result.worker_id,
            "metadata": dict(metadata) if isinstance(metadata, Mapping) else {},
            "result_event_id": result.event_id,
            "result_topic_offset": _published_offset(events, result),
        }
    else:
        started_at = None
        if latest_started is not None:
            stamp = _parse_time(latest_started.payload.get("started_at"))
            started_at = stamp or latest_started.occurred_at
        row |= {
            "language": fallback_language,
            "status": None,
            "judge0_status_id": None,
            "message": None,
            "received_at": received_time(),
            "started_at": started_at,
            "finished_at": None,
            "worker_id": latest.worker_id,
            "metadata": dict(fallback_metadata) if isinstance(fallback_metadata, Mapping) else {},
            "result_event_id": None,
            "result_topic_offset": None,
        }
    return Projection({column: row[column] for column in EXECUTION_COLUMNS}, runs)


def project_all(records: Iterable[AuditRecord]) -> dict[str, Projection]:
    """Projections of every submission in `records`, keyed by submission id."""
    grouped: dict[str, list[AuditRecord]] = defaultdict(list)
    for record in records:
        grouped[record.submission_id].append(record)
    return {sid: project_submission(grouped[sid]) for sid in sorted(grouped)}
