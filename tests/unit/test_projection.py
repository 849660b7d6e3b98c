"""The pure projection: event log in, `executions`/`execution_runs` rows out."""

from __future__ import annotations

import dataclasses
import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streamworker.audit.projection import (
    EXECUTION_COLUMNS,
    RUN_COLUMNS,
    dedupe,
    project_all,
    project_runs,
    project_submission,
    winning_result,
)
from streamworker.audit.records import (
    AuditKind,
    AuditRecord,
    fact_event_id,
    published_record,
    received_record,
    result_record,
    started_record,
)
from streamworker.contract import ResultEvent, RunResult, Runtime, Status, decode_submission

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
SID = "sub-1"
CONTRACT_COLUMNS = {
    "submission_id",
    "language",
    "status",
    "judge0_status_id",
    "received_at",
    "started_at",
    "finished_at",
    "cpu_time_s",
    "wall_time_s",
    "memory_kb",
    "worker_id",
    "attempts",
    "metadata",
}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def received(attempt: int = 1, t: float = 0, worker: str = "w1", sid: str = SID) -> AuditRecord:
    submission = decode_submission(
        b'{"submission_id": "%s", "language": "python", "source": "print(1)",'
        b' "stdin": "secret-in", "expected_output": "secret-out", "metadata": {"user": "u1"}}'
        % sid.encode()
    )
    return received_record(submission, worker_id=worker, attempt=attempt, received_at=at(t))


def started(attempt: int = 1, t: float = 1, worker: str = "w1", sid: str = SID) -> AuditRecord:
    return started_record(
        sid,
        worker_id=worker,
        attempt=attempt,
        started_at=at(t),
        image="streamworker-runtime-python",
    )


def result(
    attempt: int = 1,
    t: float = 3,
    worker: str = "w1",
    status: Status = Status.ACCEPTED,
    runs: tuple[RunResult, ...] | None = None,
    compile_run: RunResult | None = None,
    sid: str = SID,
    message: str | None = None,
) -> ResultEvent:
    if runs is None:
        runs = (
            RunResult("a", Status.ACCEPTED, "1\n", "", False, False, 0, None, 0.25, 0.5, 1000),
            RunResult("b", Status.ACCEPTED, "2\n", "", True, False, 0, None, 0.5, 0.75, 3000),
        )
    return ResultEvent(
        submission_id=sid,
        status=status,
        language="python",
        worker_id=worker,
        received_at=at(0),
        started_at=at(1) if status is not Status.INVALID_SUBMISSION else None,
        finished_at=at(t),
        message=message,
        runtime=Runtime("streamworker-runtime-python", "sha256:abc"),
        compile=compile_run,
        runs=runs,
        metadata={"user": "u1"},
        attempt=attempt,
    )


def finished(attempt: int = 1, t: float = 3, **kwargs: Any) -> AuditRecord:
    return result_record(result(attempt, t, **kwargs))


class TestInProgress:
    def test_received_only_is_an_in_progress_row(self) -> None:
        execution, runs = project_submission([received()])
        assert execution == {
            "submission_id": SID,
            "language": "python",
            "status": None,
            "judge0_status_id": None,
            "message": None,
            "received_at": at(0),
            "started_at": None,
            "finished_at": None,
            "cpu_time_s": None,
            "wall_time_s": None,
            "memory_kb": None,
            "worker_id": "w1",
            "attempts": 1,
            "metadata": {"user": "u1"},
            "result_event_id": None,
            "result_topic_offset": None,
            "updated_at": at(0),
        }
        assert runs == []

    def test_started_sets_started_at(self) -> None:
        execution, _ = project_submission([received(), started(t=1.5)])
        assert execution["started_at"] == at(1.5)
        assert execution["status"] is None
        assert execution["updated_at"] == at(1.5)

    def test_latest_attempt_started_and_worker(self) -> None:
        events = [received(1, 0, "w1"), started(1, 1, "w1")]
        events += [received(2, 10, "w2"), started(2, 11, "w2")]
        execution, _ = project_submission(events)
        assert execution["started_at"] == at(11)
        assert execution["worker_id"] == "w2"
        assert execution["attempts"] == 2
        assert execution["received_at"] == at(0), "first receipt while unanswered"
        assert execution["message"] is None, "no answer yet, so nothing to say"

    def test_a_crashed_attempt_leaves_the_row_unanswered(self) -> None:
        execution, _ = project_submission([received(), started()])
        assert execution["status"] is None
        assert execution["message"] is None
        assert execution["finished_at"] is None

    def test_started_without_received_still_projects(self) -> None:
        execution, _ = project_submission([started(t=4)])
        assert execution["received_at"] == at(4)
        assert execution["language"] is None
        assert execution["metadata"] == {}


