"""Docker health: decide healthy/degraded/unhealthy from probes, publish the event.

The worker publishes a Docker-health event at start-up, on every change of status and
every `health_interval_s`. Between probes it follows the daemon's event stream: the
stream breaking (the daemon stopping or restarting) or coming back, and an OOM kill of
one of our containers, trigger an immediate re-check, so a dead daemon is reported
within about a second instead of at the next interval. Probes and the stream each use a
client from `docker_factory`, made anew after a failure, so a daemon that comes back is
picked up without restarting the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from streamworker import metrics
from streamworker.contract import DockerHealthEvent, DockerStatus, now_utc
from streamworker.errors import ConfigError, UnknownLanguage
from streamworker.languages.registry import get_language, image_ref, load_registry
from streamworker.sandbox.connection import DockerEndpoint
from streamworker.sandbox.probe import FAILURES, PROBE_TIMEOUT_S, Daemon, DockerFactory, Probe
from streamworker.settings import Settings

log = logging.getLogger(__name__)

SLOW_PING_S = 1.0
"""A daemon slower than this to answer `_ping` still works, but is reported degraded."""
RECHECK_MIN_GAP_S = 0.5
"""Events can come in bursts; two re-checks a second are plenty."""
STREAM_BACKOFF_S = (0.25, 0.5, 1.0, 2.0, 5.0)

Publish = Callable[[DockerHealthEvent], Awaitable[None]]


def decide(found: Probe, slow_ping_s: float = SLOW_PING_S) -> tuple[DockerStatus, str | None]:
    """Status and reason: unreachable → unhealthy; any shortfall → degraded; else healthy."""
    if not found.reachable:
        return DockerStatus.UNHEALTHY, found.error or "Docker did not answer"
    problems = []
    if found.missing_images:
        problems.append(
            f"runtime images missing: {', '.join(found.missing_images)} "
            "(run `streamworker images build`)"
        )
    if found.ping_s is not None and found.ping_s > slow_ping_s:
        problems.append(f"ping took {found.ping_s * 1000:.0f} ms (over {slow_ping_s * 1000:.0f})")
    if found.problem:
        problems.append(found.problem)
    if problems:
        return DockerStatus.DEGRADED, "; ".join(problems)
    return DockerStatus.HEALTHY, None


def should_publish(last_published: DockerStatus | None, status: DockerStatus, due: bool) -> bool:
    """Publish when nothing was published yet, on a change of status, and when due."""
    return due or last_published is None or last_published is not status


def required_images(settings: Settings, languages: Sequence[str] = ()) -> list[str]:
    """The runtime images the worker needs: of `languages`, or of every registered one."""
    try:
        langs = [get_language(i) for i in languages] if languages else load_registry().values()
    except UnknownLanguage as exc:
        raise ConfigError("STREAMWORKER_REQUIRED_LANGUAGES", str(exc)) from exc
    return list(dict.fromkeys(image_ref(lang, settings) for lang in langs))


def health_event(found: Probe, endpoint: DockerEndpoint, worker_id: str) -> DockerHealthEvent:
    """The contract's Docker-health event for one probe."""
    status, reason = decide(found)
    return DockerHealthEvent(
        worker_id=worker_id,
        status=status,
        reason=reason,
        reachable=found.reachable,
        connection=endpoint.kind,
        version=found.version,
        api_version=found.api_version,
        ping_ms=round(found.ping_s * 1000, 3) if found.ping_s is not None else None,
        containers_running=found.containers_running,
        missing_images=found.missing_images,
        observed_at=now_utc(),
    )


