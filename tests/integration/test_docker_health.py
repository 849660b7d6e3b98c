"""A real worker while its Docker daemon stops and starts: Docker-health events and HTTP.

The worker is pointed at a second dockerd of its own (`dockerd_util.AltDockerd`, a unix
socket under /tmp), which this test stops and starts again; the machine's main dockerd,
which other tests and people use, is never touched.

Needs the `DockerMonitor` wired into the worker (it publishes the events) and `/ready`.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from types import TracebackType
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from tests.conftest import need
from tests.integration.dockerd_util import PYTHON_IMAGE, AltDockerd, alt_dockerd, can_run_dockerd
from tests.integration.kafka_util import event_bytes, produce, results_by_id

pytestmark = [pytest.mark.integration]


@pytest.fixture
def worker_dockerd(docker_available: None) -> Iterator[AltDockerd]:
    need("a second dockerd (root and dockerd)", can_run_dockerd())
    with alt_dockerd(images=(PYTHON_IMAGE,)) as daemon:
        yield daemon


class HealthFeed:
    """One worker's Docker-health events, read in order from the start of the topic."""

    def __init__(self, bootstrap: str, topic: str, worker_id: str) -> None:
        self.worker_id = worker_id
        self.seen: list[dict[str, Any]] = []
        self._consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )

    async def __aenter__(self) -> HealthFeed:
        await self._consumer.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._consumer.stop()

    async def next_status(self, status: str, timeout_s: float) -> dict[str, Any]:
        """The next event of this worker with `status` (earlier others are kept in `seen`)."""
        async with asyncio.timeout(timeout_s):
            while True:
                record = await self._consumer.getone()
                event = json.loads(record.value or b"{}")
                if event.get("worker_id") != self.worker_id:
                    continue
                assert record.key == self.worker_id.encode()
                self.seen.append(event)
                if event["status"] == status:
                    return event


def http_get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), json.loads(exc.read())


async def http_until(url: str, status: int, timeout_s: float = 30.0) -> dict[str, Any]:
    """Poll `url` until it answers `status`; returns that answer's JSON body."""
    async with asyncio.timeout(timeout_s):
        while True:
            code, body = await asyncio.to_thread(http_get, url)
            if code == status:
                return body
            await asyncio.sleep(0.3)


async def accepted(bootstrap: str, topics: dict[str, str]) -> bool:
    sid = f"health-{uuid.uuid4().hex[:10]}"
    event = {"submission_id": sid, "language": "python", "source": "print(1)\n"}
    await produce(bootstrap, topics["submissions"], [event_bytes(event)])
    found = await results_by_id(bootstrap, topics["results"], {sid}, timeout_s=60)
    return [r["status"] for r in found.get(sid, [])] == ["accepted"]


async def test_docker_stop_and_start_reach_the_topic_and_http(
    worker_dockerd: AltDockerd, start_worker: Any, kafka_bootstrap: str
) -> None:
    # `worker_dockerd` first: set up before the worker, so it is removed after the worker
    # stopped (a worker still filling its warm pool would race the daemon's shutdown).
    worker = start_worker(
        DOCKER_HOST=worker_dockerd.unix_host,
        STREAMWORKER_HEALTH_INTERVAL_S="1",
        STREAMWORKER_REQUIRED_LANGUAGES="python",
    )
    worker_id = worker.env["STREAMWORKER_WORKER_ID"]
    feed = HealthFeed(kafka_bootstrap, worker.topics["docker_health"], worker_id)
    async with feed:
        first = await feed.next_status("healthy", timeout_s=30)
        assert first["reason"] is None and first["schema_version"] == 1
        assert first["docker"]["reachable"] is True and first["docker"]["connection"] == "unix"
        assert first["docker"]["missing_images"] == [] and first["docker"]["version"]
        await http_until(f"{worker.url}/health", 200)
        await http_until(f"{worker.url}/ready", 200, timeout_s=60)
        assert await accepted(kafka_bootstrap, worker.topics), worker.log()

        stopped = time.monotonic()
        before_stop = len(feed.seen)
        await asyncio.to_thread(worker_dockerd.stop)
        down = await feed.next_status("unhealthy", timeout_s=20)
        stopping = feed.seen[before_stop:]
        detected_s = time.monotonic() - stopped
        assert down["docker"]["reachable"] is False and down["docker"]["version"] is None
        assert str(worker_dockerd.sock) in down["reason"], down
        health = await http_until(f"{worker.url}/health", 503)
        assert health["status"] == "unhealthy" and health["docker"] != "connected"
        assert health["kafka"] == "connected"
        ready = await http_until(f"{worker.url}/ready", 503)
        assert ready["docker"].startswith("unhealthy")

        await asyncio.to_thread(worker_dockerd.start)
        await feed.next_status("healthy", timeout_s=30)
        await http_until(f"{worker.url}/health", 200)
        await http_until(f"{worker.url}/ready", 200)
        assert await accepted(kafka_bootstrap, worker.topics), worker.log()
    # A daemon that is shutting down may still answer, slowly (a ping over a second,
    # while it stops the worker's warm containers): degraded is true then. Never while
    # it is up, before the stop or after the restart.
    statuses = [event["status"] for event in feed.seen]
    assert "degraded" not in statuses[:before_stop], feed.seen
    assert "degraded" not in statuses[before_stop + len(stopping) :], feed.seen
    assert {event["status"] for event in stopping} <= {"healthy", "degraded", "unhealthy"}
    assert detected_s < 15, f"unhealthy published {detected_s:.1f}s after the daemon stopped"
