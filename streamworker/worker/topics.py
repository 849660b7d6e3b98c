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
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

from streamworker import kafka_security
from streamworker.errors import ConfigError, KafkaRefused
from streamworker.fit import KAFKA_DEFAULT_MESSAGE_BYTES, MessageBudget, budget_for
from streamworker.kafka_security import aiokafka_kwargs
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
        admin = AIOKafkaAdminClient(**aiokafka_kwargs(settings))
        try:
            await kafka_security.start(settings, admin)
        except KafkaRefused:  # a refused login or certificate: retrying cannot help
            await admin.close()
            raise
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


def config_values(responses: list[Any], key: str) -> dict[str, int]:
    """`key`'s value per resource name from describe_configs responses (pure)."""
    values: dict[str, int] = {}
    for response in responses:
        for resource in response.to_object().get("resources", []):
            if resource.get("error_code"):
                continue
            for entry in resource.get("config_entries", []):
                if entry.get("config_names") == key and entry.get("config_value"):
                    values[resource["resource_name"]] = int(entry["config_value"])
    return values


def smallest_limit(*limits: int | None) -> int:
    """The smallest known limit (Kafka's default when none is known)."""
    known = [limit for limit in limits if limit]
    return min(known) if known else KAFKA_DEFAULT_MESSAGE_BYTES


async def message_budget(settings: Settings, producer_max_request_bytes: int) -> MessageBudget:
    """What a result and a dead letter may weigh: under the broker's `message.max.bytes`,
    each output topic's `max.message.bytes` and the producer's `max_request_size`.

    Read once at start-up; when Kafka cannot say, Kafka's defaults hold.
    """
    admin = AIOKafkaAdminClient(**aiokafka_kwargs(settings))
    topics = [settings.topics.results, settings.topics.dlq]
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        resources = [
            ConfigResource(
                ConfigResourceType.BROKER, str(b["node_id"]), {"message.max.bytes": None}
            )
            for b in cluster.get("brokers", [])
        ]
        broker = config_values(await admin.describe_configs(resources), "message.max.bytes")
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, None) for name in topics]
        )
        per_topic = config_values(described, "max.message.bytes")
    except (KafkaError, OSError, KeyError, ValueError) as exc:
        log.warning("could not read Kafka's message limits (%s); assuming its defaults", exc)
        broker, per_topic = {}, {}
    finally:
        await admin.close()
    broker_max = min(broker.values()) if broker else None
    budget = budget_for(
        smallest_limit(broker_max, per_topic.get(topics[0]), producer_max_request_bytes),
        smallest_limit(broker_max, per_topic.get(topics[1]), producer_max_request_bytes),
    )
    log.info(
        "message budget: results %d bytes, dead letters %d bytes",
        budget.result_bytes,
        budget.dead_letter_bytes,
    )
    return budget
