"""The local stack itself (dev/stack.sh up): Kafka as aiokafka uses it, and PostgreSQL.

These pin what the worker relies on from the brokers: plain produce/consume, and
transactions whose aborted records a read_committed consumer never sees.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.conftest import need, port_open

pytestmark = [pytest.mark.integration, pytest.mark.no_runtime_images]

PG_DSN = "postgresql://streamworker:streamworker@127.0.0.1:5432/streamworker"
READ_TIMEOUT_S = 30.0

TopicFactory = Callable[[int], Awaitable[str]]


@pytest_asyncio.fixture
async def fresh_topic(kafka_bootstrap: str) -> AsyncIterator[TopicFactory]:
    """Factory: create a uniquely named topic; every one is deleted at teardown."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    created: list[str] = []

    async def create(partitions: int = 1) -> str:
        name = f"stack-test-{uuid.uuid4().hex[:12]}"
        await admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        created.append(name)
        return name

    try:
        yield create
    finally:
        try:
            if created:
                await admin.delete_topics(created)
        finally:
            await admin.close()


async def read_values(
    bootstrap: str, topic: str, until: bytes, isolation_level: str
) -> list[bytes]:
    """Values of `topic` from the start, in order, up to and including `until`."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        isolation_level=isolation_level,
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        async with asyncio.timeout(READ_TIMEOUT_S):
            while until not in values:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    values.extend(record.value for record in records if record.value)
    finally:
        await consumer.stop()
    return values


async def test_plain_round_trip(kafka_bootstrap: str, fresh_topic: TopicFactory) -> None:
    topic = await fresh_topic(1)
    sent = [f"plain-{i}".encode() for i in range(3)]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for value in sent:
            await producer.send_and_wait(topic, value, key=b"k")
    finally:
        await producer.stop()

    assert await read_values(kafka_bootstrap, topic, sent[-1], "read_uncommitted") == sent


async def test_read_committed_sees_committed_not_aborted(
    kafka_bootstrap: str, fresh_topic: TopicFactory
) -> None:
    topic = await fresh_topic(1)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        transactional_id=f"stack-test-{uuid.uuid4().hex[:12]}",
    )
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed-1")
            await producer.send_and_wait(topic, b"committed-2")

        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"aborted-1")
        await producer.abort_transaction()

        # A last committed transaction: reading up to it proves the consumer got
        # past the aborted records rather than stopping before them.
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed-3")
    finally:
        await producer.stop()

    committed = await read_values(kafka_bootstrap, topic, b"committed-3", "read_committed")
    assert committed == [b"committed-1", b"committed-2", b"committed-3"]

    # The aborted record did reach the log: read_uncommitted sees it.
    everything = await read_values(kafka_bootstrap, topic, b"committed-3", "read_uncommitted")
    assert b"aborted-1" in everything


async def test_postgres_accepts_the_stack_role() -> None:
    need("PostgreSQL", port_open("127.0.0.1", 5432))
    conn = await asyncpg.connect(PG_DSN, timeout=10)
    try:
        row = await conn.fetchrow("SELECT current_user, current_database()")
    finally:
        await conn.close()
    assert row is not None
    assert tuple(row) == ("streamworker", "streamworker")
