"""`Delivery` against a fake port: the exactly-once rules without Kafka or Faust.

Marks before results inside the partition's transaction, acknowledgements in offset
order, a commit after them, revoked partitions forgotten, per-key serialization, the
restart ledger and the fallback answer when Kafka refuses a record.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from streamworker import metrics
from streamworker.contract import ResultEvent, Status, now_utc
from streamworker.errors import OutputRejected, TransactionBroken
from streamworker.pipeline import Outcome, Pipeline, Source
from streamworker.retry import RetryPolicy
from streamworker.settings import Settings
from streamworker.worker.delivery import Delivery, KeyLocks, Output, Record
from streamworker.worker.ledger import RestartLedger, event_key

TOPIC = "streamworker.submissions"
MAX_ATTEMPTS = 3


@dataclass
class Sent:
    output: Output
    key: bytes | None
    value: bytes
    partition: int
    transactional_id: str | None


@dataclass
class FakePort:
    """Records what `Delivery` asks of Faust; `fail_on` makes one output's send raise."""

    rebalancing: bool = False
    sent: list[Sent] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)
    commits: int = 0
    table: dict[bytes, bytes] = field(default_factory=dict)
    fail_on: dict[Output, Exception] = field(default_factory=dict)
    commit_error: Exception | None = None

    def transaction_id(self, partition: int) -> str:
        return f"app-group-{partition}"

    async def send_in_transaction(
        self, output: Output, record: Record, partition: int, transactional_id: str
    ) -> None:
        if output in self.fail_on:
            raise self.fail_on[output]
        self.sent.append(Sent(output, record.key, record.value, partition, transactional_id))

    async def send_plain(self, output: Output, record: Record, partition: int) -> None:
        self.sent.append(Sent(output, record.key, record.value, partition, None))

    async def commit(self) -> None:
        self.commits += 1
        if self.commit_error is not None:
            raise self.commit_error

    async def ack(self, token: str) -> None:
        self.acked.append(token)

    def answered_get(self, key: bytes) -> bytes | None:
        return self.table.get(key)

    def answered_set(self, key: bytes, value: bytes) -> None:
        self.table[key] = value

    def answered_pop(self, key: bytes) -> None:
        self.table.pop(key, None)

    def outputs(self) -> list[tuple[Output, bytes | None]]:
        return [(s.output, s.key) for s in self.sent]


