"""Faust's sensor hooks as Prometheus metrics, in base units, on streamworker's registry.

Faust's own Prometheus sensor observes milliseconds and uses its own names; this one
follows the project's conventions (`streamworker_` prefix, seconds, bytes, `_total`
counters added by prometheus_client). Register it once per app:

    app.sensors.add(PrometheusSensor(queue_topics={settings.topics.submissions}))

Every hook is cheap and never raises: a sensor error would stop the consumer.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import faust
from faust.types import TP, AppT, Message, PendingMessage, RecordMetadata
from faust.types.transports import ConsumerT, ProducerT
from prometheus_client import Counter, Gauge, Histogram

from streamworker.metrics import REGISTRY

# Kafka-side latencies: sub-millisecond commits up to minute-long rebalances.
_KAFKA_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# How long a submission waited in Kafka before a worker took it: up to hours of backlog.
_QUEUE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
# Messages received but not yet acknowledged; beyond this many the oldest are forgotten.
MAX_TRACKED = 10_000

MESSAGES_RECEIVED = Counter(
    "streamworker_kafka_messages_received",
    "Records handed to a stream by the consumer, by topic.",
    ["topic"],
    registry=REGISTRY,
)
RECEIVED_BYTES = Counter(
    "streamworker_kafka_received_bytes",
    "Serialized key and value bytes of the records received, by topic.",
    ["topic"],
    registry=REGISTRY,
)
MESSAGES_ACKED = Counter(
    "streamworker_kafka_messages_acked",
    "Records every stream finished with (acknowledged, so committable), by topic.",
    ["topic"],
    registry=REGISTRY,
)
PROCESSING_SECONDS = Histogram(
    "streamworker_kafka_message_processing_seconds",
    "From a record's delivery to a stream until its acknowledgement, by topic.",
    ["topic"],
    buckets=_QUEUE_BUCKETS,
    registry=REGISTRY,
)
QUEUE_WAIT_SECONDS = Histogram(
    "streamworker_queue_wait_seconds",
    "From a submission record's Kafka timestamp until a worker takes it (clock skew "
    "between the producer and the worker clamps at 0).",
    buckets=_QUEUE_BUCKETS,
    registry=REGISTRY,
)
MESSAGES_SENT = Counter(
    "streamworker_kafka_messages_sent",
    "Records handed to the producer, by topic.",
    ["topic"],
    registry=REGISTRY,
)
SENT_BYTES = Counter(
    "streamworker_kafka_sent_bytes",
    "Serialized key and value bytes handed to the producer, by topic.",
    ["topic"],
    registry=REGISTRY,
)
SEND_ERRORS = Counter(
    "streamworker_kafka_send_errors",
    "Records the producer failed to publish, by topic.",
    ["topic"],
    registry=REGISTRY,
)
SEND_SECONDS = Histogram(
    "streamworker_kafka_send_duration_seconds",
    "From handing a record to the producer until the broker acknowledged it.",
    buckets=_KAFKA_BUCKETS,
    registry=REGISTRY,
)
COMMITS = Counter(
    "streamworker_kafka_commits", "Offset commits completed by the consumer.", registry=REGISTRY
)
COMMIT_SECONDS = Histogram(
    "streamworker_kafka_commit_duration_seconds",
    "Duration of the consumer's offset commits (a transaction commit under exactly_once).",
    buckets=_KAFKA_BUCKETS,
    registry=REGISTRY,
)
REBALANCES = Counter(
    "streamworker_kafka_rebalances", "Consumer group rebalances started.", registry=REGISTRY
)
REBALANCING = Gauge(
    "streamworker_kafka_rebalancing",
    "1 while a consumer group rebalance is in progress (no events are processed).",
    registry=REGISTRY,
)
REBALANCE_SECONDS = Histogram(
    "streamworker_kafka_rebalance_duration_seconds",
    "From a rebalance's start until the worker processes events again (recovery included).",
    buckets=_KAFKA_BUCKETS,
    registry=REGISTRY,
)
BUFFER_FULL = Counter(
    "streamworker_kafka_topic_buffer_full",
    "Times a topic's buffer was full, so the consumer had to wait for the agents, by topic.",
    ["topic"],
    registry=REGISTRY,
)


# `faust.Sensor` is Faust's hook for metrics (`app.sensors.add`): subclassing is its API.
class PrometheusSensor(faust.Sensor):
    """Maps Faust's consumer, producer and rebalance hooks to streamworker's metrics.

    `queue_topics` are the topics whose records' Kafka timestamps give
    `streamworker_queue_wait_seconds` (the submissions topic).
    """

    def __init__(self, queue_topics: Iterable[str] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.queue_topics = frozenset(queue_topics)
        self._received_at: OrderedDict[tuple[str, int, int], float] = OrderedDict()

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        MESSAGES_RECEIVED.labels(tp.topic).inc()
        size = (message.serialized_key_size or 0) + (message.serialized_value_size or 0)
        RECEIVED_BYTES.labels(tp.topic).inc(size)
        if tp.topic in self.queue_topics and message.timestamp:
            QUEUE_WAIT_SECONDS.observe(max(0.0, time.time() - message.timestamp))
        self._received_at[(tp.topic, tp.partition, offset)] = time.monotonic()
        while len(self._received_at) > MAX_TRACKED:
            self._received_at.popitem(last=False)

    def on_message_out(self, tp: TP, offset: int, message: Message) -> None:
        MESSAGES_ACKED.labels(tp.topic).inc()
        started = self._received_at.pop((tp.topic, tp.partition, offset), None)
        if started is not None:
            PROCESSING_SECONDS.labels(tp.topic).observe(time.monotonic() - started)

    def on_topic_buffer_full(self, tp: TP) -> None:
        BUFFER_FULL.labels(tp.topic).inc()

    def on_send_initiated(
        self,
        producer: ProducerT,
        topic: str,
        message: PendingMessage,
        keysize: int,
        valsize: int,
    ) -> Any:
        MESSAGES_SENT.labels(topic).inc()
        SENT_BYTES.labels(topic).inc(max(0, keysize) + max(0, valsize))
        return (topic, time.monotonic())

    def on_send_completed(self, producer: ProducerT, state: Any, metadata: RecordMetadata) -> None:
        if isinstance(state, tuple) and len(state) == 2:
            SEND_SECONDS.observe(time.monotonic() - state[1])

    def on_send_error(self, producer: ProducerT, exc: BaseException, state: Any) -> None:
        topic = state[0] if isinstance(state, tuple) and len(state) == 2 else "unknown"
        SEND_ERRORS.labels(topic).inc()

    def on_commit_initiated(self, consumer: ConsumerT) -> Any:
        return time.monotonic()

    def on_commit_completed(self, consumer: ConsumerT, state: Any) -> None:
        COMMITS.inc()
        if isinstance(state, float):
            COMMIT_SECONDS.observe(time.monotonic() - state)

    def on_rebalance_start(self, app: AppT) -> dict[str, Any]:
        REBALANCES.inc()
        REBALANCING.set(1)
        # Offsets of a partition that moved away will not be acknowledged here.
        self._received_at.clear()
        return {"time_start": time.monotonic()}

    def on_rebalance_end(self, app: AppT, state: dict[str, Any]) -> None:
        REBALANCING.set(0)
        started = state.get("time_start") if state else None
        if isinstance(started, float):
            REBALANCE_SECONDS.observe(time.monotonic() - started)