class TestFinished:
    def test_finished_row_mirrors_published_result(self) -> None:
        answer = finished()
        execution, runs = project_submission([received(), started(), answer])
        payload = answer.payload
        assert execution["status"] == "accepted"
        assert execution["judge0_status_id"] == 3
        assert execution["received_at"] == at(0)
        assert execution["started_at"] == at(1)
        assert execution["finished_at"] == at(3)
        assert execution["result_event_id"] == payload["event_id"]
        assert execution["metadata"] == {"user": "u1"}
        assert execution["language"] == "python"
        assert execution["worker_id"] == "w1"
        assert execution["updated_at"] == at(3)
        assert [r["test_case_id"] for r in runs] == ["a", "b"]

    def test_times_are_summed_and_memory_is_the_peak(self) -> None:
        execution, _ = project_submission([finished()])
        assert execution["cpu_time_s"] == pytest.approx(0.75)
        assert execution["wall_time_s"] == pytest.approx(1.25)
        assert execution["memory_kb"] == 3000

    def test_missing_measurements_are_ignored_all_missing_is_null(self) -> None:
        runs = (
            RunResult("a", Status.ACCEPTED, cpu_time_s=None, wall_time_s=1.0, memory_kb=None),
            RunResult("b", Status.ACCEPTED, cpu_time_s=None, wall_time_s=2.0, memory_kb=None),
        )
        execution, _ = project_submission([finished(runs=runs)])
        assert execution["cpu_time_s"] is None
        assert execution["wall_time_s"] == pytest.approx(3.0)
        assert execution["memory_kb"] is None

    def test_compile_run_is_a_row_but_not_in_the_sums(self) -> None:
        compile_run = RunResult(
            None, Status.ACCEPTED, cpu_time_s=9.0, wall_time_s=9.0, memory_kb=99999
        )
        execution, runs = project_submission([finished(compile_run=compile_run)])
        assert [(r["stage"], r["ordinal"]) for r in runs] == [
            ("compile", 0),
            ("run", 0),
            ("run", 1),
        ]
        assert execution["cpu_time_s"] == pytest.approx(0.75)
        assert execution["memory_kb"] == 3000

    def test_compilation_error_has_only_the_compile_row(self) -> None:
        compile_run = RunResult(
            None,
            Status.COMPILATION_ERROR,
            stderr="boom",
            exit_code=1,
            cpu_time_s=0.5,
            wall_time_s=0.6,
            memory_kb=50000,
        )
        answer = finished(status=Status.COMPILATION_ERROR, runs=(), compile_run=compile_run)
        execution, runs = project_submission([answer])
        assert execution["status"] == "compilation_error"
        assert execution["judge0_status_id"] == 6
        assert execution["cpu_time_s"] is None
        assert [r["stage"] for r in runs] == ["compile"]
        assert runs[0]["exit_code"] == 1

    def test_run_rows_carry_the_run_fields(self) -> None:
        runs = (
            RunResult(None, Status.RUNTIME_ERROR, "", "", True, True, None, "SIGSEGV", 0.1, 0.2, 7),
        )
        answer = finished(status=Status.RUNTIME_ERROR, runs=runs)
        execution, rows = project_submission([answer])
        assert execution["judge0_status_id"] == 7
        assert rows == [
            {
                "submission_id": SID,
                "stage": "run",
                "ordinal": 0,
                "test_case_id": None,
                "status": "runtime_error",
                "exit_code": None,
                "signal": "SIGSEGV",
                "cpu_time_s": 0.1,
                "wall_time_s": 0.2,
                "memory_kb": 7,
                "stdout_truncated": True,
                "stderr_truncated": True,
            }
        ]
        assert set(rows[0]) == set(RUN_COLUMNS)

    @pytest.mark.parametrize(
        ("field", "value", "projected"),
        [
            ("exit_code", 2**31 - 1, 2**31 - 1),
            ("exit_code", 2**31, None),  # INTEGER on PostgreSQL
            ("exit_code", -(2**31), -(2**31)),
            ("memory_kb", 2**63 - 1, 2**63 - 1),
            ("memory_kb", 2**63, None),  # BIGINT
            ("cpu_time_s", 10**400, None),  # no float holds it
            ("cpu_time_s", 2**63, float(2**63)),
        ],
    )
    def test_numbers_outside_their_column_project_as_null(
        self, field: str, value: int, projected: float | None
    ) -> None:
        answer = finished()
        run = dict(answer.payload["runs"][0], **{field: value})
        answer = dataclasses.replace(answer, payload=dict(answer.payload, runs=[run]))
        _, rows = project_submission([answer])
        assert rows[0][field] == projected

    def test_finished_beats_later_received_and_started(self) -> None:
        answer = finished(attempt=1, t=3)
        late = [received(2, 20, "w2"), started(2, 22, "w2")]
        execution, runs = project_submission([received(), answer, *late])
        assert execution["status"] == "accepted"
        assert execution["worker_id"] == "w1"
        assert execution["message"] is None
        assert execution["attempts"] == 2, "attempts counts every attempt seen"
        assert execution["updated_at"] == at(22)
        assert len(runs) == 2

    def test_highest_attempt_result_wins_whatever_the_clocks(self) -> None:
        first = finished(attempt=1, t=50, worker="w1", status=Status.WRONG_ANSWER)
        second = finished(attempt=2, t=5, worker="w2", status=Status.ACCEPTED)
        for events in itertools.permutations([first, second, received()]):
            execution, _ = project_submission(events)
            assert execution["status"] == "accepted"
            assert execution["worker_id"] == "w2"
            assert execution["result_event_id"] == second.event_id
            assert execution["attempts"] == 2

    def test_same_attempt_tie_goes_to_the_later_result(self) -> None:
        early = finished(attempt=1, t=3, status=Status.WRONG_ANSWER)
        later = finished(attempt=1, t=4, status=Status.ACCEPTED)
        assert winning_result([later, early]) == later
        assert winning_result([early, later]) == later

    def test_missing_result_fields_fall_back_to_received(self) -> None:
        answer = finished()
        payload = dict(answer.payload, language=None, received_at=None, metadata=None)
        stripped = AuditRecord(answer.event_id, SID, "finished", 1, "w1", at(3), payload)
        execution, _ = project_submission([received(t=0.5), stripped])
        assert execution["language"] == "python"
        assert execution["received_at"] == at(0.5)
        assert execution["metadata"] == {}


