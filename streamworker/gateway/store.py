"""The gateway's SQL: its tokens (`gateway_submissions`) and, to answer a GET, what the
audit log knows of the submission behind a token. Every replica shares it, so any
replica answers for a token another one issued."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from streamworker.audit.engine import create_engine
from streamworker.audit.models import AuditEvent, Execution, GatewaySubmission


@dataclass(frozen=True)
class Token:
    token: str
    tenant: str
    submission_id: str
    case_index: int | None
    api: str
    created_at: datetime
    request: Mapping[str, Any]
    idempotency_key: str | None = None


@dataclass(frozen=True)
class SubmissionState:
    started: bool
    result: Mapping[str, Any] | None


class IdempotencyConflict(Exception):
    """The tenant already used this Idempotency-Key: `existing` are its tokens."""

    def __init__(self, existing: list[Token]) -> None:
        super().__init__("idempotency key already used")
        self.existing = existing


class GatewayStore:
    """Async access to the gateway's rows and the audit projections it reads."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str) -> GatewayStore:
        return cls(create_engine(url))

    async def close(self) -> None:
        await self.engine.dispose()

    async def add(self, tokens: Sequence[Token]) -> None:
        """Insert all or none; a reused Idempotency-Key raises `IdempotencyConflict`."""
        rows = [{**dataclasses.asdict(t), "request": dict(t.request)} for t in tokens]
        try:
            async with self.engine.begin() as conn:
                await conn.execute(insert(GatewaySubmission), rows)
        except IntegrityError:
            key = tokens[0].idempotency_key if tokens else None
            if key is None:
                raise
            existing = await self.by_idempotency_key(tokens[0].tenant, key)
            if not existing:
                raise
            raise IdempotencyConflict(existing) from None

    async def remove(self, tokens: Sequence[str]) -> None:
        """Take back tokens whose submission never reached Kafka."""
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(GatewaySubmission).where(GatewaySubmission.token.in_(list(tokens)))
            )

    async def by_idempotency_key(self, tenant: str, key: str) -> list[Token]:
        query = (
            select(GatewaySubmission)
            .where(GatewaySubmission.tenant == tenant, GatewaySubmission.idempotency_key == key)
            .order_by(GatewaySubmission.case_index)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_token(row) for row in rows]

    async def get(self, tokens: Sequence[str]) -> dict[str, Token]:
        if not tokens:
            return {}
        query = select(GatewaySubmission).where(GatewaySubmission.token.in_(list(tokens)))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {row.token: _token(row) for row in rows}

    async def states(self, submission_ids: Sequence[str]) -> dict[str, SubmissionState]:
        """Started? Answered (the result event as published)? From the audit log."""
        if not submission_ids:
            return {}
        ids = list(dict.fromkeys(submission_ids))
        query = (
            select(Execution.submission_id, Execution.started_at, AuditEvent.payload)
            .select_from(Execution)
            .outerjoin(AuditEvent, AuditEvent.event_id == Execution.result_event_id)
            .where(Execution.submission_id.in_(ids))
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {
            row.submission_id: SubmissionState(
                started=row.started_at is not None, result=row.payload or None
            )
            for row in rows
        }

    async def statistics(self) -> dict[str, Any]:
        """Counts for Judge0's `/statistics`."""
        async with self.engine.connect() as conn:
            by_status = (
                await conn.execute(
                    select(Execution.judge0_status_id, func.count()).group_by(
                        Execution.judge0_status_id
                    )
                )
            ).all()
            tokens = (
                await conn.execute(select(func.count()).select_from(GatewaySubmission))
            ).scalar()
        return {
            "submissions": {"total": sum(n for _, n in by_status), "gateway_tokens": tokens or 0},
            "statuses": [
                {"id": status_id, "count": n} for status_id, n in by_status if status_id is not None
            ],
        }


def _token(row: Any) -> Token:
    """A row of `gateway_submissions`: its columns are `Token`'s fields."""
    return Token(**row._mapping)
