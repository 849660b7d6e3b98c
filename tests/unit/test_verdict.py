"""Verdicts decided outside the sandbox from bytes read as data."""

from __future__ import annotations

import base64
import signal as signals
from typing import Any

import pytest

from streamworker.contract import Compare, Status
from streamworker.errors import (
    ConfigError,
    ContainerCreateFailed,
    DockerUnavailable,
    HelperProtocolError,
    ImageMissing,
    InvalidEvent,
    LimitNotApplied,
    UnknownLanguage,
)
from streamworker.limits import RunLimits
from streamworker.sandbox.failure import FailureKind
from streamworker.sandbox.protocol import HelperReport, RawRun
from streamworker.verdict import (
    FAILURE_STATUS,
    OOM_SLACK,
    KeptOutput,
    decode_output,
    heap_exhausted,
    outputs_match,
    run_result,
    run_status,
    signal_name,
    status_for_error,
)

LIMITS = RunLimits(
    cpu_time_s=2.0, wall_time_s=5.0, memory_mb=100, processes=16, output_kb=64, file_size_kb=64
)
LIMIT_KB = LIMITS.memory_mb * 1024

TW = Compare.TRAILING_WHITESPACE
EXACT = Compare.EXACT


def report(**overrides: Any) -> HelperReport:
    values: dict[str, Any] = {
        "exit_code": 0,
        "signal": None,
        "cpu_time_s": 0.1,
        "wall_time_s": 0.2,
        "memory_kb": 5000,
        "oom_kills": 0,
        "timed_out": False,
        "output_exceeded": False,
        "overflow_stream": 0,
        "output_bytes": 0,
        "exec_errno": 0,
    }
    values.update(overrides)
    return HelperReport(**values)


def raw(stdout: bytes = b"", stderr: bytes = b"", **overrides: Any) -> RawRun:
    return RawRun(stdout, stderr, report(**overrides))


def no_report(
    failure: str | None,
    stdout: bytes = b"",
    stderr: bytes = b"",
    kind: FailureKind | None = None,
) -> RawRun:
    return RawRun(stdout, stderr, None, failure, kind)


# --------------------------------------------------------------------------- outputs_match


@pytest.mark.parametrize(
    ("actual", "expected", "tw", "exact"),
    [
        ("3\n", "3\n", True, True),
        ("3", "3\n", True, False),
        ("3\n\n\n", "3", True, False),
        ("3   \n4\t\n", "3\n4\n", True, False),
        ("3\r\n4\r\n", "3\n4\n", True, False),
        ("3 \r\n\r\n", "3", True, False),
        ("", "", True, True),
        ("\n\n", "", True, False),
        ("3\n", "4\n", False, False),
        (" 3\n", "3\n", False, False),  # leading spaces matter in both modes
        ("3\n\n4\n", "3\n4\n", False, False),  # inner blank lines matter
        ("3 4\n", "3  4\n", False, False),  # inner spaces matter
        ("a\nb", "a\nb\nc", False, False),
        ("a\rb", "a\nb", False, False),  # a lone CR is not a line break
    ],
)
def test_outputs_match(actual: str, expected: str, tw: bool, exact: bool) -> None:
    assert outputs_match(actual, expected, TW) is tw
    assert outputs_match(actual, expected, EXACT) is exact


def test_outputs_match_is_symmetric_for_trailing_whitespace() -> None:
    assert outputs_match("3", "3 \n\n", TW)
    assert outputs_match("3 \n\n", "3", TW)


# ------------------------------------------------------------------------ small helpers


@pytest.mark.parametrize(
    ("number", "name"),
    [
        (None, None),
        (0, None),
        (signals.SIGSEGV, "SIGSEGV"),
        (signals.SIGKILL, "SIGKILL"),
        (signals.SIGXCPU, "SIGXCPU"),
        (signals.SIGXFSZ, "SIGXFSZ"),
        (200, "SIG200"),
    ],
)
def test_signal_name(number: int | None, name: str | None) -> None:
    assert signal_name(number) == name


def test_decode_output() -> None:
    assert decode_output(b"abc", 3) == KeptOutput("abc", None, False)
    assert decode_output(b"abcd", 3) == KeptOutput("abc", None, True)
    assert decode_output(b"", 0) == KeptOutput("", None, False)
    # bytes that are not UTF-8 travel exactly in base64 beside the replaced text
    assert decode_output(b"\xff ok", 10) == KeptOutput("\ufffd ok", "/yBvaw==", False)
    # a cut inside a multi-byte character of valid text keeps whole characters only
    assert decode_output("aé".encode(), 2) == KeptOutput("a", None, True)
    assert decode_output("é".encode(), 1) == KeptOutput("", None, True)


