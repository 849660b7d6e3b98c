"""The Faust app and its agent, kept thin: decode → `Pipeline.handle` → `Delivery` → ack.

Faust and Kafka types stop in this package: judging lives in `streamworker.pipeline`,
exactly-once publishing in `delivery` (behind the port `faust_port` implements), the
pages in `web`, signals and restarts in `lifecycle`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from streamworker.errors import TransactionBroken
from streamworker.fit import DEFAULT_BUDGET, KAFKA_DEFAULT_MESSAGE_BYTES, MessageBudget
from streamworker.kafka_security import faust_credentials
from streamworker.pipeline import Source
from streamworker.settings import Settings
from streamworker.worker import kafka_records
from streamworker.worker.delivery import Delivery, Output
from streamworker.worker.faust_port import AckToken, FaustPort
from streamworker.worker.faust_sensor import PrometheusSensor
from streamworker.worker.ledger import RestartLedger
from streamworker.worker.recovery import SeekThenResumeTableManager
from streamworker.worker.resources import Resources
from streamworker.worker.runtime import WorkerRuntime
from streamworker.worker.web import install_pages

log = logging.getLogger(__name__)

PRODUCER_MAX_REQUEST_BYTES = KAFKA_DEFAULT_MESSAGE_BYTES
RAW: dict[str, Any] = {
    "key_type": bytes,
    "value_type": bytes,
    "key_serializer": "raw",
    "value_serializer": "raw",
}


def faust_app(settings: Settings) -> faust.App:
    """The Faust app for `settings`, configured for exactly-once judging."""
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    return faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=faust_credentials(settings),
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
        # drain turns this off once its in-flight runs are done (see lifecycle).
        stream_wait_empty=True,
        # Faust's own recovery resumes stream partitions before seeking them, which can
        # lose a kept partition's events after a rebalance (see worker.recovery).
        TableManager=SeekThenResumeTableManager,
    )


def create_app(
    settings: Settings, partitions: int | None = None, budget: MessageBudget = DEFAULT_BUDGET
) -> tuple[faust.App, WorkerRuntime]:
    """A Faust app for `settings`, with its agent, startup task and HTTP pages."""
    kafka_records.install()  # a stranger's non-UTF-8 header key must not stall a partition
    partitions = partitions or settings.topic_partitions
    app = faust_app(settings)
    app.sensors.add(PrometheusSensor(queue_topics={settings.topics.submissions}))
    runtime = WorkerRuntime(Resources(settings, budget))
    submissions = app.topic(settings.topics.submissions, **RAW)
    # Submission ids answered and committed: written in the same Kafka transaction as the
    # result and the consumer offset (exactly_once), so a duplicate is skipped for sure.
    answered = app.Table(
        "answered", default=None, partitions=partitions, key_type=bytes, value_type=bytes
    )
    outputs = {
        Output.RESULTS: app.topic(settings.topics.results, **RAW),
        Output.DEAD_LETTERS: app.topic(settings.topics.dlq, **RAW),
        Output.ANSWERED: answered.changelog_topic,
    }
    delivery: Delivery[AckToken] = Delivery(
        FaustPort(app, settings.topics.submissions, outputs, answered),
        lambda: runtime.resources.pipeline,
        RestartLedger(settings.data_dir / "restart-ledger.json"),
        transactional=settings.processing_guarantee == "exactly_once",
        partitions=partitions,
        max_attempts=settings.max_attempts,
        commit_after_ack_s=settings.commit_after_ack_s,
        restart=runtime.restarts.request,
    )
    install_hooks(app, settings, runtime, delivery)
    install_pages(app, runtime.resources)

    @app.agent(submissions, concurrency=settings.concurrency)
    async def judge_submissions(stream: faust.StreamT[bytes]) -> None:
        await runtime.resources.ready.wait()
        # Acks are manual: an event is acknowledged (and its offset committed) only after
        # its outcome was published, so a crash or a cancelled run means redelivery.
        manual = stream.noack()  # type: ignore[attr-defined]  # on Stream, not StreamT
        async for event in manual.events():
            message = event.message
            delivery.begin(message.partition, message.offset)
            if await judge_one(runtime, delivery, message):
                await delivery.acknowledge(message.partition, message.offset, (manual, event))

    return app, runtime


async def judge_one(runtime: WorkerRuntime, delivery: Delivery[Any], message: Any) -> bool:
    """Deliver one event's outcome; False leaves it unacknowledged (redelivered)."""
    if not runtime.restarts.accepting:
        return False  # draining for shutdown or restarting
    try:
        async with runtime.in_flight.tracking():
            await delivery.deliver(raw_value(message.value), source_of(message))
    except asyncio.CancelledError:
        if runtime.restarts.accepting:
            raise
        return False  # the drain cancelled this run
    except TransactionBroken as exc:
        runtime.restarts.request(exc.message)
        return False
    return True


def install_hooks(
    app: faust.App, settings: Settings, runtime: WorkerRuntime, delivery: Delivery[Any]
) -> None:
    """Start and stop the resources with the app; forget what a rebalance took away."""

    @app.on_partitions_assigned.connect
    async def forget_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned = args[0] if args else kwargs.get("assigned", set())
        delivery.forget_revoked(
            {tp.partition for tp in assigned if tp.topic == settings.topics.submissions}
        )

    async def start_resources() -> None:
        await runtime.resources.start()

    app.task(start_resources)

    @app.on_before_shutdown.connect
    async def stop_resources(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await delivery.stop()  # Faust commits once more on its way out
        await runtime.resources.stop()


def source_of(message: Any) -> Source:
    """Where a Faust message came from, without Faust types."""
    headers = message.headers
    return Source(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        headers=list(headers.items()) if isinstance(headers, dict) else headers or [],
    )


def raw_value(value: object) -> bytes:
    """An event's value as bytes; a tombstone (null value) is an empty, invalid event."""
    if value is None:
        return b""
    return value if isinstance(value, bytes) else bytes(value)  # type: ignore[call-overload]
