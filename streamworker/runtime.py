"""The worker's long-lived resources: Docker client, audit store and writer, Kafka probe.

Created at start-up, closed at shutdown; the Faust agent waits on `ready`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import aiodocker
import aiohttp
from aiokafka import AIOKafkaClient

from streamworker.audit.store import AuditStore
from streamworker.audit.writer import AuditWriter
from streamworker.contract import iso, now_utc
from streamworker.errors import DockerUnavailable
from streamworker.fit import DEFAULT_BUDGET, MessageBudget
from streamworker.health import (
    HealthReport,
    ReadinessReport,
    check,
    decide_readiness,
    gather_health,
)
from streamworker.monitor import DockerMonitor, KafkaPublisher, required_images
from streamworker.pipeline import Pipeline
from streamworker.sandbox.connection import connect, resolve_endpoint
from streamworker.sandbox.executor import DockerSandbox
from streamworker.sandbox.pool import PoolManager
from streamworker.sandbox.reaper import reap_expired
from streamworker.sandbox.tls import explain_failure
from streamworker.settings import Settings

log = logging.getLogger(__name__)


class WorkerRuntime:
    """Holds what one worker process needs besides Faust itself."""

    def __init__(self, settings: Settings, budget: MessageBudget = DEFAULT_BUDGET) -> None:
        self.settings = settings
        self.budget = budget
        self.ready = asyncio.Event()
        self.endpoint = resolve_endpoint(settings.docker)
        self._health_publisher = KafkaPublisher(
            settings.kafka_bootstrap, settings.topics.docker_health
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
        self.draining = False
        # Set when the worker must start over in a fresh process (see request_restart).
        self.restart_reason: str | None = None
        self.on_restart: Callable[[str], None] | None = None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: set[asyncio.Task[object]] = set()

    @contextlib.asynccontextmanager
    async def tracking(self) -> AsyncIterator[None]:
        """Count one event being handled and published (for the shutdown drain)."""
        task = asyncio.current_task()
        self._in_flight += 1
        if task is not None:
            self._tasks.add(task)
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if task is not None:
                self._tasks.discard(task)
            if self._in_flight == 0:
                self._idle.set()

    @property
    def accepting(self) -> bool:
        """False once draining for shutdown."""
        return not self.draining

    def request_restart(self, reason: str) -> None:
        """Stop taking events and have the worker restart in place (once).

        For state only a new process recovers, like a Kafka transaction that can take no
        more output: events not yet acknowledged are redelivered to the new process.
        """
        self.draining = True
        if self.restart_reason is not None:
            return
        self.restart_reason = reason
        log.error("restarting the worker in place: %s", reason)
        if self.on_restart is not None:
            self.on_restart(reason)

    async def drain(self, grace_s: float) -> bool:
        """Stop accepting; wait up to `grace_s` for in-flight events. True if all finished."""
        self.draining = True
        return await self._finish_in_flight(grace_s)

    async def _finish_in_flight(self, grace_s: float) -> bool:
        try:
            async with asyncio.timeout(grace_s):
                await self._idle.wait()
        except TimeoutError:
            log.warning(
                "%d run(s) still in flight after %.0fs: cancelling; they will be redelivered",
                self._in_flight,
                grace_s,
            )
            # Cancelled runs publish nothing and leave their events unacknowledged; their
            # containers are removed on the way out (shielded) or by the next attempt.
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await self._idle.wait()
            return False
        return True

    @property
    def pipeline(self) -> Pipeline:
        assert self._pipeline is not None, "runtime not started"
        return self._pipeline

    async def start(self) -> None:
        self._docker = connect(self.endpoint)
        self._store = await AuditStore.open(self.settings.resolved_database_url())
        self._writer = AuditWriter(self._store, lag_degraded_s=self.settings.audit_lag_degraded_s)
        self._writer.start()
        self._kafka = AIOKafkaClient(bootstrap_servers=self.settings.kafka_bootstrap)
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
            await self._writer.stop(timeout_s=10.0)
        if self._kafka is not None:
            await self._kafka.close()
        if self._store is not None:
            await self._store.close()
        if self._docker is not None:
            await self._docker.close()

    async def _ping_docker(self) -> None:
        assert self._docker is not None
        try:
            async with self._docker._query("_ping", versioned_api=False) as response:
                await response.read()
        except (aiodocker.DockerError, aiohttp.ClientError, OSError) as exc:
            raise DockerUnavailable(explain_failure(exc, self.endpoint).cause) from exc

    async def _ping_kafka(self) -> None:
        assert self._kafka is not None
        await self._kafka.fetch_all_metadata()

    async def _ping_database(self) -> None:
        assert self._store is not None
        await self._store.ping()

    async def health(self) -> HealthReport:
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
