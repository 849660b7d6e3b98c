"""The commit-latency floor: what Kafka alone costs before a result is visible.

An exactly-once result is visible to a `read_committed` consumer only once its transaction
commits. This measures that path with nothing else in it — no worker, no Docker, no
database: a transactional producer sends one record, adds a consumer offset to the
transaction (as the worker does for the event it answered) and commits; the sample is the
time from the send until a `read_committed` consumer holds the record. Beside it, the
same record through a plain `acks=all` producer: the part of the floor that transactions
add is the difference. The e2e rows' distance above this floor is the worker's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from streamworker import kafka_security
from streamworker.bench.e2e import Phase
from streamworker.kafka_security import aiokafka_kwargs
from streamworker.settings import Settings

SEEN_TIMEOUT_S = 30.0
PAUSE_S = 0.05
"""Between samples: each one starts with no transaction or fetch of the last in flight."""


@contextlib.asynccontextmanager
async def _floor_topic(settings: Settings) -> AsyncIterator[str]:
    """A one-partition topic of its own, deleted afterwards."""
    name = f"{settings.app_id}.bench-floor-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(settings))
    await kafka_security.start(settings, admin)
    try:
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
        yield name
    finally:
        with contextlib.suppress(Exception):
            await admin.delete_topics([name])
        await admin.close()


class _Reader:
    """A `read_committed` consumer at the end of the topic; `next_arrival` waits for a
    record and says when it came."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.settings = settings
        self.consumer = AIOKafkaConsumer(
            **aiokafka_kwargs(settings),
            isolation_level="read_committed",
            enable_auto_commit=False,
            group_id=None,
            fetch_max_wait_ms=500,
        )
        self.partition = TopicPartition(topic, 0)

    async def start(self) -> None:
        await kafka_security.start(self.settings, self.consumer)
        self.consumer.assign([self.partition])
        await self.consumer.seek_to_end(self.partition)

    async def next_arrival(self) -> float:
        async with asyncio.timeout(SEEN_TIMEOUT_S):
            while True:
                batch = await self.consumer.getmany(self.partition, timeout_ms=1000)
                if batch.get(self.partition):
                    return time.perf_counter()


async def measure(settings: Settings, count: int) -> tuple[Phase, Phase]:
    """`count` samples each of (plain `acks=all` send, transactional send + offsets +
    commit), alternating; visible-to-`read_committed` latency."""
    plain, transactional = Phase(), Phase()
    async with _floor_topic(settings) as topic:
        reader = _Reader(settings, topic)
        producer = AIOKafkaProducer(**aiokafka_kwargs(settings), acks="all", linger_ms=0)
        txn = AIOKafkaProducer(
            **aiokafka_kwargs(settings), transactional_id=f"{topic}-txn", linger_ms=0
        )
        await kafka_security.start(settings, producer, txn)
        group = f"{topic}-group"
        try:
            # Warm-up, not counted: the new partition's leader, the transaction
            # coordinator and the first transaction's set-up.
            await producer.send_and_wait(topic, b"warm-up", partition=0)
            await txn.begin_transaction()
            await txn.send_and_wait(topic, b"warm-up", partition=0)
            await txn.commit_transaction()
            await reader.start()
            for i in range(count):
                began = time.perf_counter()
                waiting = asyncio.ensure_future(reader.next_arrival())
                await producer.send_and_wait(topic, b"floor", partition=0)
                plain.latencies_s.append(await waiting - began)
                await asyncio.sleep(PAUSE_S)

                began = time.perf_counter()
                waiting = asyncio.ensure_future(reader.next_arrival())
                await txn.begin_transaction()
                await txn.send(topic, b"floor", partition=0)
                await txn.send_offsets_to_transaction({reader.partition: i + 1}, group)
                await txn.commit_transaction()
                transactional.latencies_s.append(await waiting - began)
                await asyncio.sleep(PAUSE_S)
        finally:
            await producer.stop()
            await txn.stop()
            await reader.consumer.stop()
    return plain, transactional
