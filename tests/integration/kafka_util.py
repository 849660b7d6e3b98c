"""Plain aiokafka producer/consumer helpers: tests talk to Kafka like any upstream would."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord


async def produce(bootstrap: str, topic: str, items: Iterable[tuple[bytes | None, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in items:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


def event_bytes(event: dict[str, Any]) -> tuple[bytes, bytes]:
    return str(event["submission_id"]).encode(), json.dumps(event).encode()


async def consume_until(
    bootstrap: str, topic: str, count: int, timeout_s: float = 60.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read `topic` from the beginning (read_committed) until `count` records or timeout."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        async with asyncio.timeout(timeout_s):
            while len(records) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for part in batch.values():
                    records.extend(part)
    except TimeoutError:
        pass
    finally:
        await consumer.stop()
    return records


async def results_by_id(
    bootstrap: str, topic: str, ids: set[str], timeout_s: float = 90.0
) -> dict[str, list[dict[str, Any]]]:
    """All result events for `ids` (a list per id, to count duplicates)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    found: dict[str, list[dict[str, Any]]] = {}
    try:
        async with asyncio.timeout(timeout_s):
            while not ids.issubset(found):
                batch = await consumer.getmany(timeout_ms=500)
                for part in batch.values():
                    for record in part:
                        value = json.loads(record.value or b"{}")
                        found.setdefault(value.get("submission_id"), []).append(value)
    except TimeoutError:
        pass
    finally:
        await consumer.stop()
    return found
