"""Plain aiokafka producer/consumer helpers: tests talk to Kafka like any upstream would."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any, Self

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


def committed_reader(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    """A group-less read_committed consumer of `topic` from its beginning."""
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        enable_auto_commit=False,
        group_id=None,
    )


async def consume_until(
    bootstrap: str, topic: str, count: int, timeout_s: float = 60.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read `topic` from the beginning (read_committed) until `count` records or timeout."""
    consumer = committed_reader(bootstrap, topic)
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
    consumer = committed_reader(bootstrap, topic)
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


class CommittedTail:
    """One group-less `read_committed` consumer of a topic from its beginning: each
    `read_new` returns what was committed since the last one, so polling a topic of a
    thousand results costs the test process next to nothing."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            isolation_level="read_committed",
            enable_auto_commit=False,
            group_id=None,
        )
        self._partitions: list[Any] = []

    async def __aenter__(self) -> Self:
        from streamworker.client import topic_partitions

        await self._consumer.start()
        try:
            self._partitions = await topic_partitions(self._consumer, self.topic)
            self._consumer.assign(self._partitions)
            await self._consumer.seek_to_beginning(*self._partitions)
        except BaseException:
            await self._consumer.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._consumer.stop()

    async def read_new(self) -> list[dict[str, Any]]:
        """The records up to every partition's committed end as of now, decoded as JSON."""
        ends = await self._consumer.end_offsets(self._partitions)
        values: list[dict[str, Any]] = []
        remaining = {tp for tp in self._partitions if ends[tp] > 0}
        async with asyncio.timeout(120):
            while remaining:
                for tp in list(remaining):
                    if await self._consumer.position(tp) >= ends[tp]:
                        remaining.discard(tp)
                if not remaining:
                    break
                batch = await self._consumer.getmany(*remaining, timeout_ms=500)
                for part in batch.values():
                    values.extend(json.loads(r.value or b"{}") for r in part)
        return values


async def read_all(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every committed record on `topic` up to its current end, decoded as JSON."""
    async with CommittedTail(bootstrap, topic) as tail:
        return await tail.read_new()


class ResultCounter(CommittedTail):
    """Committed records per submission id on one topic, counted as they come; a
    result is seen within a poll interval of its commit."""

    POLL_S = 0.25

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(bootstrap, topic)
        self.counts: dict[str, int] = {}

    async def catch_up(self) -> dict[str, int]:
        """Count what was committed since the last call; the counts so far."""
        for value in await self.read_new():
            sid = value.get("submission_id")
            if isinstance(sid, str):
                self.counts[sid] = self.counts.get(sid, 0) + 1
        return self.counts

    async def wait(self, ids: set[str], timeout_s: float) -> dict[str, int]:
        """Until every id has a committed record (or timeout, after one full catch-up);
        the counts of `ids` (more than 1: a duplicate)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            counts = await self.catch_up()
            seen = {sid: counts[sid] for sid in ids if sid in counts}
            if len(seen) == len(ids) or asyncio.get_running_loop().time() > deadline:
                return seen
            await asyncio.sleep(self.POLL_S)


async def wait_for_count(
    bootstrap: str, topic: str, ids: set[str], timeout_s: float
) -> dict[str, int]:
    """Poll until every id has at least one committed result (or timeout); counts per id."""
    async with ResultCounter(bootstrap, topic) as counter:
        return await counter.wait(ids, timeout_s)
