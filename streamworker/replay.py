"""Rebuilding projections: from the audit event log, or from the results topic itself.

The event log is the source of truth; `executions` and `execution_runs` are projections.
When the database was lost, the committed results topic still holds every answer, so it
can be re-projected into an empty (migrated) database. Records the database refused wait
in `audit_quarantine` until `requeue_quarantined` lands them (docs/audit.md).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer

from streamworker import kafka_security
from streamworker.audit.quarantine import record_from_json
from streamworker.audit.records import AuditRecord, record_from_published
from streamworker.audit.refusal import describe, is_refusal
from streamworker.audit.store import AuditStore
from streamworker.client import topic_partitions
from streamworker.kafka_security import aiokafka_kwargs
from streamworker.settings import Settings

log = logging.getLogger(__name__)
BATCH = 500


async def replay_event_log(store: AuditStore) -> int:
    """Rebuild every projection from the event log; returns submissions rebuilt."""
    return await store.rebuild_projections()


@dataclass(frozen=True)
class Requeued:
    landed: int
    """Records now in the log (their rows are marked resolved)."""
    refused: dict[int, str]
    """Quarantine row id → why it was refused again (the row stays unresolved)."""


async def requeue_quarantined(store: AuditStore) -> Requeued:
    """Append every unresolved quarantined record to the log again, oldest first.

    Each goes alone, so one refused again does not hold back the rest; an outage raises
    (nothing is marked, run it again later). A record already in the log counts as landed.
    """
    landed = 0
    refused: dict[int, str] = {}
    for row in await store.quarantine.unresolved():
        try:
            record = record_from_json(row.record)
        except (ValueError, KeyError, TypeError) as exc:
            reason: str | None = f"unreadable record: {type(exc).__name__}: {exc}"
        else:
            reason = await _append_alone(store, record)
        if reason is None:
            await store.quarantine.resolve(row.id)
            landed += 1
        else:
            refused[row.id] = reason
            await store.quarantine.refused_again(row.id, reason)
            log.warning("quarantined audit record %d refused again: %s", row.id, reason)
    return Requeued(landed, refused)


async def _append_alone(store: AuditStore, record: AuditRecord) -> str | None:
    """None once `record` is in the log; why, if the database refuses it."""
    try:
        await store.append(record)
    except Exception as exc:
        if not is_refusal(exc):
            raise
        return describe(exc)
    return None


async def replay_results_topic(settings: Settings, store: AuditStore) -> int:
    """Append every committed result on the results topic to the log (idempotently)."""
    consumer = AIOKafkaConsumer(
        **aiokafka_kwargs(settings), isolation_level="read_committed", enable_auto_commit=False
    )
    appended = 0
    try:  # stopped even when the start fails (Kafka unreachable)
        await kafka_security.start(settings, consumer)
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
