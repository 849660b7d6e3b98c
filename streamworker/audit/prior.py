"""What the audit log already knows about a submission: its answer and its attempts.

Pure: folded from audit records, so the pipeline can decide to skip, republish or retry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from streamworker.audit.projection import winning_result
from streamworker.audit.records import AuditKind, AuditRecord


@dataclass(frozen=True)
class Prior:
    answer: Mapping[str, Any] | None
    """The published result that answered the submission, if any."""
    attempts: int
    """The highest attempt that started (0 when none did)."""


NOTHING = Prior(answer=None, attempts=0)


def prior_from(records: Iterable[AuditRecord]) -> Prior:
    records = list(records)
    result = winning_result(records)
    started = [r.attempt for r in records if r.kind in (AuditKind.STARTED, AuditKind.RECEIVED)]
    return Prior(
        answer=dict(result.payload) if result is not None else None,
        attempts=max(started, default=0),
    )
