"""The audit writer: `settle` waits for a submission's records, never through an outage."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import DataError

from streamworker import metrics
from streamworker.audit.records import AuditRecord
from streamworker.audit.writer import AuditWriter

T0 = datetime(2024, 5, 1, tzinfo=UTC)


class FakeStore:
    """Appends after `delay_s`; fails while `down` is set."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.down = False
        self.appended: list[Any] = []
        self.batches: list[int] = []
        self.projected: list[str] = []
        self.broken: set[str] = set()
        self.deferred: list[str] = []

    async def append_logged(self, records: list[Any]) -> list[bool]:
        await asyncio.sleep(self.delay_s)
        if self.down:
            raise ConnectionError("database down")
        self.appended.extend(records)
        self.batches.append(len(records))
        return [True] * len(records)

    async def events(self, submission_id: str) -> list[Any]:
        return [r for r in self.appended if r.submission_id == submission_id]

    # The projector's side: marks are the submissions appended and not yet projected.
    def _marks(self) -> list[str]:
        done = set(self.projected)
        return list(
            dict.fromkeys(r.submission_id for r in self.appended if r.submission_id not in done)
        )

    async def project_pending(self, limit: int = 200, only: list[str] | None = None) -> int:
        if self.down:
            raise ConnectionError("database down")
        marks = [m for m in self._marks() if only is None or m in only][:limit]
        if set(marks) & self.broken:
            raise ValueError("refused projection")
        self.projected.extend(marks)
        return len(marks)

    async def pending_marks(self, limit: int = 200) -> list[str]:
        return self._marks()[:limit]

    async def defer_mark(self, submission_id: str) -> None:
        self.deferred.append(submission_id)


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
    assert asyncio.get_running_loop().time() - started < 2.5  # half the 5 s it would wait
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


# -- refused records: bisected out, quarantined, never a stall -------------------------------


class FakeQuarantine:
    def __init__(self) -> None:
        self.rows: list[tuple[AuditRecord, str]] = []
        self.failures = 0

    async def add(self, record: AuditRecord, error: str) -> int:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("database down")
        self.rows.append((record, error))
        return len(self.rows)

    async def count_unresolved(self) -> int:
        return len(self.rows)


class RefusingStore(FakeStore):
    """Refuses, like PostgreSQL, any batch holding a record whose stdout has a NUL."""

    def __init__(self, delay_s: float = 0.0) -> None:
        super().__init__(delay_s)
        self.quarantine = FakeQuarantine()
        self.attempts = 0

    async def append_logged(self, records: list[Any]) -> list[bool]:
        self.attempts += 1
        if any("\x00" in r.payload.get("stdout", "") for r in records):
            await asyncio.sleep(self.delay_s)
            raise DataError("INSERT", {}, Exception("invalid byte sequence: 0x00"))
        return await super().append_logged(records)


def record(sid: str, stdout: str = "ok") -> AuditRecord:
    return AuditRecord(f"e-{sid}", sid, "finished", 1, "w1", T0, {"stdout": stdout})


def quarantined_total() -> float:
    return metrics.REGISTRY.get_sample_value("streamworker_audit_quarantined_total") or 0.0


async def test_refused_records_are_quarantined_and_the_rest_written_in_order() -> None:
    store = RefusingStore(delay_s=0.01)
    writer = AuditWriter(store)  # type: ignore[arg-type]
    before = quarantined_total()
    sids = ["a", "bad1", "b", "c", "d", "bad2", "e", "f"]
    for sid in sids:  # all queued before the writer starts: one batch of eight
        writer.submit(record(sid, "x\x00y" if sid.startswith("bad") else "ok"))
    writer.start()
    assert await writer.drain(timeout_s=5.0) is True
    assert [r.submission_id for r in store.appended] == ["a", "b", "c", "d", "e", "f"]
    assert [(r.submission_id, e) for r, e in store.quarantine.rows] == [
        ("bad1", "Exception: invalid byte sequence: 0x00"),
        ("bad2", "Exception: invalid byte sequence: 0x00"),
    ]
    assert store.attempts < 2 * len(sids)  # bisected, not retried record by record
    assert quarantined_total() - before == 2
    assert writer.quarantined == 2
    assert writer.pending == 0 and writer.lag_seconds() == 0.0
    assert writer.last_error is None
    assert await writer.settle("bad1", timeout_s=0.1) is True  # durable, in quarantine
    await writer.stop()


async def test_records_after_a_refused_one_keep_flowing() -> None:
    store = RefusingStore()
    writer = AuditWriter(store)  # type: ignore[arg-type]
    writer.start()
    writer.submit(record("poison", "\x00"))
    for i in range(20):
        writer.submit(record(f"later-{i}"))
        assert await writer.settle(f"later-{i}", timeout_s=2.0) is True
    assert len(store.appended) == 20
    assert len(store.quarantine.rows) == 1
    await writer.stop()


async def test_an_outage_is_retried_not_quarantined() -> None:
    store = RefusingStore()
    store.down = True
    writer = AuditWriter(store, max_backoff_s=0.02)  # type: ignore[arg-type]
    writer.start()
    for sid in ("a", "b", "c"):
        writer.submit(record(sid))
    await asyncio.sleep(0.2)
    assert writer.last_error == "database down"
    assert store.quarantine.rows == [] and writer.pending == 3
    store.down = False
    assert await writer.drain(timeout_s=2.0) is True
    assert [r.submission_id for r in store.appended] == ["a", "b", "c"]
    assert store.quarantine.rows == []
    await writer.stop()


