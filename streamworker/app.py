"""The Faust wiring, kept thin: decode → judge → publish → audit.

Faust and Kafka types stop here; the logic lives in `streamworker.pipeline`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn

import faust
from aiokafka.errors import IllegalOperation, KafkaError, MessageSizeTooLargeError, ProducerFenced
from faust.exceptions import ProducerSendError
from faust.web import Request, Response, View

from streamworker import kafka_records, metrics
from streamworker.acks import InOrderAcks
from streamworker.commits import CommitSoon
from streamworker.errors import OutputRejected, PoisonEvent, TransactionBroken
from streamworker.faust_sensor import PrometheusSensor
from streamworker.fit import DEFAULT_BUDGET, KAFKA_DEFAULT_MESSAGE_BYTES, MessageBudget
from streamworker.health import consumer_state
from streamworker.ledger import RestartLedger, event_key
from streamworker.marks import OwnMarks
from streamworker.pipeline import Outcome, Source
from streamworker.recovery import SeekThenResumeTableManager
from streamworker.runtime import WorkerRuntime
from streamworker.settings import Settings
from streamworker.taskdump import dump_tasks
from streamworker.topics import ensure_topics, message_budget

log = logging.getLogger(__name__)

RESTART_PAUSE_S = 1.0
PRODUCER_MAX_REQUEST_BYTES = KAFKA_DEFAULT_MESSAGE_BYTES


class KeyLocks:
    """Per-key mutual exclusion that forgets keys nobody holds."""

    def __init__(self) -> None:
        self._locks: dict[bytes, asyncio.Lock] = {}
        self._users: dict[bytes, int] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: bytes | None) -> AsyncIterator[None]:
        if key is None:
            yield
            return
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._locks[key]


def create_app(
    settings: Settings, partitions: int | None = None, budget: MessageBudget = DEFAULT_BUDGET
) -> tuple[faust.App, WorkerRuntime]:
    """A Faust app for `settings`, with its agent, startup task and HTTP pages."""
    kafka_records.install()  # a stranger's non-UTF-8 header key must not stall a partition
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        processing_guarantee=settings.processing_guarantee,
        web_bind=settings.http_host,
        web_host=settings.http_host,
        web_port=settings.http_port,
        web_in_thread=False,
        datadir=str(settings.data_dir / "faust"),
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=settings.commit_interval_s,
        # A crashed worker's partitions move after this long (Faust's default is 60 s).
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(1.0, settings.session_timeout_s / 3),
        producer_linger_ms=0,
        # What `topics.message_budget` assumes; results are fitted under it.
        producer_max_request_size=PRODUCER_MAX_REQUEST_BYTES,
        topic_allow_declare=True,
        topic_disable_leader=True,
        store="memory://",
        table_cleanup_interval=3600.0,
        # On a rebalance Faust waits until every fetched event is acknowledged (our runs
        # finish and publish) before partitions move: no double execution. The shutdown
        # drain turns this off once its in-flight runs are done (see GracefulWorker).
        stream_wait_empty=True,
        # Faust's own recovery resumes stream partitions before seeking them, which can
        # lose a kept partition's events after a rebalance (see streamworker.recovery).
        TableManager=SeekThenResumeTableManager,
    )
    app.sensors.add(PrometheusSensor(queue_topics={settings.topics.submissions}))
    runtime = WorkerRuntime(settings, budget)
    group = {"joined": False}  # set once the consumer finished its first rebalance
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    submissions = app.topic(settings.topics.submissions, **raw)
    results = app.topic(settings.topics.results, **raw)
    dlq = app.topic(settings.topics.dlq, **raw)
    # Submission ids answered and committed: written in the same Kafka transaction as the
    # result and the consumer offset (exactly_once), so a duplicate is skipped for sure.
    answered = app.Table(
        "answered",
        default=None,
        partitions=partitions or settings.topic_partitions,
        key_type=bytes,
        value_type=bytes,
    )

    transactional = settings.processing_guarantee == "exactly_once"
    ledger = RestartLedger(settings.data_dir / "restart-ledger.json")
    own_marks = OwnMarks()

    acks: InOrderAcks[tuple[Any, Any]] = InOrderAcks()

    async def commit_between_rebalances() -> None:
        # While partitions move, Faust waits for the in-flight events, commits and ends
        # their transactions itself; a commit of ours racing that could hold its commit
        # lock or touch a producer Faust is stopping. Acks made meanwhile are committed
        # by Faust's own rebalance commit or the next one after it.
        if not app.rebalancing:
            await app.consumer.commit()

    def commit_failed(exc: Exception) -> None:
        # aiokafka does not retry every broker failure inside a transaction (a broker
        # restart can kill a transactional producer's sender); such a transaction can
        # neither commit nor take output any more.
        if transactional:
            runtime.request_restart(f"a transaction commit failed: {exc!r}")

    commit_soon = CommitSoon(
        commit_between_rebalances, settings.commit_after_ack_s, on_failure=commit_failed
    )

    @app.on_partitions_assigned.connect
    async def forget_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Partitions that moved away: their open transactions get aborted by the new
        owner, so their marks held in memory must go (committed ones come back from the
        changelog if the partition returns). Partitions kept keep their transaction.
        """
        assigned = args[0] if args else kwargs.get("assigned", set())
        kept = {tp.partition for tp in assigned if tp.topic == settings.topics.submissions}
        gone = [p for p in range(partitions or settings.topic_partitions) if p not in kept]
        acks.forget(gone)
        dropped = own_marks.take(gone)
        for key in dropped:
            answered.data.pop(key, None)
        if dropped:
            log.info("rebalance: %d answered mark(s) of moved partitions dropped", len(dropped))

    async def send_output(
        topic: faust.TopicT,
        key: bytes | None,
        value: bytes,
        partition: int,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        """Send `value` inside the source partition's Kafka transaction.

        Faust's transaction manager only finds a transaction for topics its consumer
        reads (the source and the table changelog); a result sent through `topic.send`
        would go through the plain producer and become visible, or be lost, apart from
        the offset commit. So outputs name the source partition's transaction explicitly:
        that transaction commits them together with the consumer offset and the mark.
        """
        if not transactional:
            await topic.send(key=key, value=value, headers=headers, partition=partition)
            return
        name = topic.get_topic_name()
        tid = transaction_id(app, settings.topics.submissions, partition)
        try:
            await app.producer.send(
                name, key, value, partition, None, headers, transactional_id=tid
            )
        except MessageSizeTooLargeError as exc:
            # Refused by the producer before it joined the transaction: that record's
            # problem alone, not a broken transaction.
            raise OutputRejected(f"{name}: {exc!r}") from exc
        except (KafkaError, IllegalOperation, ProducerSendError) as exc:
            # Not in a transaction any more, fenced, or its sender died: this output and
            # the transaction's earlier ones cannot commit.
            raise TransactionBroken(f"the transaction of partition {partition}: {exc!r}") from exc

    async def remember(
        key: bytes | None, submission_id: str, event_id: str, partition: int
    ) -> None:
        """Mark the submission answered, BEFORE its result is sent.

        Everything for one source partition goes through that partition's transactional
        producer, in order, so a transaction that commits the result also commits this
        mark. (A plain `answered[key] = …` would buffer the changelog write and could miss
        the transaction.) Only events keyed by their submission id are looked up later.
        """
        if key != submission_id.encode():
            return
        value = event_id.encode()
        await send_output(answered.changelog_topic, key, value, partition)
        answered.data[key] = value
        own_marks.add(partition, key)

    def is_answered(key: bytes | None) -> Callable[[str], bool]:
        return lambda sid: key == sid.encode() and answered.get(key) is not None

    key_locks = KeyLocks()

    async def publish(outcome: Outcome, key: bytes | None, partition: int) -> None:
        # Outputs go to the source event's partition number and into that partition's
        # transaction: the result, the mark and the consumer offset commit together.
        if outcome.dead_letter is not None:
            dead = outcome.dead_letter
            await send_output(dlq, dead.key, dead.value, partition, list(dead.headers))
        if outcome.result is not None:
            result = await runtime.pipeline.record_result(outcome.result)
            await remember(key, result.submission_id, result.event_id, partition)
            await send_output(results, result.submission_id.encode(), result.encode(), partition)
        if outcome.republish is not None:
            stored = outcome.republish
            await remember(key, stored.submission_id, stored.event_id, partition)
            await send_output(results, stored.submission_id.encode(), stored.encode(), partition)

    async def publish_or_fail(
        outcome: Outcome, value: bytes, source: Source, key: bytes | None
    ) -> None:
        """Publish `outcome`; when Kafka refuses one of its records (or building them
        fails), publish the event's failure outcome instead: a small internal_error
        answer and a budgeted dead letter. A broken transaction is not this event's
        failure and propagates (the worker restarts)."""
        try:
            await publish(outcome, key, source.partition)
            return
        except (TransactionBroken, asyncio.CancelledError):
            raise
        except Exception as exc:
            metrics.OUTPUTS_REJECTED.inc()
            log.exception("publishing the outcome of %s@%d failed", source.topic, source.offset)
            why = f"the result could not be published: {type(exc).__name__}"
            fallback = runtime.pipeline.failed(value, source, exc, message=why)
        try:
            await publish(fallback, key, source.partition)
        except (TransactionBroken, asyncio.CancelledError):
            raise
        except Exception as exc:
            # Even the small answer failed: Kafka itself is in trouble. A restart (counted
            # in the ledger, so this event cannot loop) is all that is left.
            raise TransactionBroken(f"publishing a failure outcome failed: {exc!r}") from exc

    @app.agent(submissions, concurrency=settings.concurrency)
    async def judge_submissions(stream: faust.StreamT[bytes]) -> None:
        await runtime.ready.wait()
        # Acks are manual: an event is acknowledged (and its offset committed) only after
        # its outcome was published, so a crash or a cancelled run means redelivery.
        manual = stream.noack()  # type: ignore[attr-defined]  # on Stream, not StreamT
        async for event in manual.events():
            message = event.message
            acks.begin(message.partition, message.offset)
            headers = message.headers
            source = Source(
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                key=message.key,
                headers=list(headers.items()) if isinstance(headers, dict) else headers or [],
            )
            value = raw_value(message.value)
            if not runtime.accepting:
                # Draining for shutdown: left unacknowledged, so it is delivered again.
                continue
            ledger_key = event_key(message.topic, message.partition, message.offset)
            try:
                async with runtime.tracking(), key_locks.hold(message.key):
                    restarts = ledger.restarts(ledger_key)
                    if restarts >= settings.max_attempts:
                        why = f"the event broke the worker's transaction {restarts} times"
                        log.error("%s: %s; dead-lettered", ledger_key, why)
                        outcome = runtime.pipeline.failed(value, source, PoisonEvent(why))
                    else:
                        answered_now = is_answered(message.key)
                        outcome = await runtime.pipeline.handle(value, source, answered_now)
                    await publish_or_fail(outcome, value, source, message.key)
            except asyncio.CancelledError:
                if runtime.accepting:
                    raise
                continue  # the drain cancelled this run: leave it unacknowledged
            except TransactionBroken as exc:
                ledger.record(ledger_key)
                runtime.request_restart(exc.message)  # unacknowledged: redelivered
                continue
            for stream, done in acks.finish(message.partition, message.offset, (manual, event)):
                await stream.ack(done)
                commit_soon.request()

    async def start_runtime() -> None:
        await runtime.start()

    app.task(start_runtime)

    @app.on_before_shutdown.connect
    async def stop_runtime(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await commit_soon.stop()  # Faust commits once more on its way out
        await runtime.stop()

    @app.page("/health")
    async def health(web: View, request: Request) -> Response:
        report = await runtime.health()
        return web.json(report.body(), status=200 if report.healthy else 503)

    @app.on_rebalance_complete.connect
    async def rebalance_complete(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        group["joined"] = True

    @app.page("/ready")
    async def ready(web: View, request: Request) -> Response:
        consumer = consumer_state(group["joined"], bool(app.rebalancing))
        report = await runtime.readiness(consumer)
        return web.json(report.body(), status=200 if report.ready else 503)

    @app.page("/metrics")
    async def metrics_page(web: View, request: Request) -> Response:
        return web.bytes(metrics.render(), content_type="text/plain; version=0.0.4")

    return app, runtime


def raw_value(value: object) -> bytes:
    """An event's value as bytes; a tombstone (null value) is an empty, invalid event."""
    if value is None:
        return b""
    return value if isinstance(value, bytes) else bytes(value)  # type: ignore[call-overload]


def transaction_id(app: faust.App, source_topic: str, partition: int) -> str:
    """The id of the Kafka transaction Faust keeps open for one source partition."""
    group = app.assignor.group_for_topic(source_topic)
    return f"{app.conf.id}-{group}-{partition}"


class GracefulWorker(faust.Worker):
    """SIGTERM/SIGINT: stop taking events, let in-flight runs finish within the grace
    period, commit, then stop. A second signal stops at once."""

    def __init__(self, app: faust.App, runtime: WorkerRuntime, grace_s: float, **kw: Any):
        super().__init__(app, **kw)
        self._runtime = runtime
        self._grace_s = grace_s
        self._draining = False
        runtime.on_restart = self._stop_for_restart

    def _on_sigterm(self) -> None:
        self._begin_drain(signal.SIGTERM)

    def _on_sigint(self) -> None:
        self._begin_drain(signal.SIGINT)

    def _on_sigusr1(self) -> None:
        # mode's own dump stops at each task's outer coroutine; ours names the await
        # a task is actually suspended in.
        log.warning("SIGUSR1: %s", dump_tasks())

    def _stop_for_restart(self, reason: str) -> None:
        # No grace: the broken transaction cannot commit, and every commit includes it.
        # Unacknowledged events go to the restarted process.
        self._draining = True
        self.app.conf.stream_wait_empty = False
        self._schedule_shutdown(signal.SIGTERM)

    def _begin_drain(self, sig: signal.Signals) -> None:
        if self._draining:
            self._schedule_shutdown(sig)
            return
        self._draining = True
        self._drain_task = asyncio.ensure_future(self._drain_then_stop(sig))

    async def _drain_then_stop(self, sig: signal.Signals) -> None:
        log.info("%s: draining (grace %.0fs)", sig.name, self._grace_s)
        consumer = self.app.consumer
        with contextlib.suppress(Exception):
            consumer.pause_partitions(consumer.assignment())
        await self._runtime.drain(self._grace_s)
        # Events skipped while draining stay unacknowledged on purpose (redelivered);
        # Faust must not wait for them on the way out.
        self.app.conf.stream_wait_empty = False
        try:
            await consumer.commit()
        except Exception as exc:  # the stop below commits again or redelivers
            log.warning("final commit failed: %s", exc)
        self._schedule_shutdown(sig)


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run one worker until SIGTERM/SIGINT (blocking)."""
    partitions = asyncio.run(ensure_topics(settings))
    budget = asyncio.run(message_budget(settings, PRODUCER_MAX_REQUEST_BYTES))
    app, runtime = create_app(settings, partitions, budget)
    worker = GracefulWorker(app, runtime, settings.shutdown_grace_s, loglevel=loglevel, quiet=True)
    try:
        worker.execute_from_commandline()
    finally:
        # Faust crashes the app itself when a commit finds its producer fenced.
        if isinstance(app.crash_reason, ProducerFenced):
            runtime.on_restart = None  # the worker has stopped already
            runtime.request_restart(f"a commit found its producer fenced: {app.crash_reason!r}")
        if runtime.restart_reason is not None:
            restart_in_place()


def restart_in_place() -> NoReturn:
    """Replace this process with a fresh run of the same command (same pid, same
    environment): a new consumer joins the group and new producers fence the old ones'
    transactions, which is how Kafka recovers a broken transaction."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    time.sleep(RESTART_PAUSE_S)  # a restart that keeps failing must not spin
    os.execv(sys.executable, sys.orig_argv)