class TestInvalid:
    def test_invalid_submission(self) -> None:
        answer = result_record(
            result(status=Status.INVALID_SUBMISSION, runs=(), message="language: is required")
        )
        assert answer.kind == AuditKind.INVALID
        execution, runs = project_submission([answer])
        assert execution["status"] == "invalid_submission"
        assert execution["judge0_status_id"] == 13
        assert execution["message"] == "language: is required"
        assert execution["started_at"] is None
        assert execution["finished_at"] == at(3)
        assert execution["cpu_time_s"] is None
        assert runs == []


class TestPublished:
    def test_offset_of_the_winning_result(self) -> None:
        loser = result(attempt=1, t=3)
        winner = result(attempt=2, t=9)
        events = [
            result_record(loser),
            result_record(winner),
            published_record(loser, topic="r", partition=0, offset=5, published_at=at(4)),
            published_record(winner, topic="r", partition=0, offset=8, published_at=at(10)),
        ]
        execution, _ = project_submission(events)
        assert execution["result_topic_offset"] == 8

    def test_no_offset_until_published(self) -> None:
        execution, _ = project_submission([finished()])
        assert execution["result_topic_offset"] is None


class TestDeterminism:
    def lifecycle(self) -> list[AuditRecord]:
        r1 = result(attempt=1, t=30, status=Status.TIME_LIMIT_EXCEEDED)
        r2 = result(attempt=2, t=40)
        return [
            received(1, 0, "w1"),
            started(1, 1, "w1"),
            received(2, 10, "w2"),
            started(2, 11, "w2"),
            result_record(r1),
            result_record(r2),
            published_record(r2, topic="r", partition=1, offset=3, published_at=at(41)),
        ]

    def test_any_delivery_order_gives_the_same_rows(self) -> None:
        events = self.lifecycle()
        expected = project_submission(events)
        rng = random.Random(7)
        for _ in range(200):
            shuffled = events[:]
            rng.shuffle(shuffled)
            assert project_submission(shuffled) == expected

    def test_all_permutations_of_a_small_lifecycle(self) -> None:
        events = [received(), started(), started(2, 5), finished(attempt=2, t=9)]
        expected = project_submission(events)
        for order in itertools.permutations(events):
            assert project_submission(order) == expected

    def test_duplicates_change_nothing(self) -> None:
        events = self.lifecycle()
        expected = project_submission(events)
        assert project_submission(events + events[::-1] + events[:3]) == expected

    def test_conflicting_duplicates_resolve_independently_of_order(self) -> None:
        a = AuditRecord("same", SID, "started", 1, "w1", at(1), {"started_at": None, "image": "a"})
        b = AuditRecord("same", SID, "started", 1, "w2", at(1), {"started_at": None, "image": "b"})
        assert dedupe([a, b]) == dedupe([b, a]) == [a]

    def test_project_all_groups_by_submission(self) -> None:
        events = [received(sid="x"), finished(sid="y"), started(sid="x"), received(sid="y")]
        projections = project_all(events)
        assert list(projections) == ["x", "y"]
        assert projections["x"].execution["status"] is None
        assert projections["y"].execution["status"] == "accepted"
        assert projections == project_all(reversed(events))


