"""Audit store: the append-only event log and its executions projections.

Revision ID: 0001
Revises:
Create Date: 2024-11-28

Hand-written: must run on PostgreSQL (asyncpg) and SQLite (aiosqlite). Types mirror
`streamworker.audit.models`; a test compares the migrated schema with the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("submission_id", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.current_timestamp(),
            nullable=False,
        ),
        sa.Column("payload", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
        sa.UniqueConstraint("event_id", name="uq_audit_events_event_id"),
    )
    op.create_index("ix_audit_events_submission_id", "audit_events", ["submission_id"])

    op.create_table(
        "executions",
        sa.Column("submission_id", sa.String(128), nullable=False),
        sa.Column("language", sa.Text(), nullable=True),
        sa.Column("status", sa.String(32), nullable=True),
        sa.Column("judge0_status_id", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cpu_time_s", sa.Float(), nullable=True),
        sa.Column("wall_time_s", sa.Float(), nullable=True),
        sa.Column("memory_kb", sa.BigInteger(), nullable=True),
        sa.Column("worker_id", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("metadata", _JSON, nullable=False),
        sa.Column("result_event_id", sa.String(255), nullable=True),
        sa.Column("result_topic_offset", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("submission_id", name="pk_executions"),
    )
    op.create_index("ix_executions_status", "executions", ["status"])
    op.create_index("ix_executions_received_at", "executions", ["received_at"])

    op.create_table(
        "execution_runs",
        sa.Column("submission_id", sa.String(128), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("test_case_id", sa.Text(), nullable=True),
        sa.Column("status", sa.String(32), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("signal", sa.String(32), nullable=True),
        sa.Column("cpu_time_s", sa.Float(), nullable=True),
        sa.Column("wall_time_s", sa.Float(), nullable=True),
        sa.Column("memory_kb", sa.BigInteger(), nullable=True),
        sa.Column("stdout_truncated", sa.Boolean(), nullable=False),
        sa.Column("stderr_truncated", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("submission_id", "stage", "ordinal", name="pk_execution_runs"),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["executions.submission_id"],
            name="fk_execution_runs_submission_id_executions",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("execution_runs")
    op.drop_index("ix_executions_received_at", table_name="executions")
    op.drop_index("ix_executions_status", table_name="executions")
    op.drop_table("executions")
    op.drop_index("ix_audit_events_submission_id", table_name="audit_events")
    op.drop_table("audit_events")
