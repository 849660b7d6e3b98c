"""Tables of the audit store: the append-only `audit_events` log and its projections.

The schema itself is created by the hand-written Alembic migration in `migrations/`;
these models are what the code reads and writes, and a test checks that both agree.
Every string column and JSON document goes through `SafeText`/`SafeString`/`SafeJSON`:
the escape of `streamworker.audit.escape` is applied here, at the store boundary, and
nowhere else.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

from streamworker.audit.escape import escape_json, escape_text, unescape_json, unescape_text

# Explicit constraint names keep migrations (and SQLite batch mode) reproducible.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite needs INTEGER (not BIGINT) for an autoincrementing rowid alias.
BigIdentity = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL stores `timestamptz`; SQLite has no time zones, so values are stored as
    naive UTC and given their zone back when read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass a timezone-aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class SafeText(TypeDecorator[str]):
    """Text stored losslessly: NUL and surrogates escaped on the way in, restored on the
    way out (PostgreSQL refuses NUL; no backend stores a lone surrogate)."""

    impl: TypeEngine[Any] | type[TypeEngine[Any]] = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return escape_text(value) if isinstance(value, str) else value

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        return unescape_text(value) if isinstance(value, str) else value


class SafeString(SafeText):
    """`SafeText` with a length (VARCHAR); the limit applies to the escaped text."""

    impl = String
    cache_ok = True


class SafeJSON(TypeDecorator[Any]):
    """A JSON document (JSONB on PostgreSQL) whose strings, keys included, are escaped
    like `SafeText`: PostgreSQL's `jsonb` refuses `\\u0000` and lone surrogates."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(JSONB() if dialect.name == "postgresql" else JSON())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return escape_json(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return unescape_json(value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: SafeJSON()}


class AuditEvent(Base):
    """One fact about a submission; never updated, never deleted."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigIdentity, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(SafeString(255), unique=True)
    submission_id: Mapped[str] = mapped_column(SafeString(128), index=True)
    kind: Mapped[str] = mapped_column(SafeString(32))
    attempt: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[str] = mapped_column(SafeText)
    occurred_at: Mapped[datetime]
    recorded_at: Mapped[datetime] = mapped_column(server_default=func.current_timestamp())
    payload: Mapped[dict[str, Any]]


class Execution(Base):
    """Projection: one row per submission, the contract's `executions` table."""

    __tablename__ = "executions"

    submission_id: Mapped[str] = mapped_column(SafeString(128), primary_key=True)
    language: Mapped[str | None] = mapped_column(SafeText)
    status: Mapped[str | None] = mapped_column(SafeString(32), index=True)
    judge0_status_id: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str | None] = mapped_column(SafeText)
    received_at: Mapped[datetime] = mapped_column(index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    cpu_time_s: Mapped[float | None] = mapped_column(Float)
    wall_time_s: Mapped[float | None] = mapped_column(Float)
    memory_kb: Mapped[int | None] = mapped_column(BigInteger)
    worker_id: Mapped[str | None] = mapped_column(SafeText)
    attempts: Mapped[int] = mapped_column(Integer)
    # `metadata` is reserved on declarative classes, hence the attribute name.
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata")
    result_event_id: Mapped[str | None] = mapped_column(SafeString(255))
    result_topic_offset: Mapped[int | None] = mapped_column(BigInteger)
    # The newest event's `occurred_at`, not the wall clock, so a replay is identical.
    updated_at: Mapped[datetime]


class ExecutionRun(Base):
    """Projection: one row per run object of the winning result (`stage` compile or run)."""

    __tablename__ = "execution_runs"

    submission_id: Mapped[str] = mapped_column(
        SafeString(128),
        ForeignKey("executions.submission_id", ondelete="CASCADE"),
        primary_key=True,
    )
    stage: Mapped[str] = mapped_column(SafeString(16), primary_key=True)
    ordinal: Mapped[int] = mapped_column(Integer, primary_key=True)
    test_case_id: Mapped[str | None] = mapped_column(SafeText)
    status: Mapped[str | None] = mapped_column(SafeString(32))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    signal: Mapped[str | None] = mapped_column(SafeString(32))
    cpu_time_s: Mapped[float | None] = mapped_column(Float)
    wall_time_s: Mapped[float | None] = mapped_column(Float)
    memory_kb: Mapped[int | None] = mapped_column(BigInteger)
    stdout_truncated: Mapped[bool] = mapped_column(Boolean)
    stderr_truncated: Mapped[bool] = mapped_column(Boolean)


class AuditQuarantine(Base):
    """Records the database refused, set aside so they cannot stall the log.

    `record` is the whole record as JSON text (its strings escaped like everywhere else;
    plain text, not JSON, so even a document the database's JSON type refuses fits).
    `resolved_at` is set once a requeue lands it in `audit_events`.
    """

    __tablename__ = "audit_quarantine"

    id: Mapped[int] = mapped_column(BigIdentity, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(SafeText)
    submission_id: Mapped[str] = mapped_column(SafeText, index=True)
    record: Mapped[str] = mapped_column(Text)
    error: Mapped[str] = mapped_column(SafeText)
    attempts: Mapped[int] = mapped_column(Integer)
    quarantined_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]


audit_events: Table = Base.metadata.tables["audit_events"]
executions: Table = Base.metadata.tables["executions"]
execution_runs: Table = Base.metadata.tables["execution_runs"]
audit_quarantine: Table = Base.metadata.tables["audit_quarantine"]


class GatewaySubmission(Base):
    """A gateway token (Judge0/Piston): whose it is, which submission (and, for a fused
    batch item, which test case) answers it, and the request as given (for `fields=*`)."""

    __tablename__ = "gateway_submissions"
    __table_args__ = (UniqueConstraint("tenant", "idempotency_key"),)

    token: Mapped[str] = mapped_column(SafeString(64), primary_key=True)
    tenant: Mapped[str] = mapped_column(SafeString(64))
    submission_id: Mapped[str] = mapped_column(SafeString(128), index=True)
    case_index: Mapped[int | None] = mapped_column(Integer)
    api: Mapped[str] = mapped_column(SafeString(16))
    idempotency_key: Mapped[str | None] = mapped_column(SafeString(255))
    created_at: Mapped[datetime] = mapped_column(index=True)
    request: Mapped[dict[str, Any]]


class AuditPendingProjection(Base):
    """Submissions whose events are appended but not yet projected.

    The hot path appends events and marks their submission here in one cheap
    transaction; the projector re-projects and removes the mark later. `seq` grows on
    every new mark, so a projector that read an older one never removes a newer one.
    Marks a crash left behind are projected at start-up.
    """

    __tablename__ = "audit_pending_projection"

    submission_id: Mapped[str] = mapped_column(SafeString(128), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    marked_at: Mapped[datetime]


audit_pending_projection: Table = Base.metadata.tables["audit_pending_projection"]