def test_decode_output_binary_round_trips() -> None:
    data = bytes(range(256))
    kept = decode_output(data, 1024)
    assert kept.b64 is not None and base64.b64decode(kept.b64) == data
    cut = decode_output(data, 200)
    assert cut.cut and cut.b64 is not None and base64.b64decode(cut.b64) == data[:200]


# ----------------------------------------------------------------------------- run_status


class TestRunStatus:
    @pytest.mark.parametrize(
        ("kind", "status"),
        [
            (FailureKind.WORKER_TIMEOUT, Status.TIME_LIMIT_EXCEEDED),
            (FailureKind.OUTPUT_FLOOD, Status.OUTPUT_LIMIT_EXCEEDED),
            (FailureKind.HELPER_ERROR, Status.INTERNAL_ERROR),
            (FailureKind.OOM_KILLED, Status.MEMORY_LIMIT_EXCEEDED),
            (None, Status.RUNTIME_ERROR),
        ],
    )
    def test_no_report_is_decided_by_the_failure_kind(
        self, kind: FailureKind | None, status: Status
    ) -> None:
        assert run_status(no_report("why", kind=kind), LIMITS) == (status, None)

    def test_the_failure_text_decides_nothing(self) -> None:
        # The message is for people; a program printing it changes no verdict.
        failure = "the sandbox helper did not finish in time; container killed"
        assert run_status(no_report(failure), LIMITS) == (Status.RUNTIME_ERROR, None)
        oom = no_report("did not finish in time", kind=FailureKind.OOM_KILLED)
        assert run_status(oom, LIMITS) == (Status.MEMORY_LIMIT_EXCEEDED, None)

    def test_every_failure_kind_has_a_status(self) -> None:
        assert set(FAILURE_STATUS) == set(FailureKind)

    @pytest.mark.parametrize(
        ("overrides", "status"),
        [
            ({"signal": 9, "exit_code": None}, Status.RUNTIME_ERROR),
            ({"timed_out": True, "signal": 9}, Status.TIME_LIMIT_EXCEEDED),
            ({"oom_kills": 1, "signal": 9}, Status.MEMORY_LIMIT_EXCEEDED),
            # A lost runner's figures are not the program's: none of them decides.
            ({"cpu_time_s": 99.0, "memory_kb": 10**7, "exit_code": 0}, Status.RUNTIME_ERROR),
            ({"exec_errno": 2}, Status.RUNTIME_ERROR),
        ],
    )
    def test_a_lost_runner_is_judged_by_the_helpers_own_findings(
        self, overrides: dict[str, Any], status: Status
    ) -> None:
        assert run_status(raw(runner_lost=True, **overrides), LIMITS) == (status, None)

    def test_internal_error_of_a_refused_request_keeps_the_helpers_message(self) -> None:
        refused = no_report(
            "the sandbox helper refused the request: 'main.py: File exists'",
            stderr=b"main.py: File exists",
            kind=FailureKind.HELPER_ERROR,
        )
        result = result_of(refused)
        assert result.status is Status.INTERNAL_ERROR
        assert "File exists" in result.stderr and result.cpu_time_s is None

    def test_exec_errno_is_internal_error(self) -> None:
        status = run_status(raw(exec_errno=2, exit_code=127), LIMITS)
        assert status == (Status.INTERNAL_ERROR, None)

    def test_exec_errno_wins_over_everything(self) -> None:
        status = run_status(
            raw(exec_errno=13, output_exceeded=True, timed_out=True, oom_kills=1), LIMITS
        )
        assert status == (Status.INTERNAL_ERROR, None)

    def test_output_exceeded_is_ole(self) -> None:
        assert run_status(raw(output_exceeded=True, overflow_stream=1), LIMITS) == (
            Status.OUTPUT_LIMIT_EXCEEDED,
            None,
        )

    def test_output_exceeded_keeps_the_signal_and_wins_over_timeout(self) -> None:
        status = run_status(
            raw(output_exceeded=True, signal=signals.SIGKILL, timed_out=True), LIMITS
        )
        assert status == (Status.OUTPUT_LIMIT_EXCEEDED, "SIGKILL")

    def test_timed_out_is_tle(self) -> None:
        status = run_status(raw(timed_out=True, signal=signals.SIGKILL, exit_code=None), LIMITS)
        assert status == (Status.TIME_LIMIT_EXCEEDED, "SIGKILL")

    def test_sigxcpu_is_tle(self) -> None:
        status = run_status(raw(signal=signals.SIGXCPU, exit_code=None), LIMITS)
        assert status == (Status.TIME_LIMIT_EXCEEDED, "SIGXCPU")

    def test_cpu_over_limit_is_tle_even_with_exit_zero(self) -> None:
        assert run_status(raw(cpu_time_s=2.001), LIMITS) == (Status.TIME_LIMIT_EXCEEDED, None)
        assert run_status(raw(cpu_time_s=2.0), LIMITS) == (Status.ACCEPTED, None)

    def test_tle_wins_over_memory(self) -> None:
        status = run_status(raw(timed_out=True, oom_kills=1), LIMITS)
        assert status[0] is Status.TIME_LIMIT_EXCEEDED

    def test_oom_kill_counter_is_mle(self) -> None:
        status = run_status(raw(oom_kills=1, signal=signals.SIGKILL, exit_code=None), LIMITS)
        assert status == (Status.MEMORY_LIMIT_EXCEEDED, "SIGKILL")

    def test_oom_kill_of_a_child_is_mle_even_with_exit_zero(self) -> None:
        assert run_status(raw(oom_kills=2), LIMITS) == (Status.MEMORY_LIMIT_EXCEEDED, None)

    def test_unreadable_oom_counter_is_not_mle_by_itself(self) -> None:
        assert run_status(raw(oom_kills=None), LIMITS) == (Status.ACCEPTED, None)

    def test_sigkill_near_the_memory_limit_is_mle(self) -> None:
        near = int(LIMIT_KB * OOM_SLACK) + 1
        status = run_status(
            raw(signal=signals.SIGKILL, exit_code=None, memory_kb=near, oom_kills=None), LIMITS
        )
        assert status == (Status.MEMORY_LIMIT_EXCEEDED, "SIGKILL")

    def test_sigkill_far_below_the_memory_limit_is_runtime_error(self) -> None:
        far = int(LIMIT_KB * OOM_SLACK) - 100
        status = run_status(raw(signal=signals.SIGKILL, exit_code=None, memory_kb=far), LIMITS)
        assert status == (Status.RUNTIME_ERROR, "SIGKILL")

    def test_other_signal_near_the_limit_is_runtime_error(self) -> None:
        status = run_status(
            raw(signal=signals.SIGSEGV, exit_code=None, memory_kb=LIMIT_KB - 1), LIMITS
        )
        assert status == (Status.RUNTIME_ERROR, "SIGSEGV")

    def test_peak_memory_over_the_limit_is_mle(self) -> None:
        assert run_status(raw(memory_kb=LIMIT_KB + 1), LIMITS) == (
            Status.MEMORY_LIMIT_EXCEEDED,
            None,
        )
        assert run_status(raw(memory_kb=LIMIT_KB), LIMITS) == (Status.ACCEPTED, None)

    @pytest.mark.parametrize(
        ("number", "name"),
        [
            (signals.SIGSEGV, "SIGSEGV"),
            (signals.SIGFPE, "SIGFPE"),
            (signals.SIGABRT, "SIGABRT"),
            (signals.SIGXFSZ, "SIGXFSZ"),
            (signals.SIGTERM, "SIGTERM"),
        ],
    )
    def test_signal_is_runtime_error_with_its_name(self, number: int, name: str) -> None:
        assert run_status(raw(signal=number, exit_code=None), LIMITS) == (
            Status.RUNTIME_ERROR,
            name,
        )

    @pytest.mark.parametrize("code", [1, 2, 127, 255])
    def test_non_zero_exit_is_runtime_error(self, code: int) -> None:
        assert run_status(raw(exit_code=code), LIMITS) == (Status.RUNTIME_ERROR, None)

    def test_clean_exit_is_accepted(self) -> None:
        assert run_status(raw(), LIMITS) == (Status.ACCEPTED, None)


