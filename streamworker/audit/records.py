"""Audit events: the append-only facts every projection is rebuilt from.

Pure data and pure constructors, no I/O. Event ids are deterministic where the fact is
(a submission's receipt, start or failure at a given attempt), so a redelivered Kafka
message writes nothing twice; a result's audit event reuses the result's own `event_id`.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from streamworker.contract import ResultEvent, Status, Submission, iso

# A fixed namespace so the same fact always gets the same event id, on every worker.
_EVENT_NAMESPACE = uuid.UUID("4f0b7e55-6a4e-4c0e-9a8e-5d3c2b1a0f99")


class AuditKind(StrEnum):
    """What happened to a submission.

    There is no "failed" fact: an attempt that ends at all ends in a result (an
    `internal_error` after the retries), and one that crashed writes nothing more; its
    `started` without a result is how the next attempt (and an operator) sees it.
    """

    RECEIVED = "received"
    STARTED = "started"
    FINISHED = "finished"
    INVALID = "invalid"
    PUBLISHED = "published"
    CALLBACK = "callback"
    """One try of the gateway's callback for a token (never part of a projection)."""


RESULT_KINDS = frozenset({AuditKind.FINISHED, AuditKind.INVALID})


@dataclass(frozen=True)
class AuditRecord:
    """One row of the event log; `payload` is JSON-safe data specific to `kind`.

    `kind` accepts a plain string and is always stored as an `AuditKind` (a `str`).
    """

    event_id: str
    submission_id: str
    kind: str
    attempt: int
    worker_id: str
    occurred_at: datetime
    payload: Mapping[str, Any]

    def __post_init__(self) -> None:
        # Coerce plain strings (e.g. read back from SQL) and reject what would corrupt the log.
        object.__setattr__(self, "kind", AuditKind(self.kind))
        if not self.event_id or not self.submission_id:
            raise ValueError("event_id and submission_id must be non-empty")
        if self.attempt < 0:
            raise ValueError(f"attempt must not be negative, got {self.attempt}")
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")


def _uuid5(name: str) -> str:
    """`uuid.uuid5(_EVENT_NAMESPACE, name)`, also for a name holding lone surrogates (JSON
    can carry them in a submission id): encoded with `surrogatepass`, which is plain
    UTF-8, and so the very same id, for every other name."""
    digest = hashlib.sha1(_EVENT_NAMESPACE.bytes + name.encode("utf-8", "surrogatepass"))
    return str(uuid.UUID(bytes=digest.digest()[:16], version=5))


def fact_event_id(submission_id: str, kind: AuditKind, attempt: int) -> str:
    """The deterministic event id of a per-attempt fact."""
    return _uuid5(f"{submission_id}\x00{kind.value}\x00{attempt}")


def received_record(
    submission: Submission,
    *,
    worker_id: str,
    attempt: int,
    received_at: datetime,
    event_id: str | None = None,
) -> AuditRecord:
    """A submission was taken off the topic; records what was asked, minus code and data.

    Source, stdin and expected outputs stay out of the log: they can be large and the
    expected outputs are the problem setter's secret.
    """
    payload: dict[str, Any] = {
        "language": submission.language,
        "metadata": dict(submission.metadata),
        "received_at": iso(received_at),
        "schema_version": submission.schema_version,
        "files": [] if submission.from_source else [f.path for f in submission.files],
        "entrypoint": submission.entrypoint,
        "args": list(submission.args),
        "test_case_ids": [case.id for case in submission.test_cases],
        "has_expected_output": submission.expected_output is not None,
        "limits": dict(submission.limits),
        "compare": submission.compare.value,
    }
    return AuditRecord(
        event_id=event_id or fact_event_id(submission.submission_id, AuditKind.RECEIVED, attempt),
        submission_id=submission.submission_id,
        kind=AuditKind.RECEIVED,
        attempt=attempt,
        worker_id=worker_id,
        occurred_at=received_at,
        payload=payload,
    )


def started_record(
    submission_id: str,
    *,
    worker_id: str,
    attempt: int,
    started_at: datetime,
    image: str | None,
    event_id: str | None = None,
) -> AuditRecord:
    """Execution began in `image`."""
    return AuditRecord(
        event_id=event_id or fact_event_id(submission_id, AuditKind.STARTED, attempt),
        submission_id=submission_id,
        kind=AuditKind.STARTED,
        attempt=attempt,
        worker_id=worker_id,
        occurred_at=started_at,
        payload={"started_at": iso(started_at), "image": image},
    )


def result_record(result: ResultEvent) -> AuditRecord:
    """The published result; the payload is `result.to_dict()`, exactly as published."""
    kind = AuditKind.INVALID if result.status is Status.INVALID_SUBMISSION else AuditKind.FINISHED
    return AuditRecord(
        event_id=result.event_id,
        submission_id=result.submission_id,
        kind=kind,
        attempt=result.attempt,
        worker_id=result.worker_id,
        occurred_at=result.finished_at,
        payload=result.to_dict(),
    )


def published_record(
    result: ResultEvent,
    *,
    topic: str,
    partition: int,
    offset: int,
    published_at: datetime,
) -> AuditRecord:
    """Where the result landed on Kafka; fills `executions.result_topic_offset`."""
    return AuditRecord(
        event_id=_uuid5(f"published\x00{result.event_id}"),
        submission_id=result.submission_id,
        kind=AuditKind.PUBLISHED,
        attempt=result.attempt,
        worker_id=result.worker_id,
        occurred_at=published_at,
        payload={
            "result_event_id": result.event_id,
            "topic": topic,
            "partition": partition,
            "offset": offset,
        },
    )


def record_from_published(payload: Mapping[str, Any]) -> AuditRecord:
    """The audit record of a result read back from the results topic (for re-projection)."""
    status = Status(payload["status"])
    kind = AuditKind.INVALID if status is Status.INVALID_SUBMISSION else AuditKind.FINISHED
    finished = datetime.fromisoformat(str(payload["finished_at"]).replace("Z", "+00:00"))
    return AuditRecord(
        event_id=str(payload["event_id"]),
        submission_id=str(payload["submission_id"]),
        kind=kind,
        attempt=int(payload.get("attempt") or 1),
        worker_id=str(payload.get("worker_id") or ""),
        occurred_at=finished,
        payload=dict(payload),
    )
