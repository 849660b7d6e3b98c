"""One submission event in, one outcome out: decode, judge, build and record the result.

No Kafka types. The worker's `Delivery` calls `Pipeline.handle` and publishes what it
returns: the result already fitted under the message limit and in the audit log, so the
publishing side only sends. Everything here is plain async code, testable with a fake
sandbox and an in-memory audit sink.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from streamworker import metrics
from streamworker.audit.prior import Prior
from streamworker.audit.records import (
    AuditRecord,
    received_record,
    result_record,
    started_record,
)
from streamworker.contract import (
    ResultEvent,
    Runtime,
    Status,
    Submission,
    decode_submission,
    now_utc,
    salvage_metadata,
    salvage_submission_id,
)
from streamworker.errors import InvalidEvent, PoisonEvent, StreamworkerError
from streamworker.fit import DEFAULT_BUDGET, MessageBudget, clip, fit_result
from streamworker.judge import Sandbox, judge
from streamworker.languages.registry import get_language
from streamworker.retry import DEFAULT_RETRY, RetryPolicy, retry
from streamworker.settings import Settings
from streamworker.verdict import status_for_error

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 1000
"""A result's `message` may echo user input (an unknown language, a bad field): capped."""
MAX_ERROR_HEADER_CHARS = 1000
MAX_KEY_BYTES = 4096
DEFAULT_DLQ_VALUE_BYTES = DEFAULT_BUDGET.dead_letter_bytes


@dataclass(frozen=True)
class Source:
    """Where an event came from (for DLQ headers and logs)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()


@dataclass(frozen=True)
class DeadLetter:
    """The original bytes, untouched, with the contract's error headers."""

    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True)
class Outcome:
    """What to publish: a new result, a stored result again, and/or a dead letter."""

    result: ResultEvent | None
    dead_letter: DeadLetter | None = None
    republish: ResultEvent | None = None
    """An earlier published result, sent again unchanged (same `event_id`)."""
    skipped: bool = False
    """Already answered and committed: nothing to publish."""


class AuditSink(Protocol):
    def submit(self, record: AuditRecord) -> None: ...

    async def prior(self, submission_id: str) -> Prior | None: ...

    async def settle(self, submission_id: str, timeout_s: float | None = None) -> bool: ...


def dead_letter(
    value: bytes, source: Source, error: Exception, max_value_bytes: int = DEFAULT_DLQ_VALUE_BYTES
) -> DeadLetter:
    """The original bytes (up to the budget: the full event stays on its source topic at
    its offset) with the contract's error headers; a cut is flagged, never silent."""
    headers = [
        ("error", clip(str(error), MAX_ERROR_HEADER_CHARS).encode()),
        ("error_type", type(error).__name__.encode()),
        ("source_topic", source.topic.encode()),
        ("source_partition", str(source.partition).encode()),
        ("source_offset", str(source.offset).encode()),
    ]
    if len(value) > max_value_bytes:
        headers += [("value_truncated", b"true"), ("value_bytes", str(len(value)).encode())]
        value = value[:max_value_bytes]
    key = source.key if source.key is None or len(source.key) <= MAX_KEY_BYTES else None
    return DeadLetter(key, value, headers)


