"""Deciding verdicts from bytes read as data. Pure; no I/O.

Also the one place where our typed errors map to contract statuses.
"""

from __future__ import annotations

import signal as signals

from streamworker.contract import Compare, RunResult, Status
from streamworker.errors import InvalidEvent, StreamworkerError, UnknownLanguage
from streamworker.sandbox.protocol import RawRun
from streamworker.settings import RunLimits

OOM_SLACK = 0.97
"""A SIGKILL at >= 97 % of the memory limit is the OOM killer even if its counter is unreadable."""


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


def decode_output(data: bytes, keep_bytes: int) -> tuple[str, bool]:
    """UTF-8 (with replacement) text of at most `keep_bytes`, and whether it was cut."""
    cut = len(data) > keep_bytes
    return data[:keep_bytes].decode("utf-8", "replace"), cut


def run_status(raw: RawRun, limits: RunLimits) -> tuple[Status, str | None]:
    """The status of one run before output comparison, and a signal name if any."""
    report = raw.report
    if report is None:
        if raw.failure and "did not finish in time" in raw.failure:
            return Status.TIME_LIMIT_EXCEEDED, None
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
) -> RunResult:
    """A contract run object: status, outputs (cut to `keep_bytes` each) and figures."""
    status, sig = run_status(raw, limits)
    report = raw.report
    full_stdout = raw.stdout.decode("utf-8", "replace")
    if (
        status is Status.ACCEPTED
        and expected_output is not None
        and not outputs_match(full_stdout, expected_output, compare)
    ):
        status = Status.WRONG_ANSWER
    stdout, stdout_cut = decode_output(raw.stdout, keep_bytes)
    stderr, stderr_cut = decode_output(raw.stderr, keep_bytes)
    if report is None and raw.failure:
        stderr = (stderr + "\n" if stderr else "") + f"[streamworker] {raw.failure}"
    overflow = report.overflow_stream if report and report.output_exceeded else 0
    return RunResult(
        test_case_id=test_case_id,
        status=status,
        stdout=stdout,
        stderr=stderr,
        stdout_truncated=stdout_cut or overflow == 1,
        stderr_truncated=stderr_cut or overflow == 2,
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
