"""Gateway submissions: a Judge0/Piston token → its tenant, its submission and the request
as given, so any gateway replica answers a GET right after the POST ("In Queue", not 404).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

Hand-written: must run on PostgreSQL (asyncpg) and SQLite (aiosqlite). Types mirror
`streamworker.audit.models.GatewaySubmission`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "gateway_submissions",
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("submission_id", sa.String(128), nullable=False),
        sa.Column("case_index", sa.Integer(), nullable=True),
        sa.Column("api", sa.String(16), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request", _JSON, nullable=False),
        sa.PrimaryKeyConstraint("token", name="pk_gateway_submissions"),
        sa.UniqueConstraint(
            "tenant", "idempotency_key", name="uq_gateway_submissions_tenant_idempotency_key"
        ),
    )
    op.create_index(
        "ix_gateway_submissions_submission_id", "gateway_submissions", ["submission_id"]
    )
    op.create_index("ix_gateway_submissions_created_at", "gateway_submissions", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_gateway_submissions_created_at", table_name="gateway_submissions")
    op.drop_index("ix_gateway_submissions_submission_id", table_name="gateway_submissions")
    op.drop_table("gateway_submissions")
