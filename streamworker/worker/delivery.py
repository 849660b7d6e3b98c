"""Getting one event's outcome out exactly once: marks, outputs, acks and commits.

`Delivery` owns everything between "this event arrived" and "its offset may commit":
the restart ledger check, per-key serialization, the answered mark written before the
result inside the source partition's Kafka transaction, the fallback answer when Kafka
refuses a record, acknowledgements in offset order and the commit soon after them, and
forgetting what a rebalance took away. It talks to Faust only through `DeliveryPort`,
so all of it is unit-tested against a fake port (`tests/unit/test_delivery_object.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from streamworker import metrics
from streamworker.errors import PoisonEvent, TransactionBroken
from streamworker.pipeline import Outcome, Source
from streamworker.worker.acks import InOrderAcks
from streamworker.worker.commits import CommitSoon
from streamworker.worker.ledger import RestartLedger, event_key
from streamworker.worker.marks import OwnMarks

log = logging.getLogger(__name__)

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)


class Output(enum.Enum):
    """Where a record goes; the port maps each to its Kafka topic."""

    RESULTS = "results"
    DEAD_LETTERS = "dead_letters"
    ANSWERED = "answered"
    """The `answered` table's changelog: one mark per answered submission."""


@dataclass(frozen=True)
class Record:
    key: bytes | None
    value: bytes
    headers: Sequence[tuple[str, bytes]] = ()


class DeliveryPort(Protocol[T_contra]):
    """What `Delivery` needs from Faust; `T_contra` is the port's acknowledgement token.

    The transactional send raises `OutputRejected` when Kafka refused that one record and
    `TransactionBroken` when the partition's transaction can take no more output.
    """

    @property
    def rebalancing(self) -> bool: ...

    def transaction_id(self, partition: int) -> str: ...

    async def send_in_transaction(
        self, output: Output, record: Record, partition: int, transactional_id: str
    ) -> None: ...

    async def send_plain(self, output: Output, record: Record, partition: int) -> None: ...

    async def commit(self) -> None: ...

    async def ack(self, token: T_contra) -> None: ...

    def answered_get(self, key: bytes) -> bytes | None: ...

    def answered_set(self, key: bytes, value: bytes) -> None: ...

    def answered_pop(self, key: bytes) -> None: ...


class Judge(Protocol):
    """The pipeline's side: outcomes whose results are already fitted and recorded."""

    async def handle(
        self, value: bytes, source: Source, answered: Callable[[str], bool] | None = None
    ) -> Outcome: ...

    async def fail(
        self, value: bytes, source: Source, exc: Exception, message: str | None = None
    ) -> Outcome: ...


class KeyLocks:
    """Per-key mutual exclusion that forgets keys nobody holds.

    Two events of one submission (a duplicate right behind the original) must not run
    side by side: the second has to see the first one's answered mark.
    """

    def __init__(self) -> None:
        self._locks: dict[bytes, asyncio.Lock] = {}
        self._users: dict[bytes, int] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: bytes | None) -> AsyncIterator[None]:
        if key is None:
            yield
            return
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)


