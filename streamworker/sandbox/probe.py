"""Looking at the Docker daemon: ping, version, info, one probe of all three, its events.

Plain data out, so the health policy (`streamworker.monitor`), the worker's `/health`
and `streamworker doctor` never touch aiodocker: `ping` is the one round trip they all
call, and the one place that uses aiodocker's private `_query("_ping")`.
`Daemon` owns the clients and makes a fresh one after a failure: a daemon that was
restarted is best met with a new connection pool.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiodocker
import aiohttp

from streamworker.errors import DockerUnavailable
from streamworker.sandbox.connection import DockerEndpoint, endpoint_of
from streamworker.sandbox.spec import LABEL_PREFIX
from streamworker.sandbox.tls import explain_failure

PROBE_TIMEOUT_S = 5.0
DockerFactory = Callable[[], aiodocker.Docker]
EVENT_FILTERS = {
    "type": ["container"],
    "event": ["oom", "die"],
    "label": [f"{LABEL_PREFIX}.service=streamworker"],
}
FAILURES = (aiodocker.DockerError, aiohttp.ClientError, OSError, TimeoutError, ValueError)
"""What talking to a daemon that is gone, slow or confused can raise."""


@dataclass(frozen=True)
class Probe:
    """What one look at the daemon found; `error` is set when it did not answer."""

    reachable: bool
    error: str | None = None
    version: str | None = None
    api_version: str | None = None
    ping_s: float | None = None
    containers_running: int | None = None
    missing_images: tuple[str, ...] = ()
    problem: str | None = None
    """The daemon answered its ping, but a later step (info, image list) failed."""


@dataclass(frozen=True)
class DaemonVersion:
    """What the daemon says it is, and what our client speaks to it."""

    version: str | None
    api_version: str | None
    min_api_version: str | None
    os: str | None
    arch: str | None
    kernel: str | None
    client: str
    """The client library and the API version it negotiated, e.g. `aiodocker 0.27.0 on API 1.47`."""


def _unavailable(
    exc: BaseException, docker: aiodocker.Docker, endpoint: DockerEndpoint | None
) -> DockerUnavailable:
    """`DockerUnavailable` naming the cause; raised `from` the original, whose chain
    `explain_failure` reads again where the fix is wanted too (`streamworker doctor`)."""
    where = endpoint if endpoint is not None else endpoint_of(docker)
    return DockerUnavailable(explain_failure(exc, where).cause)


async def ping(
    docker: aiodocker.Docker,
    timeout_s: float = PROBE_TIMEOUT_S,
    *,
    endpoint: DockerEndpoint | None = None,
) -> float:
    """One `/_ping` round trip in milliseconds; `DockerUnavailable` when none in `timeout_s`.

    Unversioned on purpose: a fresh client would otherwise first fetch `/version` to
    negotiate, and the ping would time two requests instead of one. `endpoint` only words
    the failure; by default it is read off the client.
    """
    begin = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            async with docker._query("_ping", versioned_api=False) as response:
                await response.read()
    except FAILURES as exc:
        raise _unavailable(exc, docker, endpoint) from exc
    return (time.monotonic() - begin) * 1000


def _text(found: Mapping[str, Any], key: str) -> str | None:
    return str(found.get(key, "")) or None


async def version(
    docker: aiodocker.Docker,
    timeout_s: float = PROBE_TIMEOUT_S,
    *,
    endpoint: DockerEndpoint | None = None,
) -> DaemonVersion:
    """The daemon's `/version`; `DockerUnavailable` when it does not answer in `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s):
            found = await docker.version()
    except FAILURES as exc:
        raise _unavailable(exc, docker, endpoint) from exc
    return DaemonVersion(
        version=_text(found, "Version"),
        api_version=_text(found, "ApiVersion"),
        min_api_version=_text(found, "MinAPIVersion"),
        os=_text(found, "Os"),
        arch=_text(found, "Arch"),
        kernel=_text(found, "KernelVersion"),
        client=f"aiodocker {aiodocker.__version__} on API {docker.api_version}",
    )


