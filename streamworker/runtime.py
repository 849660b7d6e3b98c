"""The worker's long-lived resources: Docker client, audit store and writer, Kafka probe.

Created at start-up, closed at shutdown; the Faust agent waits on `ready`.
"""

from __future__ import annotations

import asyncio
import logging

import aiodocker
from aiokafka import AIOKafkaClient

from streamworker import metrics
from streamworker.audit.store import AuditStore
from streamworker.audit.writer import AuditWriter
from streamworker.contract import iso, now_utc
from streamworker.health import HealthReport, gather_health
from streamworker.pipeline import Pipeline
from streamworker.sandbox.connection import connect, resolve_endpoint
from streamworker.sandbox.executor import DockerSandbox
from streamworker.settings import Settings

log = logging.getLogger(__name__)


class WorkerRuntime:
    """Holds what one worker process needs besides Faust itself."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ready = asyncio.Event()
        self.endpoint = resolve_endpoint(settings.docker)
        self._docker: aiodocker.Docker | None = None
        self._store: AuditStore | None = None
        self._writer: AuditWriter | None = None
        self._kafka: AIOKafkaClient | None = None
        self._pipeline: Pipeline | None = None

    @property
    def pipeline(self) -> Pipeline:
        assert self._pipeline is not None, "runtime not started"
        return self._pipeline

    async def start(self) -> None:
        self._docker = connect(self.endpoint)
        self._store = await AuditStore.open(self.settings.resolved_database_url())
        self._writer = AuditWriter(self._store)
        self._writer.start()
        self._kafka = AIOKafkaClient(bootstrap_servers=self.settings.kafka_bootstrap)
        try:
            await self._kafka.bootstrap()
        except Exception as exc:  # health will report it; the consumer retries on its own
            log.warning("Kafka probe bootstrap failed: %s", exc)
        sandbox = DockerSandbox(self._docker, self.settings)
        self._pipeline = Pipeline(self.settings, sandbox, self._writer)
        self.ready.set()
        log.info("worker %s ready (docker via %s)", self.settings.worker_id, self.endpoint.kind)

    async def stop(self) -> None:
        if self._writer is not None:
            await self._writer.stop(timeout_s=10.0)
        if self._kafka is not None:
            await self._kafka.close()
        if self._store is not None:
            await self._store.close()
        if self._docker is not None:
            await self._docker.close()

    async def _ping_docker(self) -> None:
        assert self._docker is not None
        async with self._docker._query("_ping") as response:
            await response.read()

    async def _ping_kafka(self) -> None:
        assert self._kafka is not None
        await self._kafka.fetch_all_metadata()

    async def _ping_database(self) -> None:
        assert self._store is not None
        await self._store.ping()

    async def health(self) -> HealthReport:
        if not self.ready.is_set():
            return HealthReport("starting", "starting", "starting", iso(now_utc()) or "")
        report = await gather_health(self._ping_docker, self._ping_kafka, self._ping_database)
        metrics.DOCKER_UP.set(1 if report.docker == "connected" else 0)
        return report