class Delivery(Generic[T]):
    """Publishes outcomes and acknowledges events for one worker process.

    `judge` is called per event rather than passed once because the pipeline exists only
    after the worker's resources started (Docker, audit store), well after the app is
    built. `restart` asks for a restart in place (`RestartRequests.request`).
    """

    def __init__(
        self,
        port: DeliveryPort[T],
        judge: Callable[[], Judge],
        ledger: RestartLedger,
        *,
        transactional: bool,
        partitions: int,
        max_attempts: int,
        commit_after_ack_s: float,
        restart: Callable[[str], None],
    ) -> None:
        self._port, self._judge, self._ledger = port, judge, ledger
        self._transactional = transactional
        self._partitions = partitions
        self._max_attempts = max_attempts
        self._restart = restart
        self.acks: InOrderAcks[T] = InOrderAcks()
        self.marks = OwnMarks()
        self.key_locks = KeyLocks()
        self.commit_soon = CommitSoon(
            self._commit_between_rebalances, commit_after_ack_s, on_failure=self._commit_failed
        )

    async def _commit_between_rebalances(self) -> None:
        # While partitions move, Faust waits for the in-flight events, commits and ends
        # their transactions itself; a commit of ours racing that could hold its commit
        # lock or touch a producer Faust is stopping. Acks made meanwhile are committed
        # by Faust's own rebalance commit or the next one after it.
        if not self._port.rebalancing:
            await self._port.commit()

    def _commit_failed(self, exc: Exception) -> None:
        # aiokafka does not retry every broker failure inside a transaction (a broker
        # restart can kill a transactional producer's sender); such a transaction can
        # neither commit nor take output any more.
        if self._transactional:
            self._restart(f"a transaction commit failed: {exc!r}")

    def begin(self, partition: int, offset: int) -> None:
        """An event arrived; call before anything can yield to the event loop."""
        self.acks.begin(partition, offset)

    async def acknowledge(self, partition: int, offset: int, token: T) -> None:
        """The event's outcome is published: ack it and every event it held back, in
        offset order, and ask for a commit soon (results are visible only once it runs)."""
        for done in self.acks.finish(partition, offset, token):
            await self._port.ack(done)
            self.commit_soon.request()

    def forget_revoked(self, kept: Collection[int]) -> None:
        """Partitions that moved away: their open transactions get aborted by the new
        owner, so their marks held in memory must go (committed ones come back from the
        changelog if the partition returns). Partitions kept keep their transaction."""
        gone = [p for p in range(self._partitions) if p not in kept]
        self.acks.forget(gone)
        dropped = self.marks.take(gone)
        for key in dropped:
            self._port.answered_pop(key)
        if dropped:
            log.info("rebalance: %d answered mark(s) of moved partitions dropped", len(dropped))

    async def deliver(self, value: bytes, source: Source) -> None:
        """Judge one event and publish its outcome (or its failure outcome).

        Raises `TransactionBroken` when its partition's transaction can take no more
        output, after counting the event in the restart ledger: the caller restarts the
        worker and leaves the event unacknowledged, and an event that keeps breaking it
        is dead-lettered after `max_attempts` restarts instead of looping.
        """
        ledger_key = event_key(source.topic, source.partition, source.offset)
        async with self.key_locks.hold(source.key):
            try:
                await self._judge_and_publish(value, source, ledger_key)
            except TransactionBroken:
                self._ledger.record(ledger_key)
                raise

    async def _judge_and_publish(self, value: bytes, source: Source, ledger_key: str) -> None:
        """Publish the outcome; when Kafka refuses one of its records (or building them
        fails), publish the event's failure outcome instead: a small internal_error
        answer and a budgeted dead letter. A broken transaction is not this event's
        failure and propagates (the worker restarts)."""
        try:
            restarts = self._ledger.restarts(ledger_key)
            if restarts >= self._max_attempts:
                why = f"the event broke the worker's transaction {restarts} times"
                log.error("%s: %s; dead-lettered", ledger_key, why)
                outcome = await self._judge().fail(value, source, PoisonEvent(why))
            else:
                outcome = await self._judge().handle(value, source, self._answered(source.key))
            await self.publish(outcome, source.key, source.partition)
            return
        except (TransactionBroken, asyncio.CancelledError):
            raise
        except Exception as exc:
            metrics.OUTPUTS_REJECTED.inc()
            log.exception("publishing the outcome of %s@%d failed", source.topic, source.offset)
            why = f"the result could not be published: {type(exc).__name__}"
            failure = exc
        try:
            fallback = await self._judge().fail(value, source, failure, message=why)
            await self.publish(fallback, source.key, source.partition)
        except (TransactionBroken, asyncio.CancelledError):
            raise
        except Exception as exc:
            # Even the small answer failed: Kafka itself is in trouble. A restart (counted
            # in the ledger, so this event cannot loop) is all that is left.
            raise TransactionBroken(f"publishing a failure outcome failed: {exc!r}") from exc

    def _answered(self, key: bytes | None) -> Callable[[str], bool]:
        return lambda sid: key == sid.encode() and self._port.answered_get(key) is not None

    async def publish(self, outcome: Outcome, key: bytes | None, partition: int) -> None:
        """Send the outcome to the source event's partition number and into that
        partition's transaction: result, mark and consumer offset commit together."""
        if outcome.dead_letter is not None:
            dead = outcome.dead_letter
            await self._send(
                Output.DEAD_LETTERS, Record(dead.key, dead.value, dead.headers), partition
            )
        for result in (outcome.result, outcome.republish):
            if result is not None:
                await self._remember(key, result.submission_id, result.event_id, partition)
                record = Record(result.submission_id.encode(), result.encode())
                await self._send(Output.RESULTS, record, partition)

    async def _remember(
        self, key: bytes | None, submission_id: str, event_id: str, partition: int
    ) -> None:
        """Mark the submission answered, BEFORE its result is sent.

        Everything for one source partition goes through that partition's transactional
        producer, in order, so a transaction that commits the result also commits this
        mark. Only events keyed by their submission id are looked up later.
        """
        if key is None or key != submission_id.encode():
            return
        value = event_id.encode()
        await self._send(Output.ANSWERED, Record(key, value), partition)
        self._port.answered_set(key, value)
        self.marks.add(partition, key)

    async def _send(self, output: Output, record: Record, partition: int) -> None:
        if not self._transactional:
            await self._port.send_plain(output, record, partition)
            return
        tid = self._port.transaction_id(partition)
        await self._port.send_in_transaction(output, record, partition, tid)

    async def stop(self) -> None:
        """Stop committing after acks; a commit already running is finished."""
        await self.commit_soon.stop()
