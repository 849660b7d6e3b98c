"""Looking at the Docker daemon: one probe (ping, version, info, images) and its events.

Plain data out, so the health policy (`streamworker.monitor`) never touches aiodocker.
`Daemon` owns the clients and makes a fresh one after a failure: a daemon that was
restarted is best met with a new connection pool.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import aiodocker
import aiohttp

from streamworker.sandbox.connection import DockerEndpoint
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
    begin = time.monotonic()
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            # Unversioned: a fresh client would otherwise fetch /version first.
            async with docker._query("_ping", versioned_api=False) as response:
                await response.read()
    except FAILURES as exc:
        return Probe(reachable=False, error=explain_failure(exc, endpoint).cause)
    ping_s = time.monotonic() - begin
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
