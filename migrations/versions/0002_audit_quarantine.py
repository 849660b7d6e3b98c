"""Audit quarantine: records the database refused, kept for the operator to requeue.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

Hand-written: must run on PostgreSQL (asyncpg) and SQLite (aiosqlite). Types mirror
`streamworker.audit.models.AuditQuarantine`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_quarantine",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("submission_id", sa.Text(), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("quarantined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_quarantine"),
    )
    op.create_index("ix_audit_quarantine_submission_id", "audit_quarantine", ["submission_id"])


def downgrade() -> None:
    op.drop_index("ix_audit_quarantine_submission_id", table_name="audit_quarantine")
    op.drop_table("audit_quarantine")