class DockerMonitor:
    """Keeps `current` (the last event) up to date and publishes events while started."""

    def __init__(
        self,
        docker_factory: DockerFactory,
        endpoint: DockerEndpoint,
        settings: Settings,
        publish: Publish,
        required: Sequence[str],
        on_restart: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """`on_restart` runs once the daemon answers again after it was unreachable or its
        event stream broke: whatever the worker kept alive there (warm containers) may
        have died with the old daemon."""
        self.current: DockerHealthEvent | None = None
        self._daemon = Daemon(docker_factory, endpoint, required)
        self._settings = settings
        self._publish = publish
        self._on_restart = on_restart
        self._maybe_restarted = False
        self._restart_tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._published: DockerStatus | None = None
        self._last_check = float("-inf")
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Check once (so `current` is set when this returns), then keep watching."""
        await self.check(due=True)
        self._tasks = [
            asyncio.create_task(self._check_loop(), name="docker-monitor"),
            asyncio.create_task(self._watch_events(), name="docker-events"),
        ]

    async def stop(self) -> None:
        for task in [*self._tasks, *self._restart_tasks]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._restart_tasks, return_exceptions=True)
        self._tasks = []
        await self._daemon.close()

    def recheck(self) -> None:
        """Ask for a check as soon as the minimum gap allows."""
        self._wake.set()

    async def check(self, due: bool = False) -> DockerHealthEvent:
        """Probe now, update `current` and the metrics, publish if it is time to."""
        self._last_check = time.monotonic()
        found = await self._daemon.probe()
        if found.reachable:
            self._back()
        else:
            self._maybe_restarted = True
        event = health_event(found, self._daemon.endpoint, self._settings.worker_id)
        self._observe(event, found)
        if should_publish(self._published, event.status, due):
            try:
                async with asyncio.timeout(PROBE_TIMEOUT_S):
                    await self._publish(event)
            except Exception as exc:  # Kafka trouble must not stop the watching
                log.warning("publishing Docker health (%s) failed: %s", event.status.value, exc)
            else:
                self._published = event.status
        return event

    def _observe(self, event: DockerHealthEvent, found: Probe) -> None:
        previous, self.current = self.current, event
        metrics.DOCKER_UP.set(1 if found.reachable else 0)
        if found.ping_s is not None:
            metrics.DOCKER_PING_SECONDS.set(found.ping_s)
        for status in DockerStatus:
            metrics.DOCKER_STATUS.labels(status.value).set(1 if status is event.status else 0)
        if previous is None or previous.status is not event.status:
            healthy = event.status is DockerStatus.HEALTHY
            log.log(
                logging.INFO if healthy else logging.WARNING,
                "Docker is %s (%s)",
                event.status.value,
                event.reason or "all checks pass",
            )

    async def _check_loop(self) -> None:
        interval_s = self._settings.health_interval_s
        next_due = time.monotonic() + interval_s
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_due - time.monotonic())):
                    await self._wake.wait()
            self._wake.clear()
            gap_s = RECHECK_MIN_GAP_S - (time.monotonic() - self._last_check)
            if gap_s > 0:
                await asyncio.sleep(gap_s)
            due = time.monotonic() >= next_due
            if due:
                next_due = time.monotonic() + interval_s
            try:
                await self.check(due=due)
            except Exception:  # one bad probe must not end the monitor
                log.exception("Docker health check failed")

    async def _watch_events(self) -> None:
        """Follow the daemon's events; the stream ending or breaking means a re-check."""
        failures = 0
        while True:
            connected = False

            def on_connected() -> None:
                nonlocal connected, failures
                connected = True
                if failures:  # the daemon is back, and may be a new one
                    self.recheck()
                    self._back()
                failures = 0

            try:
                async for action, container_id in self._daemon.events(on_connected):
                    self._on_event(action, container_id)
                log.warning("Docker event stream ended (daemon stopping?)")
            except FAILURES as exc:
                if connected:
                    log.warning("Docker event stream broke: %s", exc)
            if connected:
                metrics.DOCKER_EVENT_STREAM_BREAKS.inc()
                self._maybe_restarted = True
            failures += 1
            self.recheck()
            await asyncio.sleep(STREAM_BACKOFF_S[min(failures, len(STREAM_BACKOFF_S)) - 1])

    def _back(self) -> None:
        """The daemon answers; if it was away, tell `on_restart` (once)."""
        if not self._maybe_restarted or self._on_restart is None:
            return
        self._maybe_restarted = False
        task = asyncio.create_task(self._run_restart_hook(self._on_restart))
        self._restart_tasks.add(task)
        task.add_done_callback(self._restart_tasks.discard)

    @staticmethod
    async def _run_restart_hook(hook: Callable[[], Awaitable[None]]) -> None:
        try:
            await hook()
        except Exception:
            log.exception("the Docker restart hook failed")

    def _on_event(self, action: str, container_id: str) -> None:
        if action not in ("oom", "die"):
            return
        metrics.DOCKER_CONTAINER_EVENTS.labels(action).inc()
        # Every run's container dies when it is removed, so a `die` is only counted; an
        # OOM kill hints at memory pressure on the host, worth a fresh look.
        if action == "oom":
            log.info("container %s was OOM-killed", container_id[:12])
            self.recheck()


class KafkaPublisher:
    """Publishes Docker-health events with a plain (non-transactional) producer.

    Not through Faust: under exactly-once, Faust sends inside the transaction of a
    consumed partition, and these events belong to no submission. The producer starts
    on first use and again after a failure, so Kafka being down at start-up is harmless.
    """

    def __init__(self, client_kwargs: Mapping[str, Any], topic: str) -> None:
        self._client_kwargs = client_kwargs
        """`kafka_security.aiokafka_kwargs`: the servers and the security."""
        self._topic = topic
        self._producer: AIOKafkaProducer | None = None

    async def __call__(self, event: DockerHealthEvent) -> None:
        if self._producer is None:
            producer = AIOKafkaProducer(**self._client_kwargs, linger_ms=0)
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        try:
            await self._producer.send_and_wait(
                self._topic, event.encode(), key=event.worker_id.encode()
            )
        except Exception:
            await self.close()
            raise

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()
