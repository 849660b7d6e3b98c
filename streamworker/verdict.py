"""Deciding verdicts from bytes read as data. Pure; no I/O.

Also the one place where our typed errors map to contract statuses.
"""

from __future__ import annotations

import base64
import re
import signal as signals
from collections.abc import Sequence
from dataclasses import dataclass

from streamworker.contract import Compare, RunResult, Status
from streamworker.errors import InvalidEvent, StreamworkerError, UnknownLanguage
from streamworker.limits import RunLimits
from streamworker.sandbox.failure import FailureKind
from streamworker.sandbox.protocol import RawRun

OOM_SLACK = 0.97
"""A SIGKILL at >= 97 % of the memory limit is the OOM killer even if its counter is unreadable."""

FAILURE_STATUS: dict[FailureKind | None, Status] = {
    FailureKind.WORKER_TIMEOUT: Status.TIME_LIMIT_EXCEEDED,
    FailureKind.OUTPUT_FLOOD: Status.OUTPUT_LIMIT_EXCEEDED,
    FailureKind.HELPER_ERROR: Status.INTERNAL_ERROR,
    FailureKind.OOM_KILLED: Status.MEMORY_LIMIT_EXCEEDED,
}
"""The status of a run without a report, by why it has none."""


def signal_name(number: int | None) -> str | None:
    if not number:
        return None
    try:
        return signals.Signals(number).name
    except ValueError:
        return f"SIG{number}"


def outputs_match(actual: str, expected: str, mode: Compare) -> bool:
    """Compare program output with the expected output outside the sandbox."""
    if mode is Compare.EXACT:
        return actual == expected
    return _normalise(actual) == _normalise(expected)


def _normalise(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and lines[-1] == "":
        lines.pop()
    return lines


@dataclass(frozen=True)
class KeptOutput:
    """What a result keeps of one output stream."""

    text: str
    """UTF-8 decoded with replacement: what v1 consumers read."""
    b64: str | None
    """Base64 of exactly the kept bytes, only when `text` cannot carry them."""
    cut: bool


def kept_bytes(data: bytes, keep_bytes: int) -> bytes:
    """At most `keep_bytes` of `data`, not ending inside a UTF-8 sequence of valid text
    (a cut must not turn valid text into bytes that need base64)."""
    if len(data) <= keep_bytes:
        return data
    kept = data[:keep_bytes]
    try:
        kept.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data" and exc.start >= len(kept) - 3:
            return kept[: exc.start]
    return kept


def decode_output(data: bytes, keep_bytes: int) -> KeptOutput:
    """The kept text of one stream, base64 beside it when the bytes are not UTF-8."""
    kept = kept_bytes(data, keep_bytes)
    try:
        return KeptOutput(kept.decode("utf-8"), None, len(kept) < len(data))
    except UnicodeDecodeError:
        text = kept.decode("utf-8", "replace")
        return KeptOutput(text, base64.b64encode(kept).decode("ascii"), len(kept) < len(data))


def heap_exhausted(stderr: bytes, oom_stderr: Sequence[str]) -> bool:
    """Whether a failed run's stderr shows its runtime's own out-of-memory error.

    A managed runtime (a JVM, Node, Mono) whose heap limit follows the submission's
    memory limit fails with an error of its own before the kernel's OOM killer acts; the
    registry names that error (`Language.oom_stderr`). A program could print it itself:
    it then only gets the verdict it asked for.
    """
    if not oom_stderr:
        return False
    text = stderr.decode("utf-8", "replace")
    return any(re.search(pattern, text) for pattern in oom_stderr)


def run_status(
    raw: RawRun, limits: RunLimits, oom_stderr: Sequence[str] = ()
) -> tuple[Status, str | None]:
    """The status of one run before output comparison, and a signal name if any;
    `oom_stderr` is the language's heap-exhaustion rule (see `heap_exhausted`)."""
    report = raw.report
    if report is None:
        # No figures to judge by: the typed reason decides (unknown: the program's fault).
        return FAILURE_STATUS.get(raw.kind, Status.RUNTIME_ERROR), None
    if report.runner_lost:
        # The program killed or stopped its runner: only the serving helper's own
        # findings are trustworthy (its deadline, the cgroup's OOM count), not the figures.
        if report.timed_out:
            return Status.TIME_LIMIT_EXCEEDED, None
        if report.oom_kills:
            return Status.MEMORY_LIMIT_EXCEEDED, None
        return Status.RUNTIME_ERROR, None
    sig = signal_name(report.signal)
    if report.exec_errno:
        return Status.INTERNAL_ERROR, None
    if report.output_exceeded:
        return Status.OUTPUT_LIMIT_EXCEEDED, sig
    if report.timed_out or sig == "SIGXCPU" or report.cpu_time_s > limits.cpu_time_s:
        return Status.TIME_LIMIT_EXCEEDED, sig
    over_memory = report.memory_kb > limits.memory_mb * 1024
    oom_killed = bool(report.oom_kills) or (
        sig == "SIGKILL" and report.memory_kb >= limits.memory_mb * 1024 * OOM_SLACK
    )
    if oom_killed or over_memory:
        return Status.MEMORY_LIMIT_EXCEEDED, sig
    if sig is not None or report.exit_code != 0:
        if heap_exhausted(raw.stderr, oom_stderr):
            return Status.MEMORY_LIMIT_EXCEEDED, sig
        return Status.RUNTIME_ERROR, sig
    return Status.ACCEPTED, None


def run_result(
    raw: RawRun,
    limits: RunLimits,
    *,
    test_case_id: str | None,
    expected_output: str | None,
    compare: Compare,
    keep_bytes: int,
    oom_stderr: Sequence[str] = (),
) -> RunResult:
    """A contract run object: status, outputs (cut to `keep_bytes` each) and figures."""
    status, sig = run_status(raw, limits, oom_stderr)
    report = raw.report
    full_stdout = raw.stdout.decode("utf-8", "replace")
    if (
        status is Status.ACCEPTED
        and expected_output is not None
        and not outputs_match(full_stdout, expected_output, compare)
    ):
        status = Status.WRONG_ANSWER
    stdout = decode_output(raw.stdout, keep_bytes)
    stderr = decode_output(raw.stderr, keep_bytes)
    stderr_text = stderr.text
    if report is None and raw.failure:
        stderr_text = (stderr_text + "\n" if stderr_text else "") + f"[streamworker] {raw.failure}"
    overflow = report.overflow_stream if report and report.output_exceeded else 0
    return RunResult(
        test_case_id=test_case_id,
        status=status,
        stdout=stdout.text,
        stderr=stderr_text,
        stdout_truncated=stdout.cut or overflow == 1,
        stderr_truncated=stderr.cut or overflow == 2,
        stdout_bytes=len(raw.stdout),
        stderr_bytes=len(raw.stderr),
        stdout_b64=stdout.b64,
        stderr_b64=stderr.b64,
        exit_code=report.exit_code if report else None,
        signal=sig,
        cpu_time_s=round(report.cpu_time_s, 6) if report else None,
        wall_time_s=round(report.wall_time_s, 6) if report else None,
        memory_kb=report.memory_kb if report else None,
    )


def status_for_error(exc: BaseException) -> tuple[Status, str]:
    """The single mapping from an exception to a contract status and message."""
    if isinstance(exc, InvalidEvent | UnknownLanguage):
        return Status.INVALID_SUBMISSION, str(exc)
    if isinstance(exc, StreamworkerError):
        return Status.INTERNAL_ERROR, f"{exc.code}: {exc.message}"
    return Status.INTERNAL_ERROR, f"unexpected {type(exc).__name__}: {exc}"
