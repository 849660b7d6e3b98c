"""Rebuilding projections: from the audit event log, or from the results topic itself.

The event log is the source of truth; `executions` and `execution_runs` are projections.
When the database was lost, the committed results topic still holds every answer, so it
can be re-projected into an empty (migrated) database.
"""

from __future__ import annotations

import json
import logging

from aiokafka import AIOKafkaConsumer

from streamworker.audit.records import record_from_published
from streamworker.audit.store import AuditStore
from streamworker.client import topic_partitions
from streamworker.settings import Settings

log = logging.getLogger(__name__)
BATCH = 500


async def replay_event_log(store: AuditStore) -> int:
    """Rebuild every projection from the event log; returns submissions rebuilt."""
    return await store.rebuild_projections()


async def replay_results_topic(settings: Settings, store: AuditStore) -> int:
    """Append every committed result on the results topic to the log (idempotently)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    await consumer.start()
    appended = 0
    try:
        partitions = await topic_partitions(consumer, settings.topics.results)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            records = []
            for tp, messages in batch.items():
                for message in messages:
                    try:
                        records.append(record_from_published(json.loads(message.value or b"")))
                    except (ValueError, KeyError, TypeError) as exc:
                        log.warning(
                            "skipping unreadable result at %s@%d: %s", tp, message.offset, exc
                        )
            if records:
                appended += sum(await store.append_many(records))
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return appended
