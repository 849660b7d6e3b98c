"""What one worker process tracks besides Faust: events in flight and restart requests.

Two small pieces with one job each, bundled in `WorkerRuntime` with the long-lived
resources (`streamworker.worker.resources`) so the agent, the lifecycle and the web pages
share one object: `InFlight` counts the events being handled (the shutdown drain waits
for them), `RestartRequests` says whether new events are taken and why not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from streamworker.worker.resources import Resources

log = logging.getLogger(__name__)

CANCELLED_WAIT_S = 10.0
"""How long cancelled runs get to unwind (their containers are removed shielded)."""


class InFlight:
    """Events being handled and published, so a shutdown can wait for them."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: set[asyncio.Task[object]] = set()

    def __len__(self) -> int:
        return self._count

    @contextlib.asynccontextmanager
    async def tracking(self) -> AsyncIterator[None]:
        """Count the current task's event until the block ends (it may be cancelled)."""
        task = asyncio.current_task()
        self._count += 1
        if task is not None:
            self._tasks.add(task)
        self._idle.clear()
        try:
            yield
        finally:
            self._count -= 1
            if task is not None:
                self._tasks.discard(task)
            if self._count == 0:
                self._idle.set()

    async def finish(self, grace_s: float) -> bool:
        """Wait up to `grace_s` for every tracked event; then cancel what is left.

        True if all finished in time. Cancelled runs publish nothing and leave their
        events unacknowledged, so they are redelivered; their containers are removed on
        the way out (shielded) or by the next attempt.
        """
        try:
            async with asyncio.timeout(grace_s):
                await self._idle.wait()
        except TimeoutError:
            log.warning(
                "%d run(s) still in flight after %.0fs: cancelling; they will be redelivered",
                self._count,
                grace_s,
            )
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CANCELLED_WAIT_S):
                    await self._idle.wait()
            return False
        return True


class RestartRequests:
    """Whether new events are taken, and the reason to restart in place, if any.

    Intake stops for a shutdown drain and for a restart alike: events not acknowledged
    then are redelivered (to this worker's next process or to another worker).
    """

    def __init__(self) -> None:
        self.stopped = False
        self.reason: str | None = None
        """Set once the worker must start over in a fresh process."""
        self.on_restart: Callable[[str], None] | None = None
        """Who stops the running worker (the `GracefulWorker`, once it runs)."""

    @property
    def accepting(self) -> bool:
        """False once draining for shutdown or restarting."""
        return not self.stopped

    def stop_intake(self) -> None:
        self.stopped = True

    def request(self, reason: str) -> None:
        """Stop taking events and have the worker restart in place (once).

        For state only a new process recovers, like a Kafka transaction that can take no
        more output. The first reason wins: later failures are usually the same cause.
        """
        self.stopped = True
        if self.reason is not None:
            return
        self.reason = reason
        log.error("restarting the worker in place: %s", reason)
        if self.on_restart is not None:
            self.on_restart(reason)


@dataclass
class WorkerRuntime:
    """The worker's resources, its events in flight and its restart requests."""

    resources: Resources
    in_flight: InFlight = field(default_factory=InFlight)
    restarts: RestartRequests = field(default_factory=RestartRequests)

    async def drain(self, grace_s: float) -> bool:
        """Stop accepting; wait up to `grace_s` for in-flight events. True if all finished."""
        self.restarts.stop_intake()
        return await self.in_flight.finish(grace_s)
