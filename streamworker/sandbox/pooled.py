"""One warm container's life outside its pool: taken, used, then recycled or removed.

A used container goes back to its pool only after its helper wiped it (`recycle`);
everything else ends in `remove_later`. Both run off the hot path and are tracked here,
so that shutdown can wait for them instead of leaking containers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
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
    language_id: str = ""
    max_age_s: float | None = None
    """Its own age limit (`pool_sizing.retirement_age`), set as it joins a pool; None
    means the pool's max idle age."""
    uses: int = 0
    """Submissions that took it so far (`Settings.pool_max_uses` bounds them)."""
    lent: bool = False
    """Taken, and its pool counts on getting it back (`LanguagePool.lent`)."""
    recycling: bool = False
    """Being wiped for its next use (`LanguagePool.recycling`)."""
    renamed: bool = False
    """Its current use renamed it (or tried to) after the submission: `recycle` gives it
    a pool name again. A short use never renames it (`executor.warm_session`)."""

    def retires_in(self, now: float, max_idle_s: float) -> float:
        """Seconds until its own age limit (its pool's max idle age when it has none)."""
        limit = max_idle_s if self.max_age_s is None else self.max_age_s
        return self.created_monotonic + limit - now

    def fresh(self, now: float, max_idle_s: float) -> bool:
        return self.retires_in(now, max_idle_s) > 0

    def session(self) -> AttachedSession:
        return AttachedSession(self.container, self.image_id, self.stream)


_background: set[asyncio.Task[Any]] = set()


async def remove_pooled(pooled: PooledContainer) -> None:
    """Hang up its stream, then remove the container; never raises."""
    await remove_served(ServedContainer(pooled.container, pooled.stream, pooled.image_id))


def remove_later(pooled: PooledContainer) -> None:
    """Destroy a used or stale container off the critical path (tracked; awaited at
    shutdown)."""
    in_background(remove_pooled(pooled))


def in_background(work: Coroutine[Any, Any, None]) -> None:
    """Run a container's clean-up off the critical path, tracked for `wait_removals`."""
    task = asyncio.create_task(work)
    _background.add(task)
    task.add_done_callback(_background.discard)


async def wait_removals(timeout_s: float = 30.0) -> None:
    if _background:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await asyncio.gather(*list(_background), return_exceptions=True)
