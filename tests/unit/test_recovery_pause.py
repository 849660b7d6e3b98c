"""Recovered changelog partitions are paused in aiokafka, not only in Faust's own list."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import TopicPartition
from faust.types import TP

from streamworker.worker.recovery import changelogs_to_pause, pause_in_client

CHANGELOG = "streamworker-answered-changelog"


def test_only_active_changelog_partitions_are_paused() -> None:
    assignment = [TP("submissions", 0), TP(CHANGELOG, 0), TP(CHANGELOG, 1), TP(CHANGELOG, 2)]
    paused = changelogs_to_pause(
        assignment, lambda tp: tp.topic.endswith("-changelog"), standbys=[TP(CHANGELOG, 2)]
    )
    assert paused == {TopicPartition(CHANGELOG, 0), TopicPartition(CHANGELOG, 1)}
    assert changelogs_to_pause([TP("submissions", 0)], lambda tp: False, []) == set()


class _Client:
    def __init__(self) -> None:
        self.paused: list[TopicPartition] = []

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused += partitions


class _Thread:
    """Faust's consumer thread: `call_thread` runs a coroutine function in its loop."""

    def __init__(self) -> None:
        self.client = _Client()
        self.calls = 0

    def _ensure_consumer(self) -> _Client:
        return self.client

    async def call_thread(self, fun: Callable[[], Awaitable[Any]]) -> Any:
        self.calls += 1
        return await fun()


class _Consumer:
    def __init__(self) -> None:
        self._thread = _Thread()


def test_the_pause_goes_through_the_consumer_thread_to_aiokafka() -> None:
    consumer = _Consumer()
    partitions = {TopicPartition(CHANGELOG, 0), TopicPartition(CHANGELOG, 3)}
    asyncio.run(pause_in_client(consumer, partitions))
    assert set(consumer._thread.client.paused) == partitions
    assert consumer._thread.calls == 1
    asyncio.run(pause_in_client(consumer, set()))
    assert consumer._thread.calls == 1  # nothing to pause: no trip to the thread
