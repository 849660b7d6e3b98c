"""Audit writes off the critical path: queued, written in order, retried through outages.

Policy: result publication never waits for the database. Records queue in memory and a
single background task appends them in order, in batches (one transaction for whatever
queued meanwhile); when the database is down it retries
with capped exponential backoff and catches up when it returns. Appends are idempotent
(unique event ids), so a retry after an unknown outcome duplicates nothing. Records
still queued when the process dies are recoverable from the results topic (`replay`).

One wait is allowed, bounded: before a result's event is acknowledged (and its Kafka
transaction can commit) the worker gives the writer a moment to make that submission's
records durable (`settle`), so a `kill -9` loses no audit while the database is up.
During an outage nobody waits.
"""

from __future__ import annotations

import asyncio
import logging
import random

from streamworker import metrics
from streamworker.audit.prior import Prior, prior_from
from streamworker.audit.store import AuditRecord, AuditStore

log = logging.getLogger(__name__)


class AuditWriter:
    """Accepts records synchronously; a background task writes them."""

    def __init__(
        self,
        store: AuditStore,
        max_backoff_s: float = 5.0,
        lookup_timeout_s: float = 2.0,
        max_batch: int = 200,
    ) -> None:
        self.store = store
        self.max_batch = max_batch
        self.max_backoff_s = max_backoff_s
        self.lookup_timeout_s = lookup_timeout_s
        self._queue: asyncio.Queue[AuditRecord] = asyncio.Queue()
        self._pending: dict[str, list[AuditRecord]] = {}
        self._task: asyncio.Task[None] | None = None
        self._written = asyncio.Condition()
        self.last_error: str | None = None

    def submit(self, record: AuditRecord) -> None:
        self._pending.setdefault(record.submission_id, []).append(record)
        self._queue.put_nowait(record)
        metrics.AUDIT_LAG.set(self._queue.qsize())

    async def prior(self, submission_id: str) -> Prior | None:
        """What the log (written or still queued) knows of a submission; None if unknown.

        Unknown means the database is down or slow: callers must not block on it.
        """
        queued = list(self._pending.get(submission_id, ()))
        if self.last_error is not None:
            return None
        try:
            async with asyncio.timeout(self.lookup_timeout_s):
                stored = await self.store.events(submission_id)
        except Exception as exc:  # unknown, not fatal
            log.warning("audit lookup of %s failed: %s", submission_id, exc)
            return None
        return prior_from([*stored, *queued])

    async def settle(self, submission_id: str, timeout_s: float | None = None) -> bool:
        """Wait until the submission's queued records are written; False if the database
        is failing or the wait timed out (the records stay queued either way)."""

        def done() -> bool:
            return submission_id not in self._pending or self.last_error is not None

        try:
            async with asyncio.timeout(timeout_s or self.lookup_timeout_s):
                async with self._written:
                    await self._written.wait_for(done)
        except TimeoutError:
            return False
        return submission_id not in self._pending

    async def _notify(self) -> None:
        async with self._written:
            self._written.notify_all()

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything queued is written (True) or the timeout passes (False)."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._queue.join()
        except TimeoutError:
            return False
        return True

    async def stop(self, timeout_s: float = 10.0) -> None:
        await self.drain(timeout_s)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            # Whatever queued meanwhile goes in the same transaction: under load one
            # commit serves many records instead of one each.
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            backoff = 0.1
            while True:
                try:
                    await self.store.append_many(batch)
                    self.last_error = None
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # any DB failure: keep the records, retry
                    metrics.AUDIT_FAILURES.inc()
                    if self.last_error is None:
                        log.warning("audit write failed, will retry: %s", exc)
                    self.last_error = str(exc)
                    await self._notify()
                    await asyncio.sleep(backoff * (0.5 + random.random()))
                    backoff = min(backoff * 2, self.max_backoff_s)
            for record in batch:
                pending = self._pending.get(record.submission_id)
                if pending:
                    pending.remove(record)
                    if not pending:
                        del self._pending[record.submission_id]
                self._queue.task_done()
            metrics.AUDIT_LAG.set(self._queue.qsize())
            await self._notify()