class TestShape:
    def test_execution_row_has_the_contract_columns(self) -> None:
        execution, _ = project_submission([received(), finished()])
        assert tuple(execution) == EXECUTION_COLUMNS
        assert set(execution) >= CONTRACT_COLUMNS

    def test_rejects_empty_and_mixed_input(self) -> None:
        with pytest.raises(ValueError, match="without events"):
            project_submission([])
        with pytest.raises(ValueError, match="several submissions"):
            project_submission([received(sid="a"), received(sid="b")])

    def test_project_runs_of_nothing(self) -> None:
        assert project_runs(None) == []
        assert winning_result([received(), started()]) is None


class TestRecords:
    def test_kind_is_coerced_and_validated(self) -> None:
        record = AuditRecord("e", SID, "received", 1, "w", T0, {})
        assert record.kind is AuditKind.RECEIVED
        with pytest.raises(ValueError):
            AuditRecord("e", SID, "exploded", 1, "w", T0, {})

    def test_naive_time_and_negative_attempt_are_rejected(self) -> None:
        with pytest.raises(ValueError, match="timezone"):
            AuditRecord("e", SID, "received", 1, "w", datetime(2024, 1, 1), {})
        with pytest.raises(ValueError, match="attempt"):
            AuditRecord("e", SID, "received", -1, "w", T0, {})
        with pytest.raises(ValueError, match="non-empty"):
            AuditRecord("", SID, "received", 1, "w", T0, {})

    def test_fact_ids_are_deterministic_and_distinct(self) -> None:
        assert fact_event_id(SID, AuditKind.RECEIVED, 1) == received().event_id
        assert received(attempt=1).event_id == received(attempt=1, t=5, worker="w9").event_id
        ids = {fact_event_id(SID, k, n) for k in AuditKind for n in (1, 2)}
        assert len(ids) == 2 * len(AuditKind)

    def test_received_payload_keeps_code_and_answers_out(self) -> None:
        payload = received().payload
        assert payload["language"] == "python"
        assert payload["metadata"] == {"user": "u1"}
        assert payload["received_at"] == "2024-05-01T12:00:00.000000Z"
        assert payload["has_expected_output"] is True
        text = repr(payload)
        assert "print(1)" not in text
        assert "secret-in" not in text
        assert "secret-out" not in text

    def test_result_record_is_the_published_dict(self) -> None:
        event = result()
        record = result_record(event)
        assert record.event_id == event.event_id
        assert record.kind == AuditKind.FINISHED
        assert record.payload == event.to_dict()
        assert record.occurred_at == event.finished_at