async def test_a_failing_quarantine_write_is_retried_and_loses_nothing() -> None:
    store = RefusingStore()
    store.quarantine.failures = 3
    writer = AuditWriter(store, max_backoff_s=0.02)  # type: ignore[arg-type]
    writer.start()
    writer.submit(record("bad", "\x00"))
    writer.submit(record("good"))
    assert await writer.drain(timeout_s=2.0) is True
    assert [r.submission_id for r, _ in store.quarantine.rows] == ["bad"]
    assert [r.submission_id for r in store.appended] == ["good"]
    await writer.stop()


# -- lag: the age of the oldest record not yet durable ----------------------------------------


class BlockedStore(FakeStore):
    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def append_logged(self, records: list[Any]) -> list[bool]:
        await self.release.wait()
        return await super().append_logged(records)


def lag_metric(name: str) -> float:
    value = metrics.REGISTRY.get_sample_value(name)
    assert value is not None
    return value


async def test_lag_grows_while_a_batch_is_stuck_and_returns_to_zero() -> None:
    store = BlockedStore()
    writer = AuditWriter(store)  # type: ignore[arg-type]
    writer.start()
    assert writer.lag_seconds() == 0.0 and lag_metric("streamworker_audit_lag_seconds") == 0.0
    writer.submit(record("stuck"))
    await asyncio.sleep(0.05)  # taken off the queue: in flight, not durable
    writer.submit(record("queued"))
    await asyncio.sleep(0.1)
    # The gauge is read at scrape time, so it keeps growing with nothing submitted.
    assert lag_metric("streamworker_audit_lag_seconds") >= 0.15
    assert lag_metric("streamworker_audit_lag_events") == 2  # the in-flight batch counts
    assert writer.pending == 2
    store.release.set()
    assert await writer.drain(timeout_s=2.0) is True
    assert lag_metric("streamworker_audit_lag_seconds") == 0.0
    assert lag_metric("streamworker_audit_lag_events") == 0
    await writer.stop()


async def test_lag_is_the_oldest_waiting_record() -> None:
    store = BlockedStore()
    writer = AuditWriter(store, max_batch=1)  # type: ignore[arg-type]
    writer.submit(record("old"))
    await asyncio.sleep(0.2)
    writer.submit(record("new"))
    assert writer.lag_seconds() >= 0.2
    writer.start()
    store.release.set()
    assert await writer.settle("old", timeout_s=1.0) is True
    await writer.drain(timeout_s=1.0)
    assert writer.lag_seconds() == 0.0
    await writer.stop()


# -- health --------------------------------------------------------------------------------


async def test_health_reports_lag_beyond_the_threshold_and_quarantine() -> None:
    store = BlockedStore()
    store.quarantine = FakeQuarantine()  # type: ignore[attr-defined]
    writer = AuditWriter(store, lag_degraded_s=0.1)  # type: ignore[arg-type]
    assert (await writer.health()).text() == "ok"
    writer.submit(record("slow"))
    await asyncio.sleep(0.15)
    health = await writer.health()
    assert health.degraded and health.text().startswith("degraded: lag 0s > 0.1s")
    store.quarantine.rows.append((record("bad"), "refused"))  # type: ignore[attr-defined]
    assert (await writer.health()).text().endswith("; 1 record(s) quarantined")
    store.quarantine.rows.clear()  # type: ignore[attr-defined]  # requeued by the operator
    writer.start()
    store.release.set()
    await writer.drain(timeout_s=1.0)
    assert (await writer.health()).text() == "ok"
    await writer.stop()


async def test_health_falls_back_to_its_own_count_when_the_table_cannot_say() -> None:
    store = RefusingStore()
    writer = AuditWriter(store)  # type: ignore[arg-type]
    writer.start()
    writer.submit(record("bad", "\x00"))
    await writer.drain(timeout_s=1.0)

    async def broken() -> int:
        raise ConnectionError("database down")

    store.quarantine.count_unresolved = broken  # type: ignore[method-assign]
    assert (await writer.health()).quarantined == 1
    assert writer.health_now().text() == "degraded: 1 record(s) quarantined"
    await writer.stop()


async def test_projection_follows_the_append_and_isolates_a_failing_submission() -> None:
    store = FakeStore()
    store.broken = {"bad"}
    writer = AuditWriter(store, max_backoff_s=0.05)  # type: ignore[arg-type]
    writer.start()
    for sid in ("a", "bad", "b"):
        writer.submit(Rec(sid))  # type: ignore[arg-type]
    assert await writer.settle("b", timeout_s=2.0) is True
    deadline = asyncio.get_running_loop().time() + 2.0
    while set(store.projected) != {"a", "b"}:
        assert asyncio.get_running_loop().time() < deadline, store.projected
        await asyncio.sleep(0.01)
    assert "bad" in store.deferred  # at the back, still marked
    assert "bad" not in store.projected
    await writer.stop()


async def test_appends_within_the_projection_window_share_one_projection() -> None:
    """Three separate appends (three settles) inside the window: one projection
    transaction, not one per append (and none to find that nothing is left)."""

    class CountingStore(FakeStore):
        def __init__(self) -> None:
            super().__init__()
            self.projections: list[int] = []
            self.calls = 0

        async def project_pending(self, limit: int = 200, only: list[str] | None = None) -> int:
            self.calls += 1
            done = await super().project_pending(limit, only)
            if done:
                self.projections.append(done)
            return done

    store = CountingStore()
    writer = AuditWriter(store, project_delay_s=0.3)  # type: ignore[arg-type]
    writer.start()
    for sid in ("a", "b", "c"):
        writer.submit(Rec(sid))  # type: ignore[arg-type]
        assert await writer.settle(sid, timeout_s=2.0) is True
    assert len(store.batches) == 3 and store.projections == []
    deadline = asyncio.get_running_loop().time() + 3.0
    while not store.projections:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    assert store.projections == [3]
    assert store.calls == 1  # a short batch ends the round: no empty transaction after it
    await writer.stop()
