"""A plain Kafka client for upstream-style use: send a submission, wait for its result."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streamworker import kafka_security
from streamworker.kafka_security import aiokafka_kwargs
from streamworker.languages.registry import load_registry
from streamworker.settings import Settings


def submission_from_file(path: Path, language: str | None, stdin: str | None) -> dict[str, Any]:
    """A `.json` file is a whole event; any other file is a program's source."""
    if path.suffix == ".json":
        event: dict[str, Any] = json.loads(path.read_text())
        if not isinstance(event, dict):
            raise ValueError(f"{path}: a submission event must be a JSON object")
    else:
        lang = language or guess_language(path)
        event = {"language": lang, "source": path.read_text()}
    if language:
        event["language"] = language
    if stdin is not None:
        event["stdin"] = stdin
    event.setdefault("submission_id", f"cli-{uuid.uuid4()}")
    return event


def guess_language(path: Path) -> str:
    for lang in load_registry().values():
        if Path(lang.source_file).suffix == path.suffix:
            return lang.id
    raise ValueError(f"cannot tell the language of {path.name}; pass --language")


async def submit_and_wait(
    settings: Settings, event: dict[str, Any], timeout_s: float = 60.0
) -> dict[str, Any]:
    """Produce `event` and return the first result with its submission id."""
    sid = str(event["submission_id"])
    consumer = AIOKafkaConsumer(
        **aiokafka_kwargs(settings), isolation_level="read_committed", enable_auto_commit=False
    )
    producer = AIOKafkaProducer(**aiokafka_kwargs(settings), acks="all")
    try:  # stopped even when a start fails (Kafka unreachable): no "Unclosed" noise
        await kafka_security.start(settings, consumer, producer)
        await assign_at_end(consumer, settings.topics.results)
        await producer.send_and_wait(
            settings.topics.submissions, json.dumps(event).encode(), key=sid.encode()
        )
        async with asyncio.timeout(timeout_s):
            async for record in consumer:
                if record.key == sid.encode() and record.value is not None:
                    result: dict[str, Any] = json.loads(record.value)
                    return result
    finally:
        await producer.stop()
        await consumer.stop()
    raise TimeoutError(f"no result for {sid} within {timeout_s}s")


async def assign_at_end(consumer: AIOKafkaConsumer, topic: str) -> None:
    """Assign every partition of `topic`, positioned at its end *now*: what is produced
    after this returns is read, nothing before it is (resolving the positions lazily
    would let a fast result slip before the end is known)."""
    partitions = await topic_partitions(consumer, topic)
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for tp in partitions:
        await consumer.position(tp)


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The topic's partitions; asking for them creates the topic if auto-create is on."""
    for _ in range(50):
        await consumer._client.force_metadata_update()
        found = consumer.partitions_for_topic(topic)
        if found:
            return [TopicPartition(topic, p) for p in sorted(found)]
        consumer._client.add_topic(topic)
        await asyncio.sleep(0.2)
    raise RuntimeError(f"topic {topic} does not exist")