JVM_OOM = ("java\\.lang\\.OutOfMemoryError: (Java heap space|GC overhead limit exceeded)",)
JVM_HEAP_FULL = b'Exception in thread "main" java.lang.OutOfMemoryError: Java heap space\n'


class TestHeapExhausted:
    """A managed runtime's own out-of-memory error, named by the registry, is MLE."""

    def test_a_failed_run_with_the_runtimes_oom_error_is_mle(self) -> None:
        failed = raw(stderr=JVM_HEAP_FULL, exit_code=1)
        assert run_status(failed, LIMITS, JVM_OOM) == (Status.MEMORY_LIMIT_EXCEEDED, None)
        assert heap_exhausted(JVM_HEAP_FULL, JVM_OOM)

    def test_a_runtime_aborting_on_its_heap_limit_keeps_its_signal(self) -> None:
        node = (
            b"FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory\n"
        )
        aborted = raw(stderr=node, signal=signals.SIGABRT, exit_code=None)
        rule = ("JavaScript heap out of memory",)
        assert run_status(aborted, LIMITS, rule) == (Status.MEMORY_LIMIT_EXCEEDED, "SIGABRT")

    def test_without_the_rule_it_stays_a_runtime_error(self) -> None:
        failed = raw(stderr=JVM_HEAP_FULL, exit_code=1)
        assert run_status(failed, LIMITS) == (Status.RUNTIME_ERROR, None)

    def test_a_successful_run_is_not_judged_by_its_stderr(self) -> None:
        assert run_status(raw(stderr=JVM_HEAP_FULL), LIMITS, JVM_OOM) == (Status.ACCEPTED, None)

    def test_other_errors_and_other_oom_kinds_stay_runtime_errors(self) -> None:
        threads = b"java.lang.OutOfMemoryError: unable to create native thread\n"
        for stderr in (b"java.lang.RuntimeException: boom\n", threads, b""):
            failed = raw(stderr=stderr, exit_code=1)
            assert run_status(failed, LIMITS, JVM_OOM) == (Status.RUNTIME_ERROR, None)

    def test_tle_still_wins(self) -> None:
        late = raw(stderr=JVM_HEAP_FULL, exit_code=1, timed_out=True)
        assert run_status(late, LIMITS, JVM_OOM)[0] is Status.TIME_LIMIT_EXCEEDED

    def test_undecodable_stderr_is_searched_as_text(self) -> None:
        assert heap_exhausted(b"\xff\xfe" + JVM_HEAP_FULL, JVM_OOM)
        assert not heap_exhausted(b"\xff\xfe", JVM_OOM)

    def test_run_result_passes_the_rule_on(self) -> None:
        result = run_result(
            raw(stderr=JVM_HEAP_FULL, exit_code=1),
            LIMITS,
            test_case_id=None,
            expected_output="x\n",
            compare=TW,
            keep_bytes=1024,
            oom_stderr=JVM_OOM,
        )
        assert result.status is Status.MEMORY_LIMIT_EXCEEDED
        assert result.exit_code == 1 and result.stderr == JVM_HEAP_FULL.decode()


