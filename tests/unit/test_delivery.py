"""Delivery policies: retries, prior state, duplicate handling, reaping, time budgets."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streamworker.audit.prior import prior_from
from streamworker.audit.records import received_record, result_record, started_record
from streamworker.contract import ResultEvent, Status, decode_submission
from streamworker.errors import ContainerCreateFailed, DockerUnavailable, LimitNotApplied
from streamworker.languages.registry import get_language
from streamworker.limits import DEFAULT_LIMITS
from streamworker.pipeline import Pipeline, Source
from streamworker.retry import RetryPolicy, retry
from streamworker.sandbox.policy import time_budget_s
from streamworker.sandbox.reaper import is_expired, is_orphaned_pool_container
from streamworker.sandbox.spec import LABEL_PREFIX, container_name
from streamworker.settings import Settings

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SOURCE = Source("streamworker.submissions", 0, 1, b"k")
FAST = RetryPolicy(base_delay_s=0.0)


def submission(sid: str = "s1") -> Any:
    event = {"submission_id": sid, "language": "python", "source": "print(1)"}
    return decode_submission(json.dumps(event).encode())


def result(sid: str = "s1", attempt: int = 1) -> ResultEvent:
    return ResultEvent(sid, Status.ACCEPTED, "python", "w", NOW, NOW, NOW, attempt=attempt)


class TestRetry:
    @pytest.mark.parametrize("failures", [1, 2, 3, 10])
    def test_delay_is_jittered_and_capped(self, failures: int) -> None:
        policy = RetryPolicy(base_delay_s=0.5, max_delay_s=2.0)
        assert policy.delay_s(failures, 0.0) == 0.0
        assert policy.delay_s(failures, 1.0) == min(2.0, 0.5 * 2 ** (failures - 1))

    async def test_retriable_errors_are_retried_until_success(self) -> None:
        calls: list[int] = []

        async def flaky() -> str:
            calls.append(1)
            if len(calls) < 3:
                raise DockerUnavailable("down")
            return "ok"

        assert await retry(flaky, RetryPolicy(max_tries=3, base_delay_s=0.0)) == "ok"
        assert len(calls) == 3

    async def test_gives_up_after_max_tries_and_says_so(self) -> None:
        calls: list[int] = []

        async def broken() -> None:
            calls.append(1)
            raise ContainerCreateFailed("create failed")

        with pytest.raises(ContainerCreateFailed, match="gave up after 3 tries"):
            await retry(broken, RetryPolicy(max_tries=3, base_delay_s=0.0))
        assert len(calls) == 3

    async def test_non_retriable_errors_are_not_retried(self) -> None:
        calls: list[int] = []

        async def refused() -> None:
            calls.append(1)
            raise LimitNotApplied("dropped")

        with pytest.raises(LimitNotApplied):
            await retry(refused, FAST)
        assert len(calls) == 1


class TestPrior:
    def test_nothing_known(self) -> None:
        prior = prior_from([])
        assert prior.answer is None and prior.attempts == 0

    def test_started_without_result_counts_the_attempt(self) -> None:
        records = [
            received_record(submission(), worker_id="w", attempt=1, received_at=NOW),
            started_record("s1", worker_id="w", attempt=1, started_at=NOW, image="img"),
        ]
        prior = prior_from(records)
        assert prior.answer is None and prior.attempts == 1

    def test_result_is_the_answer(self) -> None:
        published = result(attempt=2)
        prior = prior_from([result_record(published)])
        assert prior.answer is not None
        assert prior.answer["event_id"] == published.event_id


class MemoryAudit:
    def __init__(self, records: list[Any] | None = None, unknown: bool = False) -> None:
        self.records = list(records or [])
        self.unknown = unknown

    def submit(self, record: Any) -> None:
        self.records.append(record)

    async def prior(self, submission_id: str) -> Any:
        if self.unknown:
            return None
        return prior_from(r for r in self.records if r.submission_id == submission_id)

    async def settle(self, submission_id: str, timeout_s: float | None = None) -> bool:
        return not self.unknown


class NeverSandbox:
    def image_for(self, language: Any) -> str:
        return "img"

    def session(self, request: Any) -> Any:
        raise AssertionError("must not run")


def event_bytes(sid: str = "s1") -> bytes:
    return json.dumps({"submission_id": sid, "language": "python", "source": "x"}).encode()


class TestDuplicates:
    async def test_answered_in_the_table_is_skipped(self) -> None:
        pipeline = Pipeline(Settings(worker_id="w"), NeverSandbox(), MemoryAudit(), FAST)
        outcome = await pipeline.handle(event_bytes(), SOURCE, answered=lambda sid: True)
        assert outcome.skipped and outcome.result is None and outcome.republish is None

    async def test_answered_in_the_log_is_republished_unchanged(self) -> None:
        published = result()
        audit = MemoryAudit([result_record(published)])
        pipeline = Pipeline(Settings(worker_id="w"), NeverSandbox(), audit, FAST)
        outcome = await pipeline.handle(event_bytes(), SOURCE, answered=lambda sid: False)
        assert outcome.result is None
        assert outcome.republish == published
        assert outcome.republish is not None and outcome.republish.encode() == published.encode()

    async def test_attempts_that_never_finished_are_not_run_again(self) -> None:
        # Three attempts started and none answered: the worker died each time.
        started = [
            started_record("s1", worker_id="w", attempt=n, started_at=NOW, image="i")
            for n in (1, 2, 3)
        ]
        pipeline = Pipeline(Settings(worker_id="w"), NeverSandbox(), MemoryAudit(started), FAST)
        outcome = await pipeline.handle(event_bytes(), SOURCE)
        assert outcome.result is not None and outcome.dead_letter is not None
        assert outcome.result.status is Status.INTERNAL_ERROR
        assert "gave up after 3 attempts" in (outcome.result.message or "")
        assert dict(outcome.dead_letter.headers)["error_type"] == b"PoisonEvent"

    async def test_an_interrupted_attempt_is_retried_with_the_next_number(self) -> None:
        started = started_record("s1", worker_id="w", attempt=1, started_at=NOW, image="i")

        class Boom(NeverSandbox):
            def session(self, request: Any) -> Any:
                self.attempt = request.attempt
                raise DockerUnavailable("down")

        sandbox = Boom()
        pipeline = Pipeline(Settings(worker_id="w"), sandbox, MemoryAudit([started]), FAST)
        outcome = await pipeline.handle(event_bytes(), SOURCE)
        assert sandbox.attempt == 2
        assert outcome.result is not None and outcome.result.attempt == 2

    async def test_unknown_prior_does_not_block(self) -> None:
        class Boom(NeverSandbox):
            def session(self, request: Any) -> Any:
                raise DockerUnavailable("down")

        pipeline = Pipeline(Settings(worker_id="w"), Boom(), MemoryAudit(unknown=True), FAST)
        outcome = await pipeline.handle(event_bytes(), SOURCE)
        assert outcome.result is not None
        assert outcome.result.status is Status.INTERNAL_ERROR
        assert "gave up after 3 tries" in (outcome.result.message or "")


class TestReaper:
    def test_past_deadline_is_expired(self) -> None:
        labels = {f"{LABEL_PREFIX}.deadline-at": "2025-12-31T23:59:59Z"}
        assert is_expired(labels, NOW)

    def test_future_deadline_is_kept(self) -> None:
        later = (NOW + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
        assert not is_expired({f"{LABEL_PREFIX}.deadline-at": later}, NOW)

    @pytest.mark.parametrize("labels", [{}, {f"{LABEL_PREFIX}.deadline-at": "garbage"}])
    def test_unreadable_deadline_is_expired(self, labels: dict[str, str]) -> None:
        assert is_expired(labels, NOW)


def test_time_budget_covers_compile_and_every_case() -> None:
    compile_limits = DEFAULT_LIMITS
    python, c = get_language("python"), get_language("c")
    one = time_budget_s(python, DEFAULT_LIMITS, compile_limits, 0)
    three = time_budget_s(python, DEFAULT_LIMITS, compile_limits, 3)
    assert three == pytest.approx(3 * one)
    assert time_budget_s(c, DEFAULT_LIMITS, compile_limits, 1) > one + compile_limits.wall_time_s


class TestOrphanedPool:
    def test_old_idle_pool_container_is_an_orphan(self) -> None:
        created = (NOW - timedelta(seconds=400)).timestamp()
        assert is_orphaned_pool_container("streamworker_pool-python-abc", created, NOW, 300)

    def test_young_idle_pool_container_is_kept(self) -> None:
        created = (NOW - timedelta(seconds=100)).timestamp()
        assert not is_orphaned_pool_container("streamworker_pool-python-abc", created, NOW, 300)

    def test_the_owners_idle_limit_wins_over_the_reapers(self) -> None:
        """A worker with a 300 s idle limit must not reap another worker's idle container
        whose owner keeps them for an hour (a daemon shared by differently set workers)."""
        created = (NOW - timedelta(seconds=400)).timestamp()
        owner = {"org.streamworker.idle-until": (NOW + timedelta(minutes=50)).isoformat()}
        assert not is_orphaned_pool_container("streamworker_pool-c-1", created, NOW, 300, owner)
        gone = {"org.streamworker.idle-until": (NOW - timedelta(seconds=1)).isoformat()}
        young = (NOW - timedelta(seconds=10)).timestamp()
        assert is_orphaned_pool_container("streamworker_pool-c-1", young, NOW, 300, gone)
        broken = {"org.streamworker.idle-until": "soon"}
        assert is_orphaned_pool_container("streamworker_pool-c-1", created, NOW, 300, broken)

    def test_taken_containers_are_judged_by_their_deadline_only(self) -> None:
        created = (NOW - timedelta(hours=2)).timestamp()
        assert not is_orphaned_pool_container("streamworker-s1-abc-a1", created, NOW, 300)
        # A submission id that reads like a pool name still names a taken container.
        for sid in ("pool-python-abc", "_pool-x", "pool_"):
            assert not is_orphaned_pool_container(container_name(sid, 1), created, NOW, 300)
