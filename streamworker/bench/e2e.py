"""End to end through Kafka: produce a submission, time until its result is consumed.

Plain aiokafka, as any upstream would: an `acks=all` producer and a `read_committed`
consumer positioned at the end of the results topic *before* anything is produced, so
no result is missed and none from an earlier run is counted. Latency is the result's
arrival at our consumer minus the moment we handed the submission to the producer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streamworker import kafka_security
from streamworker.bench.policy import submission_event
from streamworker.bench.programs import Program
from streamworker.client import assign_at_end
from streamworker.kafka_security import aiokafka_kwargs
from streamworker.settings import Settings

ResultFuture = asyncio.Future[tuple[float, str]]
"""Resolves to (arrival time, result status)."""


@dataclass
class Phase:
    """What one end-to-end phase measured."""

    latencies_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    """First produce to last result."""


class KafkaDriver:
    """Produces submissions and waits for their results on the worker's topics."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = AIOKafkaProducer(**aiokafka_kwargs(settings), acks="all", linger_ms=0)
        self.consumer = AIOKafkaConsumer(
            **aiokafka_kwargs(settings),
            isolation_level="read_committed",
            enable_auto_commit=False,
            group_id=None,
        )
        self._waiting: dict[str, ResultFuture] = {}
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await kafka_security.start(self.settings, self.consumer, self.producer)
        await assign_at_end(self.consumer, self.settings.topics.results)
        self._reader = asyncio.create_task(self._read(), name="bench-results-reader")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self.producer.stop()
        await self.consumer.stop()

    async def _read(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=200)
            arrived = time.perf_counter()
            for records in batch.values():
                for record in records:
                    sid = (record.key or b"").decode(errors="replace")
                    waiter = self._waiting.pop(sid, None)
                    if waiter is not None and not waiter.done():
                        status = json.loads(record.value or b"{}").get("status", "?")
                        waiter.set_result((arrived, str(status)))

    async def send(self, program: Program, sid: str) -> tuple[float, ResultFuture]:
        """Produce one submission; (when it was handed over, future of (arrival, status))."""
        waiter: ResultFuture = asyncio.get_running_loop().create_future()
        self._waiting[sid] = waiter
        sent_at = time.perf_counter()
        await self.producer.send(
            self.settings.topics.submissions, submission_event(program, sid), key=sid.encode()
        )
        return sent_at, waiter

    async def _collect(
        self,
        sent: list[tuple[str, float, ResultFuture]],
        first_sent: float,
        timeout_s: float,
    ) -> Phase:
        phase = Phase()
        last = first_sent
        try:
            async with asyncio.timeout(timeout_s):
                for sid, sent_at, waiter in sent:
                    arrived, status = await waiter
                    last = max(last, arrived)
                    if status == "accepted":
                        phase.latencies_s.append(arrived - sent_at)
                    else:
                        phase.errors.append(f"{sid}: {status}")
        except TimeoutError:
            missing = [sid for sid, _, waiter in sent if not waiter.done()]
            phase.errors.extend(f"{sid}: no result in {timeout_s:.0f}s" for sid in missing)
            for sid in missing:
                self._waiting.pop(sid, None)
        phase.elapsed_s = last - first_sent
        return phase

    async def burst(self, program: Program, count: int, timeout_s: float) -> Phase:
        """Saturation: produce `count` at once; throughput is count / time to last result."""
        sent = []
        first = time.perf_counter()
        for _ in range(count):
            sid = _sid(program)
            sent_at, waiter = await self.send(program, sid)
            sent.append((sid, sent_at, waiter))
        await self.producer.flush()
        return await self._collect(sent, first, timeout_s)

    async def offered(
        self, program: Program, rate_per_s: float, count: int, timeout_s: float
    ) -> Phase:
        """A fixed offered load: `count` submissions on an even schedule of `rate_per_s`.

        The schedule is open-loop (sends do not wait for results), so a slow worker
        shows up as latency, not as a politely reduced load.
        """
        sent = []
        first = time.perf_counter()
        for i in range(count):
            delay = first + i / rate_per_s - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sid = _sid(program)
            sent_at, waiter = await self.send(program, sid)
            sent.append((sid, sent_at, waiter))
        return await self._collect(sent, first, timeout_s)

    async def one(self, program: Program, timeout_s: float) -> Phase:
        """A single submission, waited for (warm-up)."""
        return await self.burst(program, 1, timeout_s)

    async def sequential(self, program: Program, count: int, timeout_s: float) -> Phase:
        """`count` submissions one at a time, each waited for before the next is sent.

        Nothing queues, so the latency is the pipeline's own: what one caller submitting
        and waiting sees, comparable with a `docker run --rm` per submission.
        """
        phase = Phase()
        first = time.perf_counter()
        for _ in range(count):
            single = await self.one(program, timeout_s)
            phase.latencies_s.extend(single.latencies_s)
            phase.errors.extend(single.errors)
        phase.elapsed_s = time.perf_counter() - first
        return phase


def _sid(program: Program) -> str:
    return f"bench-e2e-{program.key}-{uuid.uuid4().hex[:12]}"