# ----------------------------------------------------------------------------- run_result


def result_of(run: RawRun, expected: str | None = None, **kwargs: Any) -> Any:
    options: dict[str, Any] = {
        "test_case_id": "t1",
        "expected_output": expected,
        "compare": TW,
        "keep_bytes": 1024,
    }
    options.update(kwargs)
    return run_result(run, LIMITS, **options)


class TestRunResult:
    def test_accepted_without_expected_output(self) -> None:
        result = result_of(
            raw(b"hi\n", b"warn", cpu_time_s=0.1234567, wall_time_s=0.2345678, memory_kb=4321)
        )
        assert result.to_dict() == {
            "test_case_id": "t1",
            "status": "accepted",
            "stdout": "hi\n",
            "stderr": "warn",
            "stdout_truncated": False,
            "stderr_truncated": False,
            "exit_code": 0,
            "signal": None,
            "cpu_time_s": 0.123457,
            "wall_time_s": 0.234568,
            "memory_kb": 4321,
            "stdout_bytes": 3,
            "stderr_bytes": 4,
        }

    def test_matching_expected_output_is_accepted(self) -> None:
        assert result_of(raw(b"3  \n\n"), expected="3").status is Status.ACCEPTED

    def test_mismatch_is_wrong_answer(self) -> None:
        result = result_of(raw(b"4\n"), expected="3\n")
        assert result.status is Status.WRONG_ANSWER
        assert result.stdout == "4\n"
        assert result.exit_code == 0

    def test_exact_mode_is_strict(self) -> None:
        assert result_of(raw(b"3\n"), expected="3", compare=EXACT).status is Status.WRONG_ANSWER
        assert result_of(raw(b"3"), expected="3", compare=EXACT).status is Status.ACCEPTED

    def test_comparison_uses_the_whole_stdout_not_the_kept_part(self) -> None:
        out = b"x" * 100
        assert result_of(raw(out), expected="x" * 100, keep_bytes=10).status is Status.ACCEPTED
        wrong = result_of(raw(out + b"y"), expected="x" * 100, keep_bytes=10)
        assert wrong.status is Status.WRONG_ANSWER
        assert wrong.stdout == "x" * 10
        assert wrong.stdout_truncated is True

    def test_failed_run_is_never_downgraded_to_wrong_answer(self) -> None:
        result = result_of(raw(b"", exit_code=1), expected="3\n")
        assert result.status is Status.RUNTIME_ERROR
        tle = result_of(raw(b"3\n", timed_out=True), expected="3\n")
        assert tle.status is Status.TIME_LIMIT_EXCEEDED

    def test_truncation_flags_from_kept_bytes(self) -> None:
        result = result_of(raw(b"a" * 11, b"b" * 10), keep_bytes=10)
        assert (result.stdout, result.stdout_truncated) == ("a" * 10, True)
        assert (result.stderr, result.stderr_truncated) == ("b" * 10, False)

    @pytest.mark.parametrize(("stream", "out_cut", "err_cut"), [(1, True, False), (2, False, True)])
    def test_truncation_flags_from_the_helper_overflow(
        self, stream: int, out_cut: bool, err_cut: bool
    ) -> None:
        result = result_of(raw(b"a", b"b", output_exceeded=True, overflow_stream=stream))
        assert result.status is Status.OUTPUT_LIMIT_EXCEEDED
        assert (result.stdout_truncated, result.stderr_truncated) == (out_cut, err_cut)

    def test_overflow_stream_ignored_without_output_exceeded(self) -> None:
        result = result_of(raw(b"a", b"b", overflow_stream=1))
        assert (result.stdout_truncated, result.stderr_truncated) == (False, False)

    def test_signal_and_exit_code(self) -> None:
        result = result_of(raw(signal=signals.SIGSEGV, exit_code=None))
        assert (result.status, result.signal, result.exit_code) == (
            Status.RUNTIME_ERROR,
            "SIGSEGV",
            None,
        )

    def test_no_report_has_no_figures_and_explains_in_stderr(self) -> None:
        result = result_of(no_report("helper vanished", b"partial", b"trace"))
        assert result.status is Status.RUNTIME_ERROR
        assert result.stdout == "partial"
        assert result.stderr == "trace\n[streamworker] helper vanished"
        assert (result.exit_code, result.cpu_time_s, result.wall_time_s, result.memory_kb) == (
            None,
            None,
            None,
            None,
        )
        assert result.signal is None

    def test_no_report_with_empty_stderr(self) -> None:
        result = result_of(no_report("helper vanished"))
        assert result.stderr == "[streamworker] helper vanished"

    def test_invalid_utf8_output_is_replaced(self) -> None:
        result = result_of(raw(b"\xff\xfeok", b"\xc3"))
        assert result.stdout == "\ufffd\ufffdok"
        assert result.stderr == "\ufffd"

    def test_single_run_has_no_test_case_id(self) -> None:
        assert result_of(raw(), test_case_id=None).test_case_id is None


