"""The Docker-health policy and the monitor's loop, against a scripted fake daemon."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiodocker
import pytest

from streamworker import metrics, monitor
from streamworker.contract import DockerHealthEvent, DockerStatus
from streamworker.errors import ConfigError
from streamworker.monitor import DockerMonitor, decide, required_images, should_publish
from streamworker.sandbox.connection import DockerEndpoint
from streamworker.sandbox.probe import Probe, event_action, missing_images
from streamworker.settings import Settings

HEALTHY = Probe(reachable=True, version="20.10", api_version="1.41", ping_s=0.002)


# -- pure policy ----------------------------------------------------------------------


def test_unreachable_is_unhealthy_with_the_cause() -> None:
    status, reason = decide(Probe(reachable=False, error="no Docker socket at /x.sock"))
    assert status is DockerStatus.UNHEALTHY
    assert reason == "no Docker socket at /x.sock"


def test_all_good_is_healthy_without_reason() -> None:
    assert decide(HEALTHY) == (DockerStatus.HEALTHY, None)


@pytest.mark.parametrize(
    ("probe", "words"),
    [
        (Probe(reachable=True, ping_s=0.01, missing_images=("a/b:c",)), ["a/b:c", "images build"]),
        (Probe(reachable=True, ping_s=1.5), ["1500 ms"]),
        (Probe(reachable=True, ping_s=0.01, problem="info failed"), ["info failed"]),
    ],
)
def test_shortfalls_are_degraded_and_named(probe: Probe, words: list[str]) -> None:
    status, reason = decide(probe)
    assert status is DockerStatus.DEGRADED
    assert reason is not None
    for word in words:
        assert word in reason


def test_several_shortfalls_are_all_named() -> None:
    _, reason = decide(Probe(reachable=True, ping_s=2.0, missing_images=("x:1",)))
    assert reason is not None and "x:1" in reason and "2000 ms" in reason


@pytest.mark.parametrize(
    ("last", "now", "due", "expected"),
    [
        (None, DockerStatus.HEALTHY, False, True),  # start-up
        (DockerStatus.HEALTHY, DockerStatus.HEALTHY, False, False),  # nothing new
        (DockerStatus.HEALTHY, DockerStatus.HEALTHY, True, True),  # the interval
        (DockerStatus.HEALTHY, DockerStatus.UNHEALTHY, False, True),  # a change
        (DockerStatus.DEGRADED, DockerStatus.HEALTHY, False, True),
    ],
)
def test_should_publish(
    last: DockerStatus | None, now: DockerStatus, due: bool, expected: bool
) -> None:
    assert should_publish(last, now, due) is expected


def test_missing_images_match_tags_and_digests_in_docker_short_form() -> None:
    images: list[dict[str, Any]] = [
        {"RepoTags": ["streamworker-runtime/python:bookworm"], "RepoDigests": []},
        {"RepoTags": ["busybox:latest"], "RepoDigests": ["busybox@sha256:abc"]},
        {"RepoTags": None, "RepoDigests": None},
    ]
    required = [
        "streamworker-runtime/python:bookworm",
        "docker.io/library/busybox",
        "busybox@sha256:abc",
        "streamworker-runtime/go:bookworm",
        "registry.local:5000/tools",
    ]
    assert missing_images(required, images) == [
        "streamworker-runtime/go:bookworm",
        "registry.local:5000/tools",
    ]


def test_required_images_of_named_languages_or_all() -> None:
    settings = Settings()
    assert required_images(settings, ["python"]) == ["streamworker-runtime/python:bookworm"]
    everything = required_images(settings)
    assert "streamworker-runtime/python:bookworm" in everything
    assert len(everything) > 5


def test_unknown_required_language_names_the_setting() -> None:
    with pytest.raises(ConfigError) as caught:
        required_images(Settings(), ["klingon"])
    assert caught.value.key == "STREAMWORKER_REQUIRED_LANGUAGES"


def test_event_lines_are_parsed_and_noise_ignored() -> None:
    line = json.dumps({"Type": "container", "Action": "oom", "id": "abc123"}).encode()
    assert event_action(line) == ("oom", "abc123")
    assert event_action(b"not json") is None
    assert event_action(b"[1, 2]") is None


# -- the loop, against a fake daemon ----------------------------------------------------


class FakeDaemon:
    """A daemon that can die and come back; every client made while it lives sees it."""

    def __init__(self) -> None:
        self.alive = True
        self.images = [{"RepoTags": ["streamworker-runtime/python:bookworm"]}]
        self.streams: list[asyncio.Queue[bytes | None]] = []
        self.clients = 0

    def die(self) -> None:
        self.alive = False
        for stream in self.streams:
            stream.put_nowait(None)  # the event stream ends, as when dockerd stops
        self.streams.clear()

    def emit(self, action: str) -> None:
        line = json.dumps({"Type": "container", "Action": action, "id": "c0ffee"}).encode()
        for stream in self.streams:
            stream.put_nowait(line + b"\n")

    def client(self) -> FakeDocker:
        self.clients += 1
        return FakeDocker(self)


class _Content:
    def __init__(self, queue: asyncio.Queue[bytes | None]) -> None:
        self.queue = queue

    def __aiter__(self) -> _Content:
        return self

    async def __anext__(self) -> bytes:
        line = await self.queue.get()
        if line is None:
            raise StopAsyncIteration
        return line


class _Response:
    def __init__(self, content: _Content | None = None) -> None:
        self.content = content

    async def read(self) -> bytes:
        return b"OK"


class FakeDocker:
    def __init__(self, daemon: FakeDaemon) -> None:
        self.daemon = daemon
        self.system = self
        self.images = self

    def _check(self) -> None:
        if not self.daemon.alive:
            raise aiodocker.DockerError(900, "Cannot connect to Docker Engine via unix:///x")

    @asynccontextmanager
    async def _query(self, path: str, **kwargs: Any) -> AsyncIterator[_Response]:
        self._check()
        if path == "events":
            queue: asyncio.Queue[bytes | None] = asyncio.Queue()
            self.daemon.streams.append(queue)
            yield _Response(_Content(queue))
        else:
            yield _Response()

    async def version(self) -> dict[str, Any]:
        self._check()
        return {"Version": "20.10.24", "ApiVersion": "1.41"}

    async def info(self) -> dict[str, Any]:
        self._check()
        return {"ContainersRunning": 2}

    async def list(self) -> list[dict[str, Any]]:
        self._check()
        return self.daemon.images

    async def close(self) -> None:
        """Nothing to release: the fake holds no connection."""


ENDPOINT = DockerEndpoint("unix:///x", "unix")


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(monitor, "RECHECK_MIN_GAP_S", 0.05)
    monkeypatch.setattr(monitor, "STREAM_BACKOFF_S", (0.05, 0.1))


async def eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            if condition():
                return
            await asyncio.sleep(0.01)


async def wait_for(events: list[DockerHealthEvent], status: DockerStatus) -> DockerHealthEvent:
    await eventually(lambda: bool(events) and events[-1].status is status)
    return events[-1]


def make_monitor(
    daemon: FakeDaemon, events: list[DockerHealthEvent], interval_s: float = 60.0
) -> DockerMonitor:
    async def publish(event: DockerHealthEvent) -> None:
        events.append(event)

    settings = Settings(worker_id="w-1", health_interval_s=interval_s)
    required = ["streamworker-runtime/python:bookworm"]
    return DockerMonitor(daemon.client, ENDPOINT, settings, publish, required)  # type: ignore[arg-type]


async def test_start_publishes_healthy_and_sets_current(fast: None) -> None:
    daemon, events = FakeDaemon(), []
    mon = make_monitor(daemon, events)
    await mon.start()
    try:
        assert [e.status for e in events] == [DockerStatus.HEALTHY]
        event = events[0]
        assert mon.current == event
        assert event.worker_id == "w-1" and event.reason is None
        assert event.to_dict()["docker"] == {
            "reachable": True,
            "connection": "unix",
            "version": "20.10.24",
            "api_version": "1.41",
            "ping_ms": event.ping_ms,
            "containers_running": 2,
            "missing_images": [],
        }
        assert metrics.DOCKER_UP._value.get() == 1
        assert metrics.DOCKER_STATUS.labels("healthy")._value.get() == 1
    finally:
        await mon.stop()


async def test_daemon_death_and_return_are_published_at_once(fast: None) -> None:
    daemon, events = FakeDaemon(), []
    mon = make_monitor(daemon, events)  # interval 60 s: only the event stream can explain it
    await mon.start()
    try:
        await asyncio.sleep(0.1)  # the watcher is connected
        daemon.die()
        down = await wait_for(events, DockerStatus.UNHEALTHY)
        assert down.reachable is False and down.reason
        assert "Cannot connect" in down.reason
        assert metrics.DOCKER_UP._value.get() == 0
        daemon.alive = True
        await wait_for(events, DockerStatus.HEALTHY)
        assert [e.status for e in events] == [
            DockerStatus.HEALTHY,
            DockerStatus.UNHEALTHY,
            DockerStatus.HEALTHY,
        ]
        assert daemon.clients >= 3  # clients were made anew after the failure
    finally:
        await mon.stop()


async def test_missing_image_is_degraded(fast: None) -> None:
    daemon, events = FakeDaemon(), []
    daemon.images = []
    mon = make_monitor(daemon, events)
    await mon.start()
    try:
        assert events[0].status is DockerStatus.DEGRADED
        assert events[0].missing_images == ("streamworker-runtime/python:bookworm",)
    finally:
        await mon.stop()


async def test_unchanged_status_is_republished_every_interval(fast: None) -> None:
    daemon, events = FakeDaemon(), []
    mon = make_monitor(daemon, events, interval_s=0.1)
    await mon.start()
    try:
        await asyncio.sleep(0.45)
        assert 3 <= len(events) <= 6
        assert {e.status for e in events} == {DockerStatus.HEALTHY}
    finally:
        await mon.stop()


async def test_oom_triggers_a_recheck_and_die_is_only_counted(fast: None) -> None:
    daemon, events = FakeDaemon(), []
    mon = make_monitor(daemon, events)
    await mon.start()
    try:
        await asyncio.sleep(0.1)
        before = metrics.DOCKER_CONTAINER_EVENTS.labels("die")._value.get()
        first = mon.current
        daemon.emit("die")
        await asyncio.sleep(0.2)
        assert mon.current is first
        assert metrics.DOCKER_CONTAINER_EVENTS.labels("die")._value.get() == before + 1
        daemon.emit("oom")
        await eventually(lambda: mon.current is not first, timeout_s=2)
        assert len(events) == 1  # re-checked, but nothing changed: nothing published
    finally:
        await mon.stop()


async def test_a_failed_publish_is_retried_and_does_not_stop_the_monitor(fast: None) -> None:
    daemon, published = FakeDaemon(), []
    attempts = 0

    async def flaky(event: DockerHealthEvent) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("Kafka is down")
        published.append(event)

    mon = DockerMonitor(
        daemon.client,  # type: ignore[arg-type]
        ENDPOINT,
        Settings(worker_id="w", health_interval_s=60.0),
        flaky,
        [],
    )
    await mon.start()
    try:
        assert published == [] and mon.current is not None
        await mon.check()  # not due, same status: published because the last one failed
        assert [e.status for e in published] == [DockerStatus.HEALTHY]
    finally:
        await mon.stop()


async def test_the_restart_hook_runs_once_the_daemon_is_back(fast: None) -> None:
    daemon, events, restarts = FakeDaemon(), [], []

    async def publish(event: DockerHealthEvent) -> None:
        events.append(event)

    async def restarted() -> None:
        restarts.append(daemon.alive)

    mon = DockerMonitor(
        daemon.client,  # type: ignore[arg-type]
        ENDPOINT,
        Settings(worker_id="w", health_interval_s=60.0),
        publish,
        [],
        on_restart=restarted,
    )
    await mon.start()
    try:
        await asyncio.sleep(0.1)
        assert restarts == []  # connecting the first time is no restart
        daemon.die()
        await wait_for(events, DockerStatus.UNHEALTHY)
        daemon.alive = True
        await wait_for(events, DockerStatus.HEALTHY)
        await eventually(lambda: restarts == [True])
    finally:
        await mon.stop()
