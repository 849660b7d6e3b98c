"""Producing submissions and waiting for their results: the gateway's one path into the
pipeline, shared by Judge0 and Piston routes.

Exactly-once is the worker's business (the submission id is the idempotency key); here a
produce is idempotent (`enable_idempotence`) and acknowledged by all in-sync replicas
before a client hears "201". The in-flight bound counts what this replica produced and
has not yet seen answered, so a flood gets 503 "queue is full" instead of a backlog."""

from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from streamworker import kafka_security
from streamworker.contract import decode_submission
from streamworker.errors import InvalidEvent
from streamworker.gateway.results import ResultsHub
from streamworker.gateway.tenants import Tenant
from streamworker.kafka_security import aiokafka_kwargs
from streamworker.settings import Settings

IN_FLIGHT_TTL_S = 3600.0
"""A submission unanswered this long no longer counts against the bound (a lost result
must not lock the gateway forever)."""


class QueueFull(Exception):
    """More submissions in flight than `max_in_flight`."""


class Refused(Exception):
    """The event breaks the contract's budgets: the worker would answer it
    `invalid_submission`, so the client hears it now, as a 422 naming the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def encode_checked(event: Mapping[str, Any], settings: Settings) -> bytes:
    """The event's bytes, decoded once the way the worker will (same budgets)."""
    data = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8", "surrogatepass"
    )
    try:
        decode_submission(data, settings.decode_budgets())
    except InvalidEvent as exc:
        raise Refused(exc.field or "base", exc.detail) from exc
    return data


class ProduceFailed(Exception):
    """Kafka did not take the submission; nothing was stored for it."""


class Submitter:
    """Produce to the submissions topic; wait on the results hub."""

    def __init__(self, settings: Settings, hub: ResultsHub) -> None:
        self.settings = settings
        self.hub = hub
        self._producer: AIOKafkaProducer | None = None
        self._in_flight: OrderedDict[str, tuple[float, str]] = OrderedDict()
        """Submission id → (when produced, tenant), oldest first."""
        hub.listeners.append(lambda result: self.answered(str(result.get("submission_id"))))

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            **aiokafka_kwargs(self.settings), acks="all", enable_idempotence=True, linger_ms=0
        )
        await kafka_security.start(self.settings, producer)
        self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    @property
    def in_flight(self) -> int:
        self._prune()
        return len(self._in_flight)

    def answered(self, submission_id: str) -> None:
        self._in_flight.pop(submission_id, None)

    def _prune(self) -> None:
        cutoff = time.monotonic() - IN_FLIGHT_TTL_S
        while self._in_flight:
            sid, (since, _) = next(iter(self._in_flight.items()))
            if since >= cutoff and self.hub.cached(sid) is None:
                break
            del self._in_flight[sid]

    def reserve(self, count: int, tenant: Tenant) -> None:
        """Refuse before anything is stored when `count` more would pass this replica's
        bound or the tenant's own."""
        if self.in_flight + count > self.settings.gateway.max_in_flight:
            raise QueueFull("queue is full")
        mine = sum(1 for _, owner in self._in_flight.values() if owner == tenant.name)
        if mine + count > tenant.max_in_flight:
            raise QueueFull("queue is full")

    def check(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Raise `Refused` for the first event the worker would refuse."""
        for event in events:
            encode_checked(event, self.settings)

    async def produce(self, events: Sequence[Mapping[str, Any]], tenant: str) -> None:
        """Send every event (keyed by submission id) and wait for all acknowledgements."""
        if self._producer is None:
            raise ProduceFailed("the gateway is not connected to Kafka")
        topic = self.settings.topics.submissions
        try:
            sends = [
                await self._producer.send(
                    topic,
                    encode_checked(event, self.settings),
                    key=str(event["submission_id"]).encode(),
                )
                for event in events
            ]
            await asyncio.gather(*sends)
        except Refused:
            raise
        except Exception as exc:
            raise ProduceFailed(f"Kafka refused the submission: {exc}") from exc
        now = time.monotonic()
        for event in events:
            self._in_flight[str(event["submission_id"])] = (now, tenant)

    async def wait(
        self, future: asyncio.Future[Mapping[str, Any]], submission_id: str, timeout_s: float
    ) -> Mapping[str, Any] | None:
        """The result, or None after `timeout_s` (the caller answers with the current state)."""
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            self.hub.forget(submission_id, future)
            return None
