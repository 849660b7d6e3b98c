"""The audit store: an append-only event log in SQL and the projections rebuilt from it.

`records` (facts, pure) → `projection` (rows, pure) → `store` (SQL) ; `migrate` runs Alembic.
`escape` keeps every string storable (applied by the column types in `models`); `writer`
queues appends off the critical path, retries outages and quarantines what the database
refuses (`refusal`, `quarantine`); `status` is its part in `/health` (docs/audit.md).
"""

from streamworker.audit.migrate import downgrade, head_revision, upgrade
from streamworker.audit.projection import (
    Projection,
    project_all,
    project_runs,
    project_submission,
    winning_result,
)
from streamworker.audit.records import (
    AuditKind,
    AuditRecord,
    fact_event_id,
    published_record,
    received_record,
    result_record,
    started_record,
)
from streamworker.audit.store import AuditStore

__all__ = [
    "AuditKind",
    "AuditRecord",
    "AuditStore",
    "Projection",
    "downgrade",
    "fact_event_id",
    "head_revision",
    "project_all",
    "project_runs",
    "project_submission",
    "published_record",
    "received_record",
    "result_record",
    "started_record",
    "upgrade",
    "winning_result",
]
