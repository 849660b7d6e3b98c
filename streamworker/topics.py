"""Topic names live in `Settings.topics`; this creates them before any consumer subscribes.

A Faust consumer that subscribed before its topic existed only notices the topic at the
next metadata refresh (minutes), so the worker makes sure they exist first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from streamworker.errors import ConfigError
from streamworker.settings import Settings

log = logging.getLogger(__name__)


def settled_counts(descriptions: list[dict[str, Any]]) -> dict[str, int] | None:
    """Partition count per topic, or None while any topic's metadata is still settling.

    Right after creation the controller may describe a topic with an error code or zero
    partitions; judging partition counts from that would be a false alarm.
    """
    counts: dict[str, int] = {}
    for d in descriptions:
        if d.get("error_code", 0) != 0 or not d.get("partitions"):
            return None
        counts[d["topic"]] = len(d["partitions"])
    return counts


async def _partition_counts(
    admin: AIOKafkaAdminClient, names: list[str], timeout_s: float = 30.0
) -> dict[str, int]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        descriptions = await admin.describe_topics(names)
        counts = settled_counts(descriptions)
        if counts is not None:
            return counts
        if asyncio.get_running_loop().time() > deadline:
            # Report what we see; the caller names the topic that falls short.
            return {d["topic"]: len(d.get("partitions") or []) for d in descriptions}
        await asyncio.sleep(0.2)


def topic_names(settings: Settings) -> list[str]:
    t = settings.topics
    return [t.submissions, t.results, t.docker_health, t.dlq]


async def ensure_topics(settings: Settings, attempts: int = 30) -> int:
    """Create missing topics; returns the submissions topic's partition count.

    The worker's idempotency table must have exactly that many partitions.
    """
    for attempt in range(attempts):
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        try:
            await admin.start()
        except KafkaConnectionError as exc:
            if attempt == attempts - 1:
                raise
            log.warning("Kafka not reachable yet (%s), retrying", exc)
            await asyncio.sleep(1.0)
            continue
        try:
            existing = set(await admin.list_topics())
            missing = [name for name in topic_names(settings) if name not in existing]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):  # another worker won
                    await admin.create_topics(
                        [NewTopic(name, settings.topic_partitions, 1) for name in missing]
                    )
                log.info("created topics %s", missing)
            names = [settings.topics.submissions, settings.topics.results, settings.topics.dlq]
            counts = await _partition_counts(admin, names)
            source = counts.get(settings.topics.submissions) or settings.topic_partitions
            for name in names[1:]:
                if counts.get(name, source) < source:
                    # Outputs go to the source partition's number (see app.publish).
                    raise ConfigError(
                        "STREAMWORKER_TOPIC_PARTITIONS",
                        f"topic {name} has {counts[name]} partitions, fewer than the "
                        f"{source} of {settings.topics.submissions}; add partitions",
                    )
            return source
        finally:
            await admin.close()
    return settings.topic_partitions
