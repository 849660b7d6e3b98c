"""One event's failure stays that event's: budgets on what is echoed and dead-lettered,
crash-proof handling, and the restart ledger that stops a poison event from looping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import streamworker.worker.ledger as ledger_module
from streamworker.audit.prior import Prior
from streamworker.contract import ResultEvent, RunResult, Status, now_utc
from streamworker.fit import budget_for
from streamworker.pipeline import Pipeline, Source, dead_letter
from streamworker.retry import RetryPolicy
from streamworker.settings import Settings
from streamworker.worker.ledger import RestartLedger, event_key

SOURCE = Source("streamworker.submissions", 1, 7, b"s1")
FAST = RetryPolicy(base_delay_s=0.0)


def event(sid: str = "s1", **extra: Any) -> bytes:
    return json.dumps({"submission_id": sid, "language": "python", "source": "x", **extra}).encode()


class BrokenAudit:
    """An audit sink whose read fails in a way nobody planned for."""

    records: list[Any] = []

    def submit(self, record: Any) -> None:
        self.records.append(record)

    async def prior(self, submission_id: str) -> Prior | None:
        raise RuntimeError("a bug in the audit reader")

    async def settle(self, submission_id: str, timeout_s: float | None = None) -> bool:
        return True


class NeverSandbox:
    def image_for(self, language: Any) -> str:
        return "img"

    def session(self, request: Any) -> Any:
        raise AssertionError("must not run")


def test_dead_letters_keep_the_original_bytes_up_to_the_budget() -> None:
    value = b"x" * 5000
    dead = dead_letter(value, SOURCE, ValueError("boom"), max_value_bytes=1000)
    headers = dict(dead.headers)
    assert dead.value == value[:1000]
    assert headers["value_truncated"] == b"true" and headers["value_bytes"] == b"5000"
    whole = dead_letter(value, SOURCE, ValueError("boom"), max_value_bytes=5000)
    assert whole.value == value and "value_truncated" not in dict(whole.headers)


def test_dead_letter_error_headers_are_capped() -> None:
    dead = dead_letter(b"{}", SOURCE, ValueError("y" * 100_000))
    assert len(dict(dead.headers)["error"]) < 2000


async def test_a_crash_anywhere_in_handling_ends_as_an_answer_and_a_dead_letter() -> None:
    pipeline = Pipeline(Settings(worker_id="w"), NeverSandbox(), BrokenAudit(), FAST)
    outcome = await pipeline.handle(event(), SOURCE)
    assert outcome.result is not None and outcome.dead_letter is not None
    assert outcome.result.status is Status.INTERNAL_ERROR
    assert outcome.result.submission_id == "s1"
    assert dict(outcome.dead_letter.headers)["error_type"] == b"RuntimeError"


async def test_a_crash_without_a_readable_id_is_dead_lettered_only() -> None:
    pipeline = Pipeline(Settings(worker_id="w"), NeverSandbox(), BrokenAudit(), FAST)
    outcome = pipeline.failed(b"\xff" * 10, SOURCE, RuntimeError("x"))
    assert outcome.result is None and outcome.dead_letter is not None


async def test_a_long_unknown_language_is_not_echoed_whole() -> None:
    pipeline = Pipeline(Settings(worker_id="w"), NeverSandbox(), BrokenAudit(), FAST)
    outcome = pipeline.failed(event(language="z" * 50_000), SOURCE, RuntimeError("z" * 50_000))
    assert outcome.result is not None and len(outcome.result.message or "") < 1100


async def test_record_result_fits_the_result_under_the_budget() -> None:
    class Sink(BrokenAudit):
        records: list[Any] = []

    run = RunResult("1", Status.ACCEPTED, stdout="\x01" * 100_000, stdout_bytes=100_000)
    big = ResultEvent("s1", Status.ACCEPTED, "python", "w", now_utc(), None, now_utc(), runs=(run,))
    sink = Sink()
    pipeline = Pipeline(
        Settings(worker_id="w"), NeverSandbox(), sink, FAST, budget=budget_for(60_000, 60_000)
    )
    fitted = await pipeline.record_result(big)
    assert len(fitted.encode()) <= 60_000 - 8192
    assert fitted.runs[0].stdout_truncated and fitted.runs[0].stdout_bytes == 100_000
    # The audit log holds exactly what is published.
    assert sink.records[-1].payload == fitted.to_dict()


async def test_handle_returns_the_result_fitted_and_recorded() -> None:
    class Sink(BrokenAudit):
        records: list[Any] = []

        async def prior(self, submission_id: str) -> Prior | None:
            return None

    sink = Sink()
    pipeline = Pipeline(
        Settings(worker_id="w"), NeverSandbox(), sink, FAST, budget=budget_for(60_000, 60_000)
    )
    run = RunResult("1", Status.ACCEPTED, stdout="\x01" * 100_000, stdout_bytes=100_000)
    big = ResultEvent("s1", Status.ACCEPTED, "python", "w", now_utc(), None, now_utc(), runs=(run,))

    async def execute(*args: Any, **kwargs: Any) -> ResultEvent:
        return big

    pipeline.execute = execute  # type: ignore[method-assign]
    outcome = await pipeline.handle(event(), SOURCE)
    assert outcome.result is not None and outcome.result is not big
    assert len(outcome.result.encode()) <= 60_000 - 8192
    # What `handle` returns is exactly what the audit log holds: nothing left to record.
    assert sink.records[-1].payload == outcome.result.to_dict()


async def test_fail_records_the_failure_answer() -> None:
    class Sink(BrokenAudit):
        records: list[Any] = []

    sink = Sink()
    pipeline = Pipeline(Settings(worker_id="w"), NeverSandbox(), sink, FAST)
    outcome = await pipeline.fail(event(), SOURCE, RuntimeError("x"), message="why")
    assert outcome.result is not None and outcome.result.message == "why"
    assert outcome.dead_letter is not None
    assert sink.records[-1].payload == outcome.result.to_dict()


async def test_a_failing_audit_sink_reaches_the_caller() -> None:
    """Recording is the one thing `handle` lets through: the worker's delivery then
    publishes the failure answer instead (and restarts if that cannot be recorded)."""

    class Refusing(BrokenAudit):
        async def prior(self, submission_id: str) -> Prior | None:
            return None

        def submit(self, record: Any) -> None:
            raise RuntimeError("the audit queue is gone")

    pipeline = Pipeline(Settings(worker_id="w"), NeverSandbox(), Refusing(), FAST)
    with pytest.raises(RuntimeError, match="audit queue"):
        await pipeline.handle(event(language=None), SOURCE)


def test_the_restart_ledger_counts_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    key = event_key("t", 0, 5)
    ledger = RestartLedger(path)
    assert ledger.restarts(key) == 0
    assert ledger.record(key) == 1
    assert ledger.record(key) == 2
    assert RestartLedger(path).restarts(key) == 2  # a new process reads it back


def test_the_restart_ledger_stays_bounded_and_survives_garbage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_module, "MAX_ENTRIES", 20)
    path = tmp_path / "ledger.json"
    ledger = RestartLedger(path)
    for offset in range(30):
        ledger.record(event_key("t", 0, offset))
    reread = RestartLedger(path)
    assert reread.restarts(event_key("t", 0, 0)) == 0
    assert reread.restarts(event_key("t", 0, 29)) == 1
    assert len(json.loads(path.read_text())) == 20
    path.write_text("{not json")
    assert RestartLedger(path).restarts(event_key("t", 0, 1)) == 0
    path.write_text("[1, 2]")
    assert RestartLedger(path).restarts(event_key("t", 0, 1)) == 0
