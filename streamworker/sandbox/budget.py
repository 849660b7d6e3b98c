"""A memory budget for runs in flight, so a burst cannot thrash the host.

Each session reserves its container's memory limit before it starts and returns it
when it ends; a session that does not fit waits (first come, first served). A single
session larger than the whole budget still runs, alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from streamworker import metrics


class MemoryBudget:
    def __init__(self, total_mb: int) -> None:
        self.total_mb = total_mb
        self.used_mb = 0
        self._changed = asyncio.Condition()

    def _fits(self, memory_mb: int) -> bool:
        return self.used_mb == 0 or self.used_mb + memory_mb <= self.total_mb

    @contextlib.asynccontextmanager
    async def reserve(self, memory_mb: int) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: self._fits(memory_mb))
            self.used_mb += memory_mb
            metrics.BUDGET_USED_BYTES.set(self.used_mb * 1024 * 1024)
        try:
            yield
        finally:
            async with self._changed:
                self.used_mb -= memory_mb
                metrics.BUDGET_USED_BYTES.set(self.used_mb * 1024 * 1024)
                self._changed.notify_all()