async def info(
    docker: aiodocker.Docker,
    timeout_s: float = PROBE_TIMEOUT_S,
    *,
    endpoint: DockerEndpoint | None = None,
) -> Mapping[str, Any]:
    """The daemon's `/info` as it sent it; `DockerUnavailable` when it does not answer."""
    try:
        async with asyncio.timeout(timeout_s):
            found: Mapping[str, Any] = await docker.system.info()
    except FAILURES as exc:
        raise _unavailable(exc, docker, endpoint) from exc
    return found


def _normalise(ref: str) -> str:
    """Docker's short form of an image reference, as it appears in `RepoTags`."""
    for prefix in ("docker.io/library/", "docker.io/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix) :]
    if "@" not in ref and ":" not in ref.rsplit("/", 1)[-1]:
        ref += ":latest"
    return ref


def missing_images(required: Sequence[str], images: Collection[dict[str, Any]]) -> list[str]:
    """The required references that no listed image carries as a tag or digest."""
    have: set[str] = set()
    for image in images:
        for key in ("RepoTags", "RepoDigests"):
            refs = image.get(key) or []
            if isinstance(refs, list):
                have.update(_normalise(str(ref)) for ref in refs)
    return [ref for ref in required if _normalise(ref) not in have]


async def probe(
    docker: aiodocker.Docker, endpoint: DockerEndpoint, required: Sequence[str]
) -> Probe:
    """Ping, then version, info and one image list; each stage bounded in time."""
    try:
        ping_s = await ping(docker, endpoint=endpoint) / 1000
    except DockerUnavailable as exc:
        return Probe(reachable=False, error=exc.message)
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            version = await docker.version()
            info = await docker.system.info()
            images = await docker.images.list()
    except FAILURES as exc:
        why = explain_failure(exc, endpoint).cause
        return Probe(reachable=True, ping_s=ping_s, problem=f"daemon answered ping only: {why}")
    return Probe(
        reachable=True,
        version=str(version.get("Version", "")) or None,
        api_version=str(version.get("ApiVersion", "")) or None,
        ping_s=ping_s,
        containers_running=int(info.get("ContainersRunning", 0)),
        missing_images=tuple(missing_images(required, images)),
    )


def event_action(line: bytes) -> tuple[str, str] | None:
    """(action, container id) of one `/events` line, or None for anything else."""
    try:
        event = json.loads(line)
    except ValueError:
        return None
    if not isinstance(event, dict):
        return None
    action = str(event.get("Action") or event.get("status") or "")
    return (action, str(event.get("id", ""))) if action else None


async def follow_events(
    docker: aiodocker.Docker, on_connected: Callable[[], None]
) -> AsyncIterator[tuple[str, str]]:
    """`oom`/`die` of streamworker's containers, until the daemon ends the stream.

    Returns when the stream ends (the daemon is stopping) and raises one of `FAILURES`
    when it breaks; either way the caller decides when to look again.
    """
    async with docker._query(
        "events",
        params={"filters": json.dumps(EVENT_FILTERS)},
        timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
    ) as response:
        on_connected()
        async for line in response.content:
            found = event_action(line)
            if found is not None:
                yield found


class Daemon:
    """The daemon as the health monitor sees it: `probe()` now, or `events()` as they come."""

    def __init__(
        self, factory: DockerFactory, endpoint: DockerEndpoint, required: Sequence[str]
    ) -> None:
        self.endpoint = endpoint
        self._factory = factory
        self._required = list(required)
        self._docker: aiodocker.Docker | None = None

    async def probe(self) -> Probe:
        if self._docker is None:
            self._docker = self._factory()
        found = await probe(self._docker, self.endpoint, self._required)
        if not found.reachable:
            await self.close()
        return found

    async def events(self, on_connected: Callable[[], None]) -> AsyncIterator[tuple[str, str]]:
        """`follow_events` on a client of its own, closed when the stream ends."""
        docker = self._factory()
        try:
            async for item in follow_events(docker, on_connected):
                yield item
        finally:
            await docker.close()

    async def close(self) -> None:
        if self._docker is not None:
            docker, self._docker = self._docker, None
            await docker.close()
