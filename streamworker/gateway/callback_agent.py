"""Judge0 callbacks, delivered once per result however many gateway replicas run.

The replicas share one consumer group on the results topic, so each result is handled by
exactly one of them; offsets are committed after a batch's deliveries ended (delivered,
rejected, refused, or handed to the callbacks dead-letter topic), so a crash delivers
again rather than never: at least once, and receivers deduplicate by
`X-Streamworker-Event-Id`. Every try is an audit event (`kind = callback`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streamworker import kafka_security
from streamworker.audit.records import AuditKind, AuditRecord
from streamworker.audit.store import AuditStore
from streamworker.gateway.callbacks import (
    Attempt,
    CallbackPolicy,
    callback_session,
    deliver,
    redact,
)
from streamworker.gateway.judge0_render import DEFAULT_FIELDS, View, render
from streamworker.gateway.store import GatewayStore, Token
from streamworker.kafka_security import aiokafka_kwargs
from streamworker.settings import Settings

log = logging.getLogger(__name__)

CONCURRENCY = 32
"""Deliveries in flight at once: a receiver that never answers holds one slot, not all."""
_NAMESPACE = uuid.UUID("6f1c3a52-9a57-4d8e-8f0a-1c2b3d4e5f60")


def wants_callback(result: Mapping[str, Any]) -> bool:
    """Only results of gateway submissions that asked for a callback (no SQL for others)."""
    metadata = result.get("metadata")
    judge0 = metadata.get("judge0") if isinstance(metadata, dict) else None
    return isinstance(judge0, dict) and judge0.get("callback") is True


def callback_body(token: Token, result: Mapping[str, Any]) -> bytes:
    """Judge0's PUT body: its default fields, base64-encoded (Judge0 always encodes)."""
    view = View(
        token=token.token,
        tenant=token.tenant,
        created_at=token.created_at,
        request=token.request,
        case_index=token.case_index,
        started=True,
        result=result,
    )
    return json.dumps(render(view, DEFAULT_FIELDS, True), separators=(",", ":")).encode()


class CallbackAgent:
    """Consumes results in the callbacks group and delivers each token's callback."""

    def __init__(self, settings: Settings, store: GatewayStore, policy: CallbackPolicy) -> None:
        self.settings = settings
        self.store = store
        self.policy = policy
        self.group = f"{settings.app_id}-gateway-callbacks"
        self.worker_id = f"gateway-{socket.gethostname()}"
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._session: aiohttp.ClientSession | None = None
        self._audit: AuditStore | None = None
        self._task: asyncio.Task[None] | None = None
        self._slots = asyncio.Semaphore(CONCURRENCY)

    async def start(self) -> None:
        self._audit = await AuditStore.open(self.settings.resolved_database_url())
        self._consumer = AIOKafkaConsumer(
            self.settings.topics.results,
            **aiokafka_kwargs(self.settings),
            group_id=self.group,
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="latest",
        )
        self._producer = AIOKafkaProducer(**aiokafka_kwargs(self.settings), acks="all")
        await kafka_security.start(self.settings, self._consumer, self._producer)
        self._session = callback_session()
        self._task = asyncio.create_task(self._run(), name="gateway-callbacks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for closing in (self._consumer, self._producer):
            if closing is not None:
                await closing.stop()
        if self._session is not None:
            await self._session.close()
        if self._audit is not None:
            await self._audit.close()

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=1000, max_records=100)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("callbacks: fetch failed; retrying", exc_info=True)
                await asyncio.sleep(1.0)
                continue
            results = []
            for records in batches.values():
                for record in records:
                    try:
                        result = json.loads(record.value) if record.value else None
                    except ValueError:
                        continue
                    if isinstance(result, dict) and wants_callback(result):
                        results.append(result)
            await asyncio.gather(*(self._guarded(r) for r in results))
            if batches:
                with contextlib.suppress(Exception):
                    await self._consumer.commit()

    async def _guarded(self, result: Mapping[str, Any]) -> None:
        """One result's callbacks; a failure stays with that result (logged, not retried
        forever: the audit log shows what was tried)."""
        async with self._slots:
            try:
                await self.handle(result)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("callbacks: result %s failed", result.get("submission_id"))

    async def handle(self, result: Mapping[str, Any]) -> None:
        judge0 = result["metadata"]["judge0"]
        wanted = judge0.get("tokens") or [judge0.get("token")]
        tokens = await self.store.get([str(t) for t in wanted if t])
        for token in tokens.values():
            url = token.request.get("callback_url")
            if url:
                await self._deliver(token, str(url), result)

    async def _deliver(self, token: Token, url: str, result: Mapping[str, Any]) -> None:
        assert self._session is not None
        body = callback_body(token, result)
        event_id = str(uuid.uuid5(_NAMESPACE, f"{result.get('event_id')}:{token.token}"))

        async def record(attempt: Attempt) -> None:
            await self._record(token, result, attempt)

        outcome = await deliver(self._session, url, body, event_id, self.policy, record)
        if outcome.outcome == "dead":
            await self._dead_letter(token, url, body, event_id, outcome.error)

    async def _record(self, token: Token, result: Mapping[str, Any], attempt: Attempt) -> None:
        if self._audit is None:
            return
        record = AuditRecord(
            event_id=str(uuid.uuid5(_NAMESPACE, f"{attempt.event_id}:{attempt.try_number}")),
            submission_id=token.submission_id,
            kind=AuditKind.CALLBACK,
            attempt=int(result.get("attempt") or 1),
            worker_id=self.worker_id,
            occurred_at=datetime.fromtimestamp(attempt.started_at, UTC),
            payload={
                "token": token.token,
                "callback_event_id": attempt.event_id,
                "url": attempt.url,
                "try": attempt.try_number,
                "outcome": attempt.outcome,
                "http_status": attempt.http_status,
                "error": attempt.error,
                "duration_s": round(attempt.duration_s, 6),
            },
        )
        try:
            await self._audit.append(record)
        except Exception:  # the delivery goes on; the audit's own alarms cover its outage
            log.warning("callbacks: could not record try %s", attempt.try_number, exc_info=True)

    async def _dead_letter(
        self, token: Token, url: str, body: bytes, event_id: str, error: str | None
    ) -> None:
        assert self._producer is not None
        headers = [
            ("token", token.token.encode()),
            ("url", redact(url).encode("utf-8", "replace")),
            ("event_id", event_id.encode()),
            ("error", (error or "")[:1000].encode("utf-8", "replace")),
        ]
        await self._producer.send_and_wait(
            self.settings.gateway.callbacks_dlq_topic,
            body,
            key=token.token.encode(),
            headers=headers,
        )
