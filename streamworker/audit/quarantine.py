"""The `audit_quarantine` table: refused records, kept whole until a requeue lands them.

A record is stored as JSON text (`record_json`): its strings escaped as everywhere in
the store, values JSON cannot represent kept as their `repr` (a payload is meant to be
JSON-safe already), so storing it cannot fail for the reason the record was refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from streamworker.audit.escape import escape_json, unescape_json
from streamworker.audit.models import audit_quarantine
from streamworker.audit.records import AuditRecord
from streamworker.contract import now_utc


def record_json(record: AuditRecord) -> str:
    """`record` as JSON text, strings escaped (the inverse is `record_from_json`)."""
    document = {
        "event_id": record.event_id,
        "submission_id": record.submission_id,
        "kind": str(record.kind),
        "attempt": record.attempt,
        "worker_id": record.worker_id,
        "occurred_at": record.occurred_at.isoformat(),
        "payload": record.payload,
    }
    return json.dumps(escape_json(document), ensure_ascii=False, default=repr)


def record_from_json(text: str) -> AuditRecord:
    """The record stored by `record_json`; raises ValueError/KeyError/TypeError if malformed."""
    document = unescape_json(json.loads(text))
    payload = document["payload"]
    if not isinstance(payload, Mapping):
        raise TypeError(f"payload must be an object, got {type(payload).__name__}")
    return AuditRecord(
        event_id=str(document["event_id"]),
        submission_id=str(document["submission_id"]),
        kind=str(document["kind"]),
        attempt=int(document["attempt"]),
        worker_id=str(document["worker_id"]),
        occurred_at=datetime.fromisoformat(str(document["occurred_at"])),
        payload=dict(payload),
    )


@dataclass(frozen=True)
class Quarantined:
    """One unresolved row of `audit_quarantine`."""

    id: int
    event_id: str
    submission_id: str
    record: str
    """JSON text; `record_from_json` turns it back into the record."""
    error: str
    attempts: int
    quarantined_at: datetime


class QuarantineStore:
    """Reads and writes `audit_quarantine` on the audit store's engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add(self, record: AuditRecord, error: str) -> int:
        """Set `record` aside with the reason it was refused; returns the row id."""
        values: dict[str, Any] = {
            "event_id": record.event_id,
            "submission_id": record.submission_id,
            "record": record_json(record),
            "error": error,
            "attempts": 1,
            "quarantined_at": now_utc(),
        }
        async with self.engine.begin() as conn:
            result = await conn.execute(
                audit_quarantine.insert().values(values).returning(audit_quarantine.c.id)
            )
            return int(result.scalar_one())

    async def unresolved(self, limit: int | None = None) -> list[Quarantined]:
        """Rows not yet requeued successfully, oldest first."""
        query = (
            select(audit_quarantine)
            .where(audit_quarantine.c.resolved_at.is_(None))
            .order_by(audit_quarantine.c.id)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            Quarantined(
                id=row.id,
                event_id=row.event_id,
                submission_id=row.submission_id,
                record=row.record,
                error=row.error,
                attempts=row.attempts,
                quarantined_at=row.quarantined_at,
            )
            for row in rows
        ]

    async def count_unresolved(self) -> int:
        query = (
            select(func.count())
            .select_from(audit_quarantine)
            .where(audit_quarantine.c.resolved_at.is_(None))
        )
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def resolve(self, row_id: int) -> None:
        """The row's record is in the log now."""
        await self._update(row_id, resolved_at=now_utc())

    async def refused_again(self, row_id: int, error: str) -> None:
        """A requeue was refused too: keep the row, with the newest reason."""
        await self._update(row_id, error=error, attempts=audit_quarantine.c.attempts + 1)

    async def _update(self, row_id: int, **values: Any) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(audit_quarantine).where(audit_quarantine.c.id == row_id).values(values)
            )
