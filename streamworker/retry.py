"""Bounded retries with capped exponential backoff and full jitter, for our own failures.

Only errors flagged `retriable` (Docker unreachable, container create failed) are retried;
a user program's failure is a verdict, never an exception, so it is never retried.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from streamworker.errors import StreamworkerError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    max_tries: int = 3
    base_delay_s: float = 0.5
    max_delay_s: float = 5.0

    def delay_s(self, failures: int, rand: float) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**(failures-1))]."""
        cap: float = self.base_delay_s * 2.0 ** (failures - 1)
        return rand * min(self.max_delay_s, cap)


DEFAULT_RETRY = RetryPolicy()


def is_retriable(exc: BaseException) -> bool:
    return isinstance(exc, StreamworkerError) and exc.retriable


async def retry(
    action: Callable[[], Awaitable[T]], policy: RetryPolicy, what: str = "operation"
) -> T:
    """Run `action`, retrying retriable errors up to `policy.max_tries` times in all."""
    failures = 0
    while True:
        try:
            return await action()
        except Exception as exc:
            failures += 1
            if not is_retriable(exc) or failures >= policy.max_tries:
                if failures > 1 and isinstance(exc, StreamworkerError):
                    exc.message = f"{exc.message} (gave up after {failures} tries)"
                    exc.args = (exc.message,)
                raise
            delay = policy.delay_s(failures, random.random())
            log.warning("%s failed (%s), retry %d in %.2fs", what, exc, failures, delay)
            await asyncio.sleep(delay)
