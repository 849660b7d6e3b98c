"""`Pipeline.handle` with a fake sandbox and an in-memory audit sink: bytes in, outcome out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from streamworker import metrics
from streamworker.audit.records import AuditKind, fact_event_id
from streamworker.contract import Status, decode_submission, now_utc
from streamworker.errors import DockerUnavailable, ImageMissing
from streamworker.pipeline import Outcome, Pipeline, Source
from streamworker.retry import RetryPolicy
from streamworker.settings import Settings

SOURCE = Source(topic="streamworker.submissions", partition=3, offset=42, key=b"sub-1")
DLQ_HEADERS = ["error", "error_type", "source_topic", "source_partition", "source_offset"]

FAST_RETRY = RetryPolicy(base_delay_s=0.0)


def event(**fields: Any) -> bytes:
    obj: dict[str, Any] = {"submission_id": "sub-1", "language": "python", "source": "print(1)"}
    for key, value in fields.items():
        if value is None:
            obj.pop(key, None)
        else:
            obj[key] = value
    return json.dumps(obj).encode()


def metric(name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels or {}) or 0.0


@pytest.fixture
def pipeline(settings: Settings, sandbox: Any, audit: Any) -> Pipeline:
    return Pipeline(settings, sandbox, audit, FAST_RETRY)


async def handle(pipeline: Pipeline, value: bytes) -> Outcome:
    return await pipeline.handle(value, SOURCE)


# ------------------------------------------------------------------------------ dead letters


class TestDeadLetters:
    @pytest.mark.parametrize(
        "value",
        [b"{not json", b"\xff\xfe\x00garbage", b"", b"[1,2]", event(submission_id="bad id")],
    )
    async def test_unreadable_event_is_dead_lettered_without_a_result(
        self, pipeline: Pipeline, sandbox: Any, audit: Any, value: bytes
    ) -> None:
        before = metric("streamworker_dead_letters_total")
        outcome = await handle(pipeline, value)
        assert outcome.result is None
        dead = outcome.dead_letter
        assert dead is not None
        assert dead.value is value  # the original bytes, untouched
        assert dead.key == b"sub-1"
        assert [name for name, _ in dead.headers] == DLQ_HEADERS
        headers = dict(dead.headers)
        assert all(isinstance(v, bytes) for v in headers.values())
        assert headers["error_type"] == b"InvalidEvent"
        assert headers["source_topic"] == b"streamworker.submissions"
        assert headers["source_partition"] == b"3"
        assert headers["source_offset"] == b"42"
        assert headers["error"]
        assert audit.records == []
        assert sandbox.opened == []
        assert metric("streamworker_dead_letters_total") == before + 1

    async def test_error_header_names_the_cause(self, pipeline: Pipeline) -> None:
        outcome = await handle(pipeline, b"\xff")
        assert outcome.dead_letter is not None
        assert b"UTF-8" in dict(outcome.dead_letter.headers)["error"]

    async def test_key_none_is_kept(self, pipeline: Pipeline) -> None:
        source = Source("t", 0, 0, None)
        outcome = await pipeline.handle(b"nope", source)
        assert outcome.dead_letter is not None
        assert outcome.dead_letter.key is None

    async def test_missing_field_with_readable_id_gets_dlq_and_invalid_result(
        self, pipeline: Pipeline, settings: Settings, sandbox: Any, audit: Any
    ) -> None:
        value = event(language=None, metadata={"tenant": "t1", "user": 7})
        outcome = await handle(pipeline, value)
        assert outcome.dead_letter is not None
        assert outcome.dead_letter.value is value
        assert dict(outcome.dead_letter.headers)["error"] == b"language: is required"
        result = outcome.result
        assert result is not None
        assert result.submission_id == "sub-1"
        assert result.status is Status.INVALID_SUBMISSION
        assert result.judge0_status_id == 13
        assert result.message is not None and "language" in result.message
        assert dict(result.metadata) == {"tenant": "t1", "user": 7}
        assert result.worker_id == settings.worker_id
        assert result.started_at is None
        assert result.runs == () and result.compile is None
        assert result.finished_at >= result.received_at
        body = json.loads(result.encode())
        assert body["status"] == "invalid_submission"
        assert body["judge0_status_id"] == 13
        assert body["metadata"] == {"tenant": "t1", "user": 7}
        assert body["received_at"].endswith("Z")
        # Only the answer is in the audit log, exactly as published.
        (record,) = audit.records
        assert record.kind is AuditKind.INVALID and record.payload == result.to_dict()
        assert sandbox.opened == []

    @pytest.mark.parametrize(
        ("fields", "needle"),
        [
            ({"source": None}, "source"),
            ({"files": [{"path": "/etc/passwd", "content": ""}]}, "files"),
            ({"limits": {"gpu": 1}}, "limits.gpu"),
            ({"test_cases": [{"id": "a"}, {"id": "a"}]}, "test_cases[1].id"),
            ({"compare": "fuzzy"}, "compare"),
        ],
    )
    async def test_invalid_field_is_named_in_the_result_message(
        self, pipeline: Pipeline, fields: dict[str, Any], needle: str
    ) -> None:
        outcome = await handle(pipeline, event(**fields))
        assert outcome.result is not None
        assert outcome.result.message is not None
        assert outcome.result.message.startswith(needle)
        assert outcome.dead_letter is not None

    async def test_oversized_metadata_is_not_echoed(self, pipeline: Pipeline) -> None:
        outcome = await handle(pipeline, event(metadata={"k": "x" * 5000}))
        assert outcome.result is not None
        assert outcome.result.message is not None and "metadata" in outcome.result.message
        assert dict(outcome.result.metadata) == {}


# ------------------------------------------------------------------- valid events, judged


class TestJudged:
    async def test_accepted_result(
        self, pipeline: Pipeline, settings: Settings, sandbox: Any
    ) -> None:
        outcome = await handle(
            pipeline, event(stdin="1\n", expected_output="1", metadata={"problem": "p1"})
        )
        assert outcome.dead_letter is None
        result = outcome.result
        assert result is not None
        assert result.status is Status.ACCEPTED
        assert result.judge0_status_id == 3
        assert result.language == "python"
        assert result.message is None
        assert result.runtime.image == "fake-runtime-python"
        assert result.runtime.image_id == "sha256:fake"
        assert len(result.runs) == 1 and result.runs[0].stdout == "1\n"
        assert dict(result.metadata) == {"problem": "p1"}
        assert result.attempt == 1
        assert result.worker_id == settings.worker_id
        assert result.started_at is not None
        assert result.received_at <= result.started_at <= result.finished_at
        assert json.loads(result.encode())["runs"][0]["status"] == "accepted"
        assert sandbox.opened[0].submission_id == "sub-1"

    async def test_wrong_answer(self, pipeline: Pipeline) -> None:
        outcome = await handle(pipeline, event(stdin="2\n", expected_output="1"))
        assert outcome.result is not None
        assert outcome.result.status is Status.WRONG_ANSWER
        assert outcome.result.judge0_status_id == 4

    async def test_unknown_language_is_invalid_submission_without_dlq(
        self, pipeline: Pipeline, sandbox: Any, audit: Any
    ) -> None:
        outcome = await handle(pipeline, event(language="no-such-language", metadata={"t": 1}))
        assert outcome.dead_letter is None
        result = outcome.result
        assert result is not None
        assert result.status is Status.INVALID_SUBMISSION
        assert result.judge0_status_id == 13
        assert result.language == "no-such-language"
        assert result.message is not None and "no-such-language" in result.message
        assert dict(result.metadata) == {"t": 1}
        assert result.started_at is None
        assert sandbox.opened == []
        assert audit.kinds() == ["received", "invalid"]

    async def test_limit_above_maximum_is_invalid_submission(
        self, pipeline: Pipeline, settings: Settings, sandbox: Any
    ) -> None:
        limit = settings.max_limits.memory_mb + 1
        outcome = await handle(pipeline, event(limits={"memory_mb": limit}))
        assert outcome.dead_letter is None
        assert outcome.result is not None
        assert outcome.result.status is Status.INVALID_SUBMISSION
        assert outcome.result.message is not None
        assert "limits.memory_mb" in outcome.result.message
        assert sandbox.opened == []

    async def test_source_too_large_is_invalid_submission(self, sandbox: Any, audit: Any) -> None:
        pipeline = Pipeline(Settings(worker_id="w", max_source_bytes=4), sandbox, audit, FAST_RETRY)
        outcome = await handle(pipeline, event(source="print(1)"))
        assert outcome.result is not None
        assert outcome.result.status is Status.INVALID_SUBMISSION
        assert outcome.result.message is not None
        assert outcome.result.message.startswith("source")

    @pytest.mark.parametrize(
        ("error", "code"),
        [
            (DockerUnavailable("Docker is unreachable: connection refused"), "docker.unavailable"),
            (ImageMissing("runtime image x is missing"), "sandbox.image_missing"),
            (OSError(28, "No space left on device"), "unexpected OSError"),
        ],
    )
    async def test_sandbox_failure_is_internal_error(
        self, settings: Settings, audit: Any, fakes: Any, error: BaseException, code: str
    ) -> None:
        sandbox = fakes.FakeSandbox(error=error)
        pipeline = Pipeline(settings, sandbox, audit, FAST_RETRY)
        in_flight = metric("streamworker_runs_in_flight")
        outcome = await handle(pipeline, event(metadata={"m": 1}))
        assert outcome.dead_letter is None
        result = outcome.result
        assert result is not None
        assert result.status is Status.INTERNAL_ERROR
        assert result.judge0_status_id == 13
        assert result.message is not None
        assert result.message.startswith(code)
        assert str(error.args[-1]) in result.message
        assert result.language == "python"
        assert dict(result.metadata) == {"m": 1}
        assert result.runs == ()
        assert audit.kinds() == ["received", "started", "finished"]
        assert metric("streamworker_runs_in_flight") == in_flight

    async def test_metrics_count_published_submissions(self, pipeline: Pipeline) -> None:
        labels = {"language": "python", "status": "accepted"}
        before = metric("streamworker_submissions_total", labels)
        # Judging alone counts nothing: a result is "answered" once it is to be published.
        await pipeline.execute(decode_submission(event()), now_utc())
        assert metric("streamworker_submissions_total", labels) == before
        outcome = await handle(pipeline, event())
        assert outcome.result is not None
        assert metric("streamworker_submissions_total", labels) == before + 1
        assert metric("streamworker_runs_in_flight") == 0

    @pytest.mark.parametrize(
        ("value", "labels"),
        [
            (
                event(language="no-such-language"),
                {"language": "no-such-language", "status": "invalid_submission"},
            ),
            (event(language=None), {"language": "unknown", "status": "invalid_submission"}),
            (event(compare=[]), {"language": "unknown", "status": "invalid_submission"}),
        ],
    )
    async def test_metrics_count_invalid_results_when_published(
        self, pipeline: Pipeline, value: bytes, labels: dict[str, str]
    ) -> None:
        before = metric("streamworker_submissions_total", labels)
        outcome = await handle(pipeline, value)
        assert outcome.result is not None
        assert metric("streamworker_submissions_total", labels) == before + 1

    async def test_metrics_count_internal_errors_when_published(
        self, settings: Settings, audit: Any, fakes: Any
    ) -> None:
        pipeline = Pipeline(
            settings, fakes.FakeSandbox(error=DockerUnavailable("down")), audit, FAST_RETRY
        )
        labels = {"language": "python", "status": "internal_error"}
        before = metric("streamworker_submissions_total", labels)
        outcome = await handle(pipeline, event())
        assert outcome.result is not None
        assert metric("streamworker_submissions_total", labels) == before + 1


# ------------------------------------------------------------------------------- audit sink


class TestAudit:
    async def test_received_and_started_records(
        self, pipeline: Pipeline, settings: Settings, audit: Any
    ) -> None:
        outcome = await handle(pipeline, event(metadata={"u": "x"}, test_cases=[{"id": "a"}]))
        assert outcome.result is not None
        received, started, finished = audit.records
        assert finished.kind is AuditKind.FINISHED
        assert (received.kind, started.kind) == (AuditKind.RECEIVED, AuditKind.STARTED)
        for record in (received, started):
            assert record.submission_id == "sub-1"
            assert record.attempt == 1
            assert record.worker_id == settings.worker_id
            assert record.occurred_at.tzinfo is not None
        assert received.occurred_at == outcome.result.received_at
        assert received.event_id == fact_event_id("sub-1", AuditKind.RECEIVED, 1)
        assert started.event_id == fact_event_id("sub-1", AuditKind.STARTED, 1)
        assert received.payload["language"] == "python"
        assert received.payload["metadata"] == {"u": "x"}
        assert started.payload["image"] == "fake-runtime-python"

    async def test_the_start_is_durable_before_the_sandbox_opens(
        self, settings: Settings, fakes: Any
    ) -> None:
        """A worker killed mid-run must leave its attempt in the log: the pipeline waits
        for the received and started records before it asks the sandbox for anything."""
        order: list[str] = []

        class Audit(fakes.MemoryAudit):  # type: ignore[misc,name-defined]
            async def settle(self, submission_id: str, timeout_s: float | None = None) -> bool:
                order.append("settled " + ",".join(str(r.kind) for r in self.records))
                return True

        class Sandbox(fakes.FakeSandbox):  # type: ignore[misc,name-defined]
            def session(self, request: Any) -> Any:
                order.append("sandbox")
                return super().session(request)

        outcome = await Pipeline(settings, Sandbox(), Audit(), FAST_RETRY).handle(event(), SOURCE)
        assert outcome.result is not None and outcome.result.status is Status.ACCEPTED
        assert order[:2] == ["settled received,started", "sandbox"], order

    async def test_event_ids_are_deterministic_per_fact(
        self, settings: Settings, fakes: Any
    ) -> None:
        first, second = fakes.MemoryAudit(), fakes.MemoryAudit()
        await Pipeline(settings, fakes.FakeSandbox(), first, FAST_RETRY).handle(event(), SOURCE)
        await Pipeline(settings, fakes.FakeSandbox(), second, FAST_RETRY).handle(event(), SOURCE)
        ids = [r.event_id for r in first.records]
        # The facts' ids are deterministic; the answer's is its result's `event_id`.
        result_ids = [ids.pop(), second.records[-1].event_id]
        assert ids == [r.event_id for r in second.records[:-1]]
        assert ids == [
            fact_event_id("sub-1", AuditKind.RECEIVED, 1),
            fact_event_id("sub-1", AuditKind.STARTED, 1),
        ]
        assert len(set(ids + result_ids)) == 4
        other = fakes.MemoryAudit()
        await Pipeline(settings, fakes.FakeSandbox(), other, FAST_RETRY).handle(
            event(submission_id="sub-2"), SOURCE
        )
        assert not set(ids) & {r.event_id for r in other.records}

    async def test_event_ids_differ_per_attempt(self, pipeline: Pipeline, audit: Any) -> None:
        sub = decode_submission(event())
        first = await pipeline.execute(sub, now_utc(), attempt=1)
        second = await pipeline.execute(sub, now_utc(), attempt=2)
        ids = [r.event_id for r in audit.records]
        assert ids == [
            fact_event_id("sub-1", kind, attempt)
            for attempt in (1, 2)
            for kind in (AuditKind.RECEIVED, AuditKind.STARTED)
        ]
        assert len(set(ids)) == 4
        assert [r.attempt for r in audit.records] == [1, 1, 2, 2]
        assert (first.attempt, second.attempt) == (1, 2)
        assert first.event_id != second.event_id

    async def test_received_record_keeps_code_and_answers_out(
        self, pipeline: Pipeline, audit: Any
    ) -> None:
        secret = "the-secret-answer-42"
        await handle(
            pipeline,
            event(source="print('src-marker')", stdin="stdin-marker", expected_output=secret),
        )
        *facts, answer = audit.records
        assert answer.kind is AuditKind.FINISHED
        blob = json.dumps([dict(r.payload) for r in facts])
        for needle in ("src-marker", "stdin-marker", secret):
            assert needle not in blob
        # The answer holds the program's output (here its stdin echoed), never the code
        # or the expected output.
        answer_blob = json.dumps(dict(answer.payload))
        assert "src-marker" not in answer_blob and secret not in answer_blob
        assert audit.records[0].payload["has_expected_output"] is True

    async def test_handle_records_the_result_under_its_event_id(
        self, pipeline: Pipeline, audit: Any
    ) -> None:
        outcome = await handle(pipeline, event())
        assert outcome.result is not None
        record = audit.records[-1]
        assert record.kind is AuditKind.FINISHED
        assert record.event_id == outcome.result.event_id
        assert record.payload == outcome.result.to_dict()
        assert record.occurred_at == outcome.result.finished_at
        assert record.attempt == outcome.result.attempt
        assert audit.kinds() == ["received", "started", "finished"]

    async def test_handle_records_an_invalid_result(self, pipeline: Pipeline, audit: Any) -> None:
        outcome = await handle(pipeline, event(language=None))
        assert outcome.result is not None
        (record,) = audit.records
        assert record.kind is AuditKind.INVALID
        assert record.event_id == outcome.result.event_id
        assert record.submission_id == "sub-1"
        assert record.payload == outcome.result.to_dict()

    async def test_handle_records_an_unknown_language(self, pipeline: Pipeline, audit: Any) -> None:
        outcome = await handle(pipeline, event(language="no-such-language"))
        assert outcome.result is not None
        assert audit.kinds() == ["received", "invalid"]
        assert audit.records[-1].event_id == outcome.result.event_id

    async def test_handle_records_an_internal_error(
        self, settings: Settings, audit: Any, fakes: Any
    ) -> None:
        pipeline = Pipeline(
            settings, fakes.FakeSandbox(error=DockerUnavailable("down")), audit, FAST_RETRY
        )
        outcome = await handle(pipeline, event())
        assert outcome.result is not None
        assert audit.kinds() == ["received", "started", "finished"]
        assert audit.records[-1].event_id == outcome.result.event_id
        assert audit.records[-1].payload["status"] == "internal_error"


# ------------------------------------------------------------------- nothing escapes handle()


class TestNeverRaises:
    """The agent publishes what `handle` returns; an exception stalls the partition."""

    @pytest.mark.parametrize("compare", [[], {}, 1])
    async def test_non_string_compare(self, pipeline: Pipeline, compare: Any) -> None:
        outcome = await handle(pipeline, event(compare=compare))
        assert outcome.dead_letter is not None
        assert outcome.result is not None
        assert outcome.result.status is Status.INVALID_SUBMISSION
        assert outcome.result.message is not None
        assert outcome.result.message.startswith("compare")

    async def test_lone_surrogate_in_stdin(self, pipeline: Pipeline, sandbox: Any) -> None:
        value = b'{"submission_id":"s","language":"python","source":"x","stdin":"\\ud800"}'
        outcome = await handle(pipeline, value)
        assert outcome.dead_letter is not None
        assert outcome.dead_letter.value is value
        result = outcome.result
        assert result is not None
        assert result.submission_id == "s"
        assert result.status is Status.INVALID_SUBMISSION
        assert result.message is not None and "surrogate" in result.message
        json.loads(result.encode())
        assert sandbox.opened == []

    async def test_result_with_surrogate_metadata_encodes(self, pipeline: Pipeline) -> None:
        value = b'{"submission_id":"s","language":"python","source":"x","metadata":{"k":"\\ud800"}}'
        outcome = await handle(pipeline, value)
        assert outcome.dead_letter is not None
        result = outcome.result
        assert result is not None
        assert result.status is Status.INVALID_SUBMISSION
        assert dict(result.metadata) == {}  # not echoed: it is not text
        assert json.loads(result.encode())["metadata"] == {}

    async def test_unexpected_sandbox_exception(
        self, settings: Settings, audit: Any, fakes: Any
    ) -> None:
        pipeline = Pipeline(settings, fakes.FakeSandbox(error=RuntimeError("bug")), audit)
        in_flight = metric("streamworker_runs_in_flight")
        outcome = await handle(pipeline, event(metadata={"m": 1}))
        assert outcome.dead_letter is None
        result = outcome.result
        assert result is not None
        assert result.status is Status.INTERNAL_ERROR
        assert result.message == "unexpected RuntimeError: bug"
        assert dict(result.metadata) == {"m": 1}
        assert metric("streamworker_runs_in_flight") == in_flight

    async def test_unexpected_exception_during_a_run(
        self, settings: Settings, audit: Any, fakes: Any
    ) -> None:
        def responder(call: Any, index: int) -> Any:
            raise ValueError("helper sent garbage")

        sandbox = fakes.FakeSandbox(responder=responder)
        outcome = await handle(Pipeline(settings, sandbox, audit, FAST_RETRY), event())
        assert outcome.result is not None
        assert outcome.result.status is Status.INTERNAL_ERROR
        assert outcome.result.message == "unexpected ValueError: helper sent garbage"
        assert sandbox.closed == 1

    async def test_huge_integer_limit(self, pipeline: Pipeline) -> None:
        outcome = await handle(pipeline, event(limits={"memory_mb": 10**400}))
        assert outcome.dead_letter is not None
        assert outcome.result is not None
        assert outcome.result.status is Status.INVALID_SUBMISSION

    async def test_result_with_overflowing_metadata_is_strict_json(
        self, pipeline: Pipeline
    ) -> None:
        value = b'{"submission_id":"s","language":"python","source":"x","metadata":{"x":1e400}}'
        outcome = await handle(pipeline, value)
        assert outcome.result is not None

        def reject(token: str) -> Any:
            raise ValueError(f"non-JSON token {token}")

        json.loads(outcome.result.encode(), parse_constant=reject)
