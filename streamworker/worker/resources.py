"""The worker's long-lived resources: Docker client, audit store and writer, Kafka probe.

Created at start-up (the Faust agent waits on `ready`), closed at shutdown, and pinged
for `/health` and `/ready`. Nothing here knows about Faust.
"""

from __future__ import annotations

import asyncio
import logging

import aiodocker
from aiokafka import AIOKafkaClient

from streamworker.audit.store import AuditStore
from streamworker.audit.writer import AuditWriter
from streamworker.contract import iso, now_utc
from streamworker.fit import DEFAULT_BUDGET, MessageBudget
from streamworker.kafka_security import aiokafka_kwargs
from streamworker.monitor import DockerMonitor, KafkaPublisher, required_images
from streamworker.pipeline import Pipeline
from streamworker.sandbox.connection import connect, resolve_endpoint
from streamworker.sandbox.executor import DockerSandbox
from streamworker.sandbox.pool import PoolManager
from streamworker.sandbox.probe import ping
from streamworker.sandbox.reaper import reap_expired
from streamworker.settings import Settings
from streamworker.worker.health import (
    HealthReport,
    ReadinessReport,
    check,
    decide_readiness,
    gather_health,
)

log = logging.getLogger(__name__)

WRITER_STOP_S = 10.0


class Resources:
    """Holds what one worker process needs besides Faust itself."""

    def __init__(self, settings: Settings, budget: MessageBudget = DEFAULT_BUDGET) -> None:
        self.settings = settings
        self.budget = budget
        self.ready = asyncio.Event()
        self.endpoint = resolve_endpoint(settings.docker)
        self._health_publisher = KafkaPublisher(
            aiokafka_kwargs(settings), settings.topics.docker_health
        )
        self.monitor = DockerMonitor(
            lambda: connect(self.endpoint),
            self.endpoint,
            settings,
            self._health_publisher,
            required_images(settings, settings.required_languages),
            on_restart=self._docker_restarted,
        )
        self._docker: aiodocker.Docker | None = None
        self._store: AuditStore | None = None
        self._writer: AuditWriter | None = None
        self._kafka: AIOKafkaClient | None = None
        self._pipeline: Pipeline | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._pools: PoolManager | None = None

    @property
    def pipeline(self) -> Pipeline:
        assert self._pipeline is not None, "resources not started"
        return self._pipeline

    async def start(self) -> None:
        self._docker = connect(self.endpoint)
        self._store = await AuditStore.open(self.settings.resolved_database_url())
        self._writer = AuditWriter(self._store, lag_degraded_s=self.settings.audit_lag_degraded_s)
        self._writer.start()
        self._kafka = AIOKafkaClient(**aiokafka_kwargs(self.settings))
        try:
            await self._kafka.bootstrap()
        except Exception as exc:  # health will report it; the consumer retries on its own
            log.warning("Kafka probe bootstrap failed: %s", exc)
        self._reaper = asyncio.create_task(self._reap_forever(), name="reaper")
        self._pools = PoolManager(self._docker, self.settings)
        if self.settings.pool_max_size > 0:
            await self._pools.start()
        sandbox = DockerSandbox(self._docker, self.settings, pools=self._pools)
        self._pipeline = Pipeline(self.settings, sandbox, self._writer, budget=self.budget)
        await self.monitor.start()
        self.ready.set()
        log.info("worker %s ready (docker via %s)", self.settings.worker_id, self.endpoint.kind)

    async def _docker_restarted(self) -> None:
        """The daemon came back: the warm containers died with the old one."""
        if self._pools is not None:
            self._pools.discard_all()

    async def _reap_forever(self) -> None:
        """Remove expired containers at start-up, then every `reap_interval_s`."""
        while True:
            try:
                assert self._docker is not None
                await reap_expired(self._docker, now_utc(), self.settings.pool_max_idle_s)
            except Exception as exc:  # Docker down: try again next round
                log.warning("reaper round failed: %s", exc)
            await asyncio.sleep(self.settings.reap_interval_s)

    async def stop(self) -> None:
        await self.monitor.stop()
        await self._health_publisher.close()
        if self._pools is not None:
            await self._pools.stop()
        if self._reaper is not None:
            self._reaper.cancel()
            await asyncio.gather(self._reaper, return_exceptions=True)
        if self._writer is not None:
            await self._writer.stop(timeout_s=WRITER_STOP_S)
        if self._kafka is not None:
            await self._kafka.close()
        if self._store is not None:
            await self._store.close()
        if self._docker is not None:
            await self._docker.close()

    async def _ping_docker(self) -> None:
        # `ping`'s own timeout is longer than the health check's, so a slow daemon is
        # reported as the check's "timeout after …" as before.
        assert self._docker is not None
        await ping(self._docker)

    async def _ping_kafka(self) -> None:
        assert self._kafka is not None
        await self._kafka.fetch_all_metadata()

    async def _ping_database(self) -> None:
        assert self._store is not None
        await self._store.ping()

    async def health(self) -> HealthReport:
        """`/health`: a bounded round trip to each dependency, plus the audit log's state."""
        if not self.ready.is_set():
            return HealthReport("starting", "starting", "starting", iso(now_utc()) or "")
        assert self._writer is not None
        return await gather_health(
            self._ping_docker, self._ping_kafka, self._ping_database, audit=self._writer.health
        )

    async def readiness(self, consumer: str) -> ReadinessReport:
        """`/ready`: the monitor's last Docker verdict, a Kafka round trip, the group state."""
        if not self.ready.is_set():
            return decide_readiness(None, "starting", consumer)
        kafka, _ = await check(self._ping_kafka)
        audit = self._writer.health_now() if self._writer is not None else None
        return decide_readiness(self.monitor.current, kafka, consumer, audit)
