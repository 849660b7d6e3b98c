"""The audit writer: `settle` waits for a submission's records, never through an outage."""

from __future__ import annotations

import asyncio
from typing import Any

from streamworker.audit.writer import AuditWriter


class FakeStore:
    """Appends after `delay_s`; fails while `down` is set."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.down = False
        self.appended: list[Any] = []
        self.batches: list[int] = []

    async def append_many(self, records: list[Any]) -> list[bool]:
        await asyncio.sleep(self.delay_s)
        if self.down:
            raise ConnectionError("database down")
        self.appended.extend(records)
        self.batches.append(len(records))
        return [True] * len(records)

    async def events(self, submission_id: str) -> list[Any]:
        return [r for r in self.appended if r.submission_id == submission_id]


class Rec:
    def __init__(self, sid: str) -> None:
        self.submission_id = sid


async def test_settle_returns_once_the_records_are_written() -> None:
    store = FakeStore(delay_s=0.05)
    writer = AuditWriter(store)  # type: ignore[arg-type]
    writer.start()
    writer.submit(Rec("a"))  # type: ignore[arg-type]
    writer.submit(Rec("b"))  # type: ignore[arg-type]
    assert await writer.settle("b", timeout_s=2.0) is True
    assert [r.submission_id for r in store.appended] == ["a", "b"]
    await writer.stop()


async def test_settle_gives_up_at_its_timeout() -> None:
    writer = AuditWriter(FakeStore(delay_s=1.0))  # type: ignore[arg-type]
    writer.start()
    writer.submit(Rec("slow"))  # type: ignore[arg-type]
    assert await writer.settle("slow", timeout_s=0.1) is False
    assert writer.store.appended == []  # type: ignore[attr-defined]  # still in flight
    await writer.stop(timeout_s=2.0)


async def test_settle_does_not_wait_through_an_outage() -> None:
    store = FakeStore()
    store.down = True
    writer = AuditWriter(store, max_backoff_s=0.05)  # type: ignore[arg-type]
    writer.start()
    writer.submit(Rec("x"))  # type: ignore[arg-type]
    started = asyncio.get_running_loop().time()
    assert await writer.settle("x", timeout_s=5.0) is False
    assert asyncio.get_running_loop().time() - started < 1.0
    store.down = False
    assert await writer.drain(timeout_s=2.0) is True
    assert [r.submission_id for r in store.appended] == ["x"]
    await writer.stop()


async def test_settle_of_an_unknown_submission_is_immediate() -> None:
    writer = AuditWriter(FakeStore())  # type: ignore[arg-type]
    assert await writer.settle("nothing-queued", timeout_s=0.1) is True


async def test_records_queued_during_a_write_go_in_one_batch() -> None:
    store = FakeStore(delay_s=0.05)
    writer = AuditWriter(store, max_batch=3)  # type: ignore[arg-type]
    writer.start()
    writer.submit(Rec("first"))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)  # the writer is inside the first append now
    for sid in ("a", "b", "c", "d"):
        writer.submit(Rec(sid))  # type: ignore[arg-type]
    assert await writer.drain(timeout_s=2.0) is True
    assert store.batches == [1, 3, 1]
    assert [r.submission_id for r in store.appended] == ["first", "a", "b", "c", "d"]
    await writer.stop()
