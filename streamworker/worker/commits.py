"""Commit soon after an acknowledgement instead of waiting for Faust's commit interval.

With exactly-once a result becomes visible to `read_committed` consumers only when the
worker's Kafka transaction commits, so the periodic commit interval (a safe backstop)
would sit on every submission's latency path. Acks request a commit; requests arriving
while one is pending or running fold into the next one, so a burst costs a commit per
`delay_s` window, not one per event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class CommitSoon:
    """One background task that runs `commit` at most once per request window."""

    def __init__(
        self,
        commit: Callable[[], Awaitable[object]],
        delay_s: float,
        slow_s: float = 10.0,
        on_failure: Callable[[Exception], None] | None = None,
    ) -> None:
        self._commit = commit
        self._on_failure = on_failure
        self._delay_s = delay_s
        self._slow_s = slow_s
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: asyncio.Future[object] | None = None
        self.commits = 0

    @property
    def enabled(self) -> bool:
        return self._delay_s >= 0

    def request(self) -> None:
        if not self.enabled:
            return
        self._wanted.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="commit-soon")

    async def _run(self) -> None:
        while True:
            await self._wanted.wait()
            if self._delay_s:
                await asyncio.sleep(self._delay_s)  # let acks of the same burst join
            self._wanted.clear()
            # Shielded: stopping must not cut a transaction commit in half.
            self._inflight = asyncio.ensure_future(self._commit())
            try:
                done, _ = await asyncio.wait({self._inflight}, timeout=self._slow_s)
                if not done:  # say so: every later commit of the worker waits behind it
                    log.warning("a commit has been running for %.0f s", self._slow_s)
                await asyncio.shield(self._inflight)
                self.commits += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the interval commit retries; the log says why
                log.warning("commit after ack failed: %s", exc)
                if self._on_failure is not None:
                    self._on_failure(exc)

    async def stop(self) -> None:
        """Stop requesting; a commit already running is finished, not cancelled."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._inflight is not None:
            await asyncio.gather(self._inflight, return_exceptions=True)
            self._inflight = None
