"""The bench's commit-latency floor against the real broker: Kafka alone, no worker."""

from __future__ import annotations

import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from streamworker.bench import kafka_floor
from streamworker.settings import load_settings

pytestmark = [pytest.mark.integration, pytest.mark.no_runtime_images]


async def test_floor_samples_both_paths_and_leaves_no_topic(kafka_bootstrap: str) -> None:
    app_id = f"floor{uuid.uuid4().hex[:8]}"
    settings = load_settings(
        {"STREAMWORKER_KAFKA_BOOTSTRAP": kafka_bootstrap, "STREAMWORKER_APP_ID": app_id}
    )
    plain, transactional = await kafka_floor.measure(settings, 5)
    for phase in (plain, transactional):
        assert phase.errors == []
        assert len(phase.latencies_s) == 5
        assert all(0 < s < kafka_floor.SEEN_TIMEOUT_S for s in phase.latencies_s)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        assert not [t for t in await admin.list_topics() if t.startswith(app_id)]
    finally:
        await admin.close()