class NeverSandbox:
    def image_for(self, language: Any) -> str:
        return "img"

    def session(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("must not run")


class NullAudit:
    def __init__(self) -> None:
        self.records: list[Any] = []

    def submit(self, record: Any) -> None:
        self.records.append(record)

    async def prior(self, submission_id: str) -> None:
        return None

    async def settle(self, submission_id: str, timeout_s: float | None = None) -> bool:
        return True


class ScriptedJudge:
    """Answers `accepted` for every event, after its gate (if any) opens; its failure
    outcomes come from the real `Pipeline.fail`."""

    def __init__(self) -> None:
        self.pipeline = Pipeline(
            Settings(worker_id="w"), NeverSandbox(), NullAudit(), RetryPolicy(base_delay_s=0.0)
        )
        self.gates: dict[str, asyncio.Event] = {}
        self.log: list[str] = []
        self.answered: dict[str, bool] = {}
        self.failures: list[Exception] = []

    async def handle(
        self, value: bytes, source: Source, answered: Callable[[str], bool] | None = None
    ) -> Outcome:
        sid = json.loads(value)["submission_id"]
        self.answered[sid] = answered is not None and answered(sid)
        if self.answered[sid]:
            return Outcome(None, skipped=True)
        self.log.append(f"start {sid}")
        if sid in self.gates:
            await self.gates[sid].wait()
        self.log.append(f"end {sid}")
        now = now_utc()
        return Outcome(ResultEvent(sid, Status.ACCEPTED, "python", "w", now, now, now))

    async def fail(
        self, value: bytes, source: Source, exc: Exception, message: str | None = None
    ) -> Outcome:
        self.failures.append(exc)
        return await self.pipeline.fail(value, source, exc, message)


def event(sid: str) -> bytes:
    return json.dumps({"submission_id": sid, "language": "python", "source": "x"}).encode()


def source(partition: int, offset: int, key: bytes | None) -> Source:
    return Source(TOPIC, partition, offset, key)


@dataclass
class Rig:
    port: FakePort
    judge: ScriptedJudge
    ledger: RestartLedger
    delivery: Delivery[str]
    restarts: list[str]

    async def run(self, sid: str, partition: int, offset: int, key: bytes | None = None) -> None:
        """What the agent does for one event: begin, deliver, acknowledge."""
        self.delivery.begin(partition, offset)
        await self.delivery.deliver(event(sid), source(partition, offset, key or sid.encode()))
        await self.delivery.acknowledge(partition, offset, f"{partition}@{offset}")


def rig(tmp_path: Path, *, transactional: bool = True, commit_after_ack_s: float = 0.0) -> Rig:
    port, judge = FakePort(), ScriptedJudge()
    ledger = RestartLedger(tmp_path / "ledger.json")
    restarts: list[str] = []
    delivery: Delivery[str] = Delivery(
        port,
        lambda: judge,
        ledger,
        transactional=transactional,
        partitions=4,
        max_attempts=MAX_ATTEMPTS,
        commit_after_ack_s=commit_after_ack_s,
        restart=restarts.append,
    )
    return Rig(port, judge, ledger, delivery, restarts)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


# ------------------------------------------------------------------------ acks and commits


async def test_acks_reach_the_stream_in_offset_order(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.judge.gates = {"a": asyncio.Event(), "b": asyncio.Event()}
    runs = [
        asyncio.create_task(r.run("a", 0, 10)),
        asyncio.create_task(r.run("b", 0, 11)),
        asyncio.create_task(r.run("c", 0, 12)),
        asyncio.create_task(r.run("d", 1, 5)),
    ]
    await settle()
    # c (0@12) and d (1@5) finished; c waits behind the running 0@10 and 0@11.
    assert r.port.acked == ["1@5"]
    r.judge.gates["b"].set()
    await settle()
    assert r.port.acked == ["1@5"], "0@11 finished, but 0@10 is still running"
    r.judge.gates["a"].set()
    await asyncio.gather(*runs)
    assert r.port.acked == ["1@5", "0@10", "0@11", "0@12"]
    await r.delivery.stop()


async def test_a_commit_follows_an_ack(tmp_path: Path) -> None:
    r = rig(tmp_path)
    await r.run("a", 0, 1)
    await settle()
    assert r.port.commits == 1
    await r.delivery.stop()


async def test_no_commit_without_an_ack(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.delivery.begin(0, 1)
    await r.delivery.deliver(event("a"), source(0, 1, b"a"))
    await settle()
    assert r.port.commits == 0, "published, but not acknowledged yet"
    await r.delivery.stop()


async def test_no_commit_of_ours_while_partitions_move(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.port.rebalancing = True
    await r.run("a", 0, 1)
    await settle()
    assert r.port.commits == 0
    await r.delivery.stop()


async def test_a_failed_transactional_commit_requests_a_restart(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.port.commit_error = RuntimeError("broker restarted")
    await r.run("a", 0, 1)
    await settle()
    assert len(r.restarts) == 1 and "commit failed" in r.restarts[0]
    await r.delivery.stop()


async def test_a_failed_plain_commit_is_left_to_the_interval_commit(tmp_path: Path) -> None:
    r = rig(tmp_path, transactional=False)
    r.port.commit_error = RuntimeError("broker restarted")
    await r.run("a", 0, 1)
    await settle()
    assert r.port.commits == 1 and r.restarts == []
    await r.delivery.stop()


# -------------------------------------------------------------------------- marks and sends


async def test_the_mark_goes_before_the_result_in_the_same_transaction(tmp_path: Path) -> None:
    r = rig(tmp_path)
    await r.run("a", 2, 7)
    assert r.port.outputs() == [(Output.ANSWERED, b"a"), (Output.RESULTS, b"a")]
    mark, result = r.port.sent
    assert mark.transactional_id == result.transactional_id == "app-group-2"
    assert mark.partition == result.partition == 2
    assert mark.value == json.loads(result.value)["event_id"].encode()
    assert r.port.table[b"a"] == mark.value
    await r.delivery.stop()


async def test_a_duplicate_behind_an_answered_event_is_skipped(tmp_path: Path) -> None:
    r = rig(tmp_path)
    await r.run("a", 0, 1)
    await r.run("a", 0, 2)
    assert r.judge.answered == {"a": True}
    assert r.port.outputs() == [(Output.ANSWERED, b"a"), (Output.RESULTS, b"a")]
    assert r.port.acked == ["0@1", "0@2"]
    await r.delivery.stop()


async def test_events_keyed_otherwise_get_no_mark(tmp_path: Path) -> None:
    r = rig(tmp_path)
    await r.run("a", 0, 1, key=b"not-the-submission-id")
    assert r.port.outputs() == [(Output.RESULTS, b"a")]
    await r.delivery.stop()


async def test_without_transactions_everything_is_sent_plain(tmp_path: Path) -> None:
    r = rig(tmp_path, transactional=False)
    await r.run("a", 0, 1)
    assert [s.transactional_id for s in r.port.sent] == [None, None]
    await r.delivery.stop()


async def test_forgetting_revoked_partitions_drops_only_their_marks(tmp_path: Path) -> None:
    r = rig(tmp_path)
    await r.run("a", 0, 1)
    await r.run("b", 1, 1)
    r.port.table[b"committed"] = b"from the changelog"  # not a mark of ours: stays
    r.delivery.begin(0, 2)  # delivered, still running when partition 0 moves
    r.delivery.forget_revoked({1, 2, 3})
    assert r.port.table == {b"b": r.port.table[b"b"], b"committed": b"from the changelog"}
    assert r.delivery.acks.waiting(0) == 0
    assert len(r.delivery.marks) == 1
    # Partition 0 came back: its event is answered again, not skipped.
    await r.run("a", 0, 1)
    assert r.judge.answered["a"] is False
    await r.delivery.stop()


# ------------------------------------------------------------ failures and the restart ledger


async def test_a_broken_transaction_raises_and_is_counted_in_the_ledger(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.port.fail_on[Output.RESULTS] = TransactionBroken("the transaction of partition 0")
    r.delivery.begin(0, 9)
    with pytest.raises(TransactionBroken):
        await r.delivery.deliver(event("a"), source(0, 9, b"a"))
    assert r.ledger.restarts(event_key(TOPIC, 0, 9)) == 1
    assert r.judge.failures == [], "not this event's failure: no fallback answer"
    assert r.port.acked == []
    await r.delivery.stop()


async def test_an_event_that_keeps_breaking_it_is_dead_lettered(tmp_path: Path) -> None:
    r = rig(tmp_path)
    for _ in range(MAX_ATTEMPTS):
        r.ledger.record(event_key(TOPIC, 0, 9))
    await r.run("a", 0, 9)
    assert "start a" not in r.judge.log, "not judged again"
    assert r.port.outputs() == [
        (Output.DEAD_LETTERS, b"a"),
        (Output.ANSWERED, b"a"),
        (Output.RESULTS, b"a"),
    ]
    assert type(r.judge.failures[0]).__name__ == "PoisonEvent"
    await r.delivery.stop()


async def test_a_rejected_record_gets_the_fallback_outcome(tmp_path: Path) -> None:
    r = rig(tmp_path)
    rejected = OutputRejected("streamworker.results: MessageSizeTooLargeError")
    before = metrics.REGISTRY.get_sample_value("streamworker_outputs_rejected_total") or 0.0

    class RejectBigResults(FakePort):
        async def send_in_transaction(
            self, output: Output, record: Record, partition: int, transactional_id: str
        ) -> None:
            if output is Output.RESULTS and b'"accepted"' in record.value:
                raise rejected
            await super().send_in_transaction(output, record, partition, transactional_id)

    r.port = RejectBigResults()
    r.delivery = Delivery(
        r.port,
        lambda: r.judge,
        r.ledger,
        transactional=True,
        partitions=4,
        max_attempts=MAX_ATTEMPTS,
        commit_after_ack_s=0.0,
        restart=r.restarts.append,
    )
    await r.run("a", 0, 3)
    assert r.judge.failures == [rejected]
    dead, *answer = [s for s in r.port.sent if s.output is not Output.ANSWERED]
    assert dead.output is Output.DEAD_LETTERS
    (result,) = answer
    body = json.loads(result.value)
    assert body["status"] == "internal_error"
    assert body["message"] == "the result could not be published: OutputRejected"
    assert r.port.acked == ["0@3"], "the event has its answer: acknowledged"
    after = metrics.REGISTRY.get_sample_value("streamworker_outputs_rejected_total") or 0.0
    assert after == before + 1
    await r.delivery.stop()


async def test_when_even_the_fallback_fails_the_worker_restarts(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.port.fail_on[Output.RESULTS] = OutputRejected("too large")
    r.port.fail_on[Output.DEAD_LETTERS] = OutputRejected("too large")
    with pytest.raises(TransactionBroken, match="publishing a failure outcome failed"):
        await r.delivery.deliver(event("a"), source(0, 4, b"a"))
    assert r.ledger.restarts(event_key(TOPIC, 0, 4)) == 1
    await r.delivery.stop()


# ------------------------------------------------------------------------------- key locks


async def test_same_key_events_run_one_after_the_other(tmp_path: Path) -> None:
    r = rig(tmp_path)
    r.judge.gates = {"a": asyncio.Event(), "b": asyncio.Event()}
    first = asyncio.create_task(r.run("a", 0, 1, key=b"k"))
    second = asyncio.create_task(r.run("b", 1, 1, key=b"k"))
    other = asyncio.create_task(r.run("c", 2, 1, key=b"other"))
    await other  # a different key is not held up
    await settle()
    assert r.judge.log == ["start a", "start c", "end c"]
    r.judge.gates["a"].set()
    r.judge.gates["b"].set()
    await asyncio.gather(first, second)
    assert r.judge.log[3:] == ["end a", "start b", "end b"]
    assert len(r.delivery.key_locks) == 0, "keys nobody holds are forgotten"
    await r.delivery.stop()


async def test_key_locks_let_keyless_events_through() -> None:
    locks = KeyLocks()
    async with locks.hold(None), locks.hold(None):
        assert len(locks) == 0
