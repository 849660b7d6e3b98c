"""Statuses, comparison modes and the schema version every event carries.

The bottom of the contract: what both the decode side and the result side name, and
Judge0's numeric ids for the statuses (a result event carries both).
"""

from __future__ import annotations

from enum import StrEnum

SCHEMA_VERSION = 1


class Status(StrEnum):
    ACCEPTED = "accepted"
    WRONG_ANSWER = "wrong_answer"
    TIME_LIMIT_EXCEEDED = "time_limit_exceeded"
    COMPILATION_ERROR = "compilation_error"
    RUNTIME_ERROR = "runtime_error"
    MEMORY_LIMIT_EXCEEDED = "memory_limit_exceeded"
    OUTPUT_LIMIT_EXCEEDED = "output_limit_exceeded"
    INTERNAL_ERROR = "internal_error"
    INVALID_SUBMISSION = "invalid_submission"


class Compare(StrEnum):
    TRAILING_WHITESPACE = "trailing_whitespace"
    EXACT = "exact"


_SIGNAL_JUDGE0 = {"SIGSEGV": 7, "SIGXFSZ": 8, "SIGFPE": 9, "SIGABRT": 10}
_STATUS_JUDGE0 = {
    Status.ACCEPTED: 3,
    Status.WRONG_ANSWER: 4,
    Status.TIME_LIMIT_EXCEEDED: 5,
    Status.COMPILATION_ERROR: 6,
    Status.MEMORY_LIMIT_EXCEEDED: 12,
    Status.OUTPUT_LIMIT_EXCEEDED: 12,
    Status.INTERNAL_ERROR: 13,
    Status.INVALID_SUBMISSION: 13,
}


def judge0_status_id(status: Status, signal: str | None = None) -> int:
    """Judge0's numeric status for a contract status (runtime errors split by signal)."""
    if status is Status.RUNTIME_ERROR:
        if signal is None:
            return 11
        return _SIGNAL_JUDGE0.get(signal, 12)
    return _STATUS_JUDGE0[status]