class Pipeline:
    """Turns submission bytes into a result event, feeding the audit log as it goes."""

    def __init__(
        self,
        settings: Settings,
        sandbox: Sandbox,
        audit: AuditSink,
        retry_policy: RetryPolicy = DEFAULT_RETRY,
        budget: MessageBudget = DEFAULT_BUDGET,
    ) -> None:
        self.settings = settings
        self.sandbox = sandbox
        self.audit = audit
        self.retry_policy = retry_policy
        self.budget = budget
        self.decode_budgets = settings.decode_budgets()

    async def handle(
        self, value: bytes, source: Source, answered: Callable[[str], bool] | None = None
    ) -> Outcome:
        """Decode and judge one event; its result comes back fitted and recorded.

        `answered(submission_id)` says the submission's answer is already committed to the
        results topic (the app's transactional table): then nothing is done at all.
        Whatever goes wrong with one event ends as an outcome for that event alone; only
        recording the result can raise, and then the caller publishes the event's failure
        outcome instead (`fail`), exactly as when Kafka refuses a record.
        """
        received_at = now_utc()
        try:
            outcome = await self._handle(value, source, answered, received_at)
        except Exception as exc:
            log.exception(
                "handling %s[%d]@%d crashed", source.topic, source.partition, source.offset
            )
            outcome = self.failed(value, source, exc, received_at)
        return await self.recorded(outcome)

    async def fail(
        self,
        value: bytes,
        source: Source,
        exc: Exception,
        message: str | None = None,
        received_at: datetime | None = None,
    ) -> Outcome:
        """`failed`, with its answer fitted and recorded like any result to publish."""
        return await self.recorded(self.failed(value, source, exc, received_at, message))

    async def recorded(self, outcome: Outcome) -> Outcome:
        """The outcome with its new result passed through `record_result` (a republished
        result was recorded when first published and is sent again unchanged)."""
        if outcome.result is None:
            return outcome
        return replace(outcome, result=await self.record_result(outcome.result))

    def failed(
        self,
        value: bytes,
        source: Source,
        exc: Exception,
        received_at: datetime | None = None,
        message: str | None = None,
    ) -> Outcome:
        """An event we could not handle: dead-lettered, and answered `internal_error` when
        its submission id is readable (the submitter is never left waiting)."""
        _, detail = status_for_error(exc)
        sid = salvage_submission_id(value, self.decode_budgets)
        why = message or detail
        return self._dead_end(value, source, exc, sid, Status.INTERNAL_ERROR, why, received_at)

    def _dead_end(
        self,
        value: bytes,
        source: Source,
        exc: Exception,
        sid: str | None,
        status: Status,
        message: str,
        received_at: datetime | None,
    ) -> Outcome:
        """A dead letter, and an answer with `status` when the submission id is known."""
        metrics.DLQ.inc()
        result = None
        if sid is not None:
            result = ResultEvent(
                submission_id=sid,
                status=status,
                language=None,
                worker_id=self.settings.worker_id,
                received_at=received_at or now_utc(),
                started_at=None,
                finished_at=now_utc(),
                message=clip(message, MAX_MESSAGE_CHARS),
                metadata=salvage_metadata(value, self.decode_budgets),
            )
        return Outcome(result, dead_letter(value, source, exc, self.budget.dead_letter_bytes))

    async def _handle(
        self,
        value: bytes,
        source: Source,
        answered: Callable[[str], bool] | None,
        received_at: datetime,
    ) -> Outcome:
        try:
            submission = decode_submission(value, self.decode_budgets)
        except InvalidEvent as exc:
            return self._invalid(value, source, exc, received_at)
        except Exception as exc:  # a decoder bug must not stall the partition
            log.exception(
                "decoding crashed on %s[%d]@%d", source.topic, source.partition, source.offset
            )
            wrapped = InvalidEvent(f"undecodable event ({type(exc).__name__}: {exc})")
            return self._invalid(value, source, wrapped, received_at)
        sid = submission.submission_id
        if answered is not None and answered(sid):
            log.info("submission %s was already answered; skipping the duplicate", sid)
            metrics.DUPLICATES.labels("skipped").inc()
            return Outcome(None, skipped=True)
        prior = await self.audit.prior(sid)
        if prior is not None and prior.answer is not None:
            # Answered per the audit log but not per the committed table: publish the same
            # result again rather than run the program a second time.
            log.info("submission %s was answered before; republishing its result", sid)
            metrics.DUPLICATES.labels("republished").inc()
            stored = ResultEvent.decode(prior.answer)
            return Outcome(None, republish=fit_result(stored, self.budget.result_bytes))
        attempt = (prior.attempts if prior is not None else 0) + 1
        if attempt > self.settings.max_attempts:
            # Every earlier attempt started and none answered: the worker died or restarted
            # each time. Running it again would only loop.
            why = f"gave up after {attempt - 1} attempts that never finished"
            log.error("submission %s: %s", sid, why)
            return self.failed(value, source, PoisonEvent(why), received_at, why)
        return Outcome(await self.execute(submission, received_at, attempt))

    def _invalid(
        self, value: bytes, source: Source, exc: InvalidEvent, received_at: datetime
    ) -> Outcome:
        sid = exc.submission_id or salvage_submission_id(value, self.decode_budgets)
        log.warning(
            "invalid event at %s[%d]@%d: %s", source.topic, source.partition, source.offset, exc
        )
        return self._dead_end(
            value, source, exc, sid, Status.INVALID_SUBMISSION, str(exc), received_at
        )

    async def execute(
        self, submission: Submission, received_at: datetime, attempt: int = 1
    ) -> ResultEvent:
        """Judge a valid submission; every failure becomes a result, never an exception."""
        sid, worker = submission.submission_id, self.settings.worker_id
        self.audit.submit(
            received_record(submission, worker_id=worker, attempt=attempt, received_at=received_at)
        )
        begin = time.monotonic()
        metrics.IN_FLIGHT.inc()
        try:
            language = get_language(submission.language)
            self.audit.submit(
                started_record(
                    sid,
                    worker_id=worker,
                    attempt=attempt,
                    started_at=now_utc(),
                    image=self.sandbox.image_for(language),
                )
            )
            # The start is in the log before the program runs: a worker killed mid-run is
            # retried as attempt + 1, and an event that keeps killing workers counts
            # towards max_attempts. One transaction; bounded, and not during an outage.
            await self.audit.settle(sid)
            verdict = await retry(
                lambda: judge(submission, language, self.settings, self.sandbox, attempt),
                self.retry_policy,
                what=f"judging {sid}",
            )
        except Exception as exc:  # the boundary: every failure becomes a result
            status, message = status_for_error(exc)
            if status is Status.INTERNAL_ERROR:
                log.error(
                    "submission %s failed on our side: %s",
                    sid,
                    message,
                    exc_info=not isinstance(exc, StreamworkerError),
                )
            return ResultEvent(
                submission_id=sid,
                status=status,
                language=submission.language,
                worker_id=worker,
                received_at=received_at,
                started_at=None,
                finished_at=now_utc(),
                message=clip(message, MAX_MESSAGE_CHARS),
                metadata=submission.metadata,
                attempt=attempt,
            )
        finally:
            metrics.IN_FLIGHT.dec()
        metrics.observe_verdict(submission.language, verdict, time.monotonic() - begin)
        return ResultEvent(
            submission_id=sid,
            status=verdict.status,
            language=submission.language,
            worker_id=worker,
            received_at=received_at,
            started_at=verdict.started_at,
            finished_at=now_utc(),
            message=verdict.message,
            runtime=Runtime(verdict.image, verdict.image_id),
            compile=verdict.compile,
            runs=verdict.runs,
            metadata=submission.metadata,
            attempt=attempt,
        )

    async def record_result(self, result: ResultEvent) -> ResultEvent:
        """Before the result is published: fit it under the Kafka message limit, make it
        the audit log's `finished`/`invalid` event and let its audit records become
        durable (bounded, skipped during a database outage). Once published, the result
        can commit with an earlier event's offset, so a crash then must find the audit
        already written; a crash before leaves a logged result that a redelivery
        republishes. Returns the result exactly as it must be published."""
        fitted = fit_result(result, self.budget.result_bytes)
        if fitted is not result:
            metrics.RESULTS_FITTED.inc()
            log.info("result of %s cut to fit the message limit", result.submission_id)
        metrics.SUBMISSIONS.labels(fitted.language or "unknown", fitted.status.value).inc()
        self.audit.submit(result_record(fitted))
        await self.audit.settle(fitted.submission_id)
        return fitted
