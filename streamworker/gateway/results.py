"""Every replica reads every result: a group-less `read_committed` consumer over all
partitions of the results topic (a consumer group would give each replica only some
partitions, and a `wait=true` on the other replica would never hear of its result).

Waiters register before their submission is produced, so no result can slip between
produce and wait; recent results stay in a bounded cache that a GET reads before SQL
(the audit log trails publication by a few milliseconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer

from streamworker import kafka_security
from streamworker.client import assign_at_end
from streamworker.kafka_security import aiokafka_kwargs
from streamworker.settings import Settings

log = logging.getLogger(__name__)

CACHE_ENTRIES = 4096
CACHE_BYTES = 64 * 1024 * 1024
"""The cache's bounds: a flood of large results evicts old ones instead of growing."""


class ResultsHub:
    """Results by submission id: futures for waiters, a bounded cache for readers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._waiters: dict[str, list[asyncio.Future[Mapping[str, Any]]]] = {}
        self._cache: OrderedDict[str, tuple[Mapping[str, Any], int]] = OrderedDict()
        self._cache_bytes = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        self.listeners: list[Callable[[Mapping[str, Any]], None]] = []
        """Told of every result read (the submitter's in-flight count listens)."""

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            **aiokafka_kwargs(self.settings),
            isolation_level="read_committed",
            enable_auto_commit=False,
            group_id=None,
        )
        try:
            await kafka_security.start(self.settings, consumer)
            await assign_at_end(consumer, self.settings.topics.results)
        except BaseException:
            await consumer.stop()
            raise
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(), name="gateway-results")
        self.ready.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
        for futures in self._waiters.values():
            for future in futures:
                future.cancel()
        self._waiters.clear()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def register(self, submission_id: str) -> asyncio.Future[Mapping[str, Any]]:
        """A future for the result; register before producing."""
        future: asyncio.Future[Mapping[str, Any]] = asyncio.get_running_loop().create_future()
        cached = self.cached(submission_id)
        if cached is not None:
            future.set_result(cached)
        else:
            self._waiters.setdefault(submission_id, []).append(future)
        return future

    def forget(self, submission_id: str, future: asyncio.Future[Mapping[str, Any]]) -> None:
        """Drop a waiter that stopped waiting (timeout, client gone)."""
        futures = self._waiters.get(submission_id)
        if futures and future in futures:
            futures.remove(future)
            if not futures:
                del self._waiters[submission_id]

    def cached(self, submission_id: str) -> Mapping[str, Any] | None:
        entry = self._cache.get(submission_id)
        return entry[0] if entry else None

    @property
    def waiting(self) -> int:
        return sum(len(f) for f in self._waiters.values())

    def deliver(self, result: Mapping[str, Any], size: int) -> None:
        """One result read: wake its waiters, keep it in the cache."""
        submission_id = result.get("submission_id")
        if not isinstance(submission_id, str):
            return
        if submission_id not in self._cache:
            self._cache[submission_id] = (result, size)
            self._cache_bytes += size
            while self._cache and (
                len(self._cache) > CACHE_ENTRIES or self._cache_bytes > CACHE_BYTES
            ):
                _, (_, dropped) = self._cache.popitem(last=False)
                self._cache_bytes -= dropped
        for future in self._waiters.pop(submission_id, []):
            if not future.done():
                future.set_result(result)
        for listener in self.listeners:
            listener(result)

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=1000, max_records=500)
            except asyncio.CancelledError:
                raise
            except Exception:  # a broker hiccup: aiokafka reconnects; keep reading
                log.warning("results consumer: fetch failed; retrying", exc_info=True)
                await asyncio.sleep(1.0)
                continue
            for records in batches.values():
                for record in records:
                    if record.value is None:
                        continue
                    try:
                        result = json.loads(record.value)
                    except ValueError:
                        continue  # not ours to judge: the worker only publishes JSON
                    if isinstance(result, dict):
                        self.deliver(result, len(record.value))
