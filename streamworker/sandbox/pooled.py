"""One warm container's life outside its pool: taken once, then removed off the hot path.

A pooled container is never reused, so every one ends in `remove_later`; the removals
are tracked here so that shutdown can wait for them instead of leaking containers.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import aiodocker
from aiodocker.stream import Stream

from streamworker.sandbox.container import AttachedSession, ServedContainer, remove_served
from streamworker.sandbox.spec import ContainerPolicy


@dataclass
class PooledContainer:
    container: aiodocker.containers.DockerContainer
    stream: Stream
    """Attached before start and open while the container waits; its only user is the
    submission that takes the container."""
    image_id: str
    policy: ContainerPolicy
    created_monotonic: float

    def session(self) -> AttachedSession:
        return AttachedSession(self.container, self.image_id, self.stream)


_background: set[asyncio.Task[Any]] = set()


async def remove_pooled(pooled: PooledContainer) -> None:
    """Hang up its stream, then remove the container; never raises."""
    await remove_served(ServedContainer(pooled.container, pooled.stream, pooled.image_id))


def remove_later(pooled: PooledContainer) -> None:
    """Destroy a used or stale container off the critical path (tracked; awaited at
    shutdown)."""
    task = asyncio.create_task(remove_pooled(pooled))
    _background.add(task)
    task.add_done_callback(_background.discard)


async def wait_removals(timeout_s: float = 30.0) -> None:
    if _background:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await asyncio.gather(*list(_background), return_exceptions=True)
