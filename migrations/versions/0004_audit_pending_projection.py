"""Pending projections: submissions appended to the log but not yet projected, so the
worker's hot path waits only for a cheap append and a crash loses no projection.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30

Hand-written: must run on PostgreSQL (asyncpg) and SQLite (aiosqlite). Types mirror
`streamworker.audit.models.AuditPendingProjection`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_pending_projection",
        sa.Column("submission_id", sa.String(128), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("submission_id", name="pk_audit_pending_projection"),
    )


def downgrade() -> None:
    op.drop_table("audit_pending_projection")