# ------------------------------------------------------------------------ status_for_error


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (InvalidEvent("is required", field="language"), Status.INVALID_SUBMISSION),
        (UnknownLanguage("unknown language 'cobol'"), Status.INVALID_SUBMISSION),
        (DockerUnavailable("down"), Status.INTERNAL_ERROR),
        (ImageMissing("no image"), Status.INTERNAL_ERROR),
        (ContainerCreateFailed("nope"), Status.INTERNAL_ERROR),
        (LimitNotApplied("dropped"), Status.INTERNAL_ERROR),
        (HelperProtocolError("no report"), Status.INTERNAL_ERROR),
        (ConfigError("KEY", "bad"), Status.INTERNAL_ERROR),
        (RuntimeError("boom"), Status.INTERNAL_ERROR),
        (OSError(5, "I/O error"), Status.INTERNAL_ERROR),
    ],
)
def test_status_for_error(exc: BaseException, status: Status) -> None:
    assert status_for_error(exc)[0] is status


def test_status_for_error_messages() -> None:
    assert status_for_error(InvalidEvent("is required", field="language")) == (
        Status.INVALID_SUBMISSION,
        "language: is required",
    )
    assert status_for_error(DockerUnavailable("socket gone")) == (
        Status.INTERNAL_ERROR,
        "docker.unavailable: socket gone",
    )
    assert status_for_error(RuntimeError("boom")) == (
        Status.INTERNAL_ERROR,
        "unexpected RuntimeError: boom",
    )
