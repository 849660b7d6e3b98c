"""Audit writes off the critical path: queued, written in order, retried through outages.

Policy: result publication never waits for the database. Records queue in memory and a
single background task appends them in order, in batches (one transaction for whatever
queued meanwhile); when the database is down it retries
with capped exponential backoff and catches up when it returns. Appends are idempotent
(unique event ids), so a retry after an unknown outcome duplicates nothing. Records
still queued when the process dies are recoverable from the results topic (`replay`).

A record the database refuses (see `refusal`) is not retried forever, which would stall
every record behind it: the failing batch is bisected until the refused records are
isolated, the rest is written, and each refused record goes to `audit_quarantine`
(counted, logged once) for the operator to requeue (`streamworker replay --quarantined`).

One wait is allowed, bounded: before a result's event is acknowledged (and its Kafka
transaction can commit) the worker gives the writer a moment to make that submission's
records durable (`settle`), so a `kill -9` loses no audit while the database is up.
During an outage nobody waits. That wait covers only the append (one multi-row insert
and the projection marks, `pending`); a second task projects the marked submissions
right after, and at start-up projects whatever a crash left marked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from streamworker import metrics
from streamworker.audit.prior import Prior, prior_from
from streamworker.audit.refusal import describe, is_refusal
from streamworker.audit.status import DEFAULT_LAG_DEGRADED_S, AuditHealth
from streamworker.audit.store import AuditRecord, AuditStore

log = logging.getLogger(__name__)

PROJECT_DELAY_S = 0.1
"""How long the projector lets marks gather before projecting them. A submission's
`received`/`started` and `finished` appends usually fall in one window, and so do the
submissions of a burst: one projection transaction serves them all instead of two per
submission (the projector's share of the worker's CPU, docs/benchmarks.md). `executions`
trails the log by about this much more; nothing reads the projection to decide."""


@dataclass(eq=False)
class _Queued:
    """A record with the moment it was accepted (compared by identity)."""

    record: AuditRecord
    accepted_at: float = field(default_factory=time.monotonic)


class AuditWriter:
    """Accepts records synchronously; a background task writes them."""

    def __init__(
        self,
        store: AuditStore,
        max_backoff_s: float = 5.0,
        lookup_timeout_s: float = 2.0,
        max_batch: int = 200,
        lag_degraded_s: float = DEFAULT_LAG_DEGRADED_S,
        project_delay_s: float = PROJECT_DELAY_S,
    ) -> None:
        self.store = store
        self.project_delay_s = project_delay_s
        self.max_batch = max_batch
        self.max_backoff_s = max_backoff_s
        self.lookup_timeout_s = lookup_timeout_s
        self.lag_degraded_s = lag_degraded_s
        self._queue: asyncio.Queue[_Queued] = asyncio.Queue()
        self._pending: dict[str, list[AuditRecord]] = {}
        # Accepted and not yet durable (queued or being written), oldest first.
        self._waiting: OrderedDict[_Queued, None] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self._projector: asyncio.Task[None] | None = None
        self._project_soon = asyncio.Event()
        self._written = asyncio.Condition()
        self.last_error: str | None = None
        self.quarantined = 0
        """Records this writer quarantined since it was created."""
        self._unresolved: int | None = None

    def submit(self, record: AuditRecord) -> None:
        item = _Queued(record)
        self._pending.setdefault(record.submission_id, []).append(record)
        self._waiting[item] = None
        self._queue.put_nowait(item)
        metrics.AUDIT_LAG.set(len(self._waiting))

    def lag_seconds(self) -> float:
        """Age of the oldest record not yet durable; 0 only when nothing waits."""
        if not self._waiting:
            return 0.0
        oldest = next(iter(self._waiting))
        return max(time.monotonic() - oldest.accepted_at, 0.0)

    async def health(self) -> AuditHealth:
        """Lag and unresolved quarantine (the table's count, shared by every worker and
        cleared by a requeue; this writer's own count when the database cannot say)."""
        try:
            async with asyncio.timeout(self.lookup_timeout_s):
                self._unresolved = await self.store.quarantine.count_unresolved()
        except Exception as exc:  # unknown: fall back, do not fail the health check
            log.debug("counting quarantined audit records failed: %s", exc)
            self._unresolved = None
        return self.health_now()

    def health_now(self) -> AuditHealth:
        """`health` without a database round trip (the last count read, if any)."""
        quarantined = self.quarantined if self._unresolved is None else self._unresolved
        return AuditHealth(self.lag_seconds(), quarantined, self.lag_degraded_s)

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
        """Records accepted and not yet durable, including a batch being written."""
        return len(self._waiting)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="audit-writer")
            # Set at start: marks a crash left behind are projected first (catch-up).
            self._project_soon.set()
            self._projector = asyncio.create_task(self._project_loop(), name="audit-projector")
            # Read when /metrics is scraped, so the age keeps growing while nothing lands.
            metrics.AUDIT_LAG_SECONDS.set_function(self.lag_seconds)

    async def drain(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything queued is written and projected (True) or the timeout
        passes (False)."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._queue.join()
                if self.last_error is None:
                    await self._project_all()
        except TimeoutError:
            return False
        except Exception as exc:  # the projector's catch-up at the next start covers it
            log.warning("audit projection at drain failed: %s", exc)
            return False
        return True

    async def stop(self, timeout_s: float = 10.0) -> None:
        await self.drain(timeout_s)
        for task in (self._task, self._projector):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._task = self._projector = None

    async def _project_loop(self) -> None:
        """Bring `executions` up to the log: batches, then one by one if a batch fails,
        so a submission whose projection keeps failing waits at the back, alone."""
        backoff = 0.1
        while True:
            await self._project_soon.wait()
            await asyncio.sleep(self.project_delay_s)  # let more marks join this batch
            self._project_soon.clear()
            try:
                await self._project_all()
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                metrics.AUDIT_FAILURES.inc()
                log.warning("audit projection failed, projecting one by one: %s", exc)
                await self._project_singly()
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, self.max_backoff_s)
                self._project_soon.set()

    async def _project_all(self) -> int:
        """Project every marked submission, a batch at a time; how many there were."""
        total = 0
        while True:
            projected = await self.store.project_pending(self.max_batch)
            total += projected
            # A short batch took every mark there was (or every one not locked by another
            # worker's projector): asking again would cost an empty transaction.
            if projected < self.max_batch:
                return total

    async def _project_singly(self) -> None:
        try:
            marks = await self.store.pending_marks(self.max_batch)
        except Exception:
            return  # the database is down: the outage handling of appends reports it
        for submission_id in marks:
            try:
                await self.store.project_pending(1, only=[submission_id])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("projection of %s failed, retried later: %s", submission_id, exc)
                with contextlib.suppress(Exception):
                    await self.store.defer_mark(submission_id)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            # Whatever queued meanwhile goes in the same transaction: under load one
            # commit serves many records instead of one each.
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._write(batch)

    async def _write(self, items: Sequence[_Queued]) -> None:
        """Make `items` durable: in the log, or the ones refused in quarantine.

        Bisecting keeps the order of what is written, and costs about 2·log2(n) extra
        transactions per refused record.
        """
        refusal = await self._append(items)
        if refusal is None:
            await self._durable(items)
            self._project_soon.set()
        elif len(items) == 1:
            await self._quarantine(items[0], refusal)
        else:
            middle = len(items) // 2
            await self._write(items[:middle])
            await self._write(items[middle:])

    async def _append(self, items: Sequence[_Queued]) -> BaseException | None:
        """Append `items` in one transaction, retrying through outages; the refusal if
        the database refused them."""
        records = [item.record for item in items]
        backoff = 0.1
        while True:
            try:
                await self.store.append_logged(records)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                metrics.AUDIT_FAILURES.inc()
                if is_refusal(exc):
                    self._recovered()
                    return exc
                await self._outage("audit write failed, will retry", exc, backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            self._recovered()
            return None

    async def _quarantine(self, item: _Queued, refusal: BaseException) -> None:
        record = item.record
        reason = describe(refusal)
        backoff = 0.1
        while True:
            try:
                await self.store.quarantine.add(record, reason)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # even the quarantine failed: treat as an outage
                await self._outage("audit quarantine write failed, will retry", exc, backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
        self._recovered()
        self.quarantined += 1
        if self._unresolved is not None:
            self._unresolved += 1
        metrics.AUDIT_QUARANTINED.inc()
        log.error(
            "audit event %s (%s of submission %s) refused by the database, quarantined: %s",
            record.event_id,
            record.kind,
            record.submission_id,
            reason,
        )
        await self._durable([item])

    async def _outage(self, what: str, exc: BaseException, backoff: float) -> None:
        if self.last_error is None:
            log.warning("%s: %s", what, exc)
        self.last_error = str(exc)
        await self._notify()
        await asyncio.sleep(backoff * (0.5 + random.random()))

    def _recovered(self) -> None:
        if self.last_error is not None:
            log.info("audit database answers again")
        self.last_error = None

    async def _durable(self, items: Sequence[_Queued]) -> None:
        for item in items:
            self._waiting.pop(item, None)
            pending = self._pending.get(item.record.submission_id)
            if pending:
                pending.remove(item.record)
                if not pending:
                    del self._pending[item.record.submission_id]
            self._queue.task_done()
        metrics.AUDIT_LAG.set(len(self._waiting))
        await self._notify()
