"""The v1 event contract: frozen, typed data with `decode`/`encode` and no I/O.

Every decode failure becomes one `InvalidEvent` naming the field at fault.
See `../shared/CONTRACT.md`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any

from streamworker.errors import InvalidEvent
from streamworker.settings import LIMIT_NAMES, RunLimits

SCHEMA_VERSION = 1
SUBMISSION_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
INTEGER_LIMITS = frozenset({"memory_mb", "processes", "output_kb", "file_size_kb"})
MAX_METADATA_BYTES = 4096


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


@dataclass(frozen=True)
class SourceFile:
    path: str
    content: bytes


@dataclass(frozen=True)
class TestCase:
    id: str
    stdin: str
    expected_output: str | None


@dataclass(frozen=True)
class Submission:
    """A validated submission event; limits are only those the submitter set."""

    submission_id: str
    language: str
    files: tuple[SourceFile, ...]
    entrypoint: str | None
    stdin: str
    args: tuple[str, ...]
    expected_output: str | None
    test_cases: tuple[TestCase, ...]
    limits: Mapping[str, float]
    compare: Compare
    metadata: Mapping[str, Any]
    schema_version: int = SCHEMA_VERSION
    from_source: bool = False


def _expect(cond: bool, fld: str, message: str, sid: str | None) -> None:
    if not cond:
        raise InvalidEvent(message, field=fld, submission_id=sid)


def _relative_path(raw: object, fld: str, sid: str | None) -> str:
    _expect(isinstance(raw, str) and raw != "", fld, "must be a non-empty string", sid)
    assert isinstance(raw, str)
    _expect("\x00" not in raw and "\\" not in raw, fld, "must not contain NUL or '\\'", sid)
    path = PurePosixPath(raw)
    _expect(not path.is_absolute(), fld, "must be a relative path", sid)
    _expect(".." not in path.parts, fld, "must not contain '..'", sid)
    _expect(len(raw) <= 255, fld, "is longer than 255 characters", sid)
    normalised = str(path)
    _expect(normalised not in ("", "."), fld, "must name a file", sid)
    return normalised


def _decode_files(raw: object, sid: str | None) -> tuple[SourceFile, ...]:
    _expect(isinstance(raw, list) and len(raw) > 0, "files", "must be a non-empty list", sid)
    assert isinstance(raw, list)
    _expect(len(raw) <= 64, "files", "has more than 64 entries", sid)
    out: list[SourceFile] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        fld = f"files[{i}]"
        _expect(isinstance(item, dict), fld, "must be an object", sid)
        path = _relative_path(item.get("path"), f"{fld}.path", sid)
        _expect(path not in seen, f"{fld}.path", f"duplicate path {path!r}", sid)
        seen.add(path)
        content = item.get("content")
        _expect(isinstance(content, str), f"{fld}.content", "must be a string", sid)
        encoding = item.get("encoding", "utf-8")
        if encoding == "utf-8":
            data = content.encode("utf-8")
        elif encoding == "base64":
            try:
                data = base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise InvalidEvent(
                    "is not valid base64", field=f"{fld}.content", submission_id=sid
                ) from exc
        else:
            raise InvalidEvent(
                f"must be 'utf-8' or 'base64', got {encoding!r}",
                field=f"{fld}.encoding",
                submission_id=sid,
            )
        out.append(SourceFile(path, data))
    return tuple(out)


def _decode_test_cases(raw: object, sid: str | None) -> tuple[TestCase, ...]:
    _expect(isinstance(raw, list), "test_cases", "must be a list", sid)
    assert isinstance(raw, list)
    cases: list[TestCase] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        fld = f"test_cases[{i}]"
        _expect(isinstance(item, dict), fld, "must be an object", sid)
        case_id = item.get("id", str(i + 1))
        if isinstance(case_id, int) and not isinstance(case_id, bool):
            case_id = str(case_id)
        _expect(isinstance(case_id, str) and case_id != "", f"{fld}.id", "must be a string", sid)
        _expect(case_id not in seen, f"{fld}.id", f"duplicate id {case_id!r}", sid)
        seen.add(case_id)
        stdin = item.get("stdin", "")
        _expect(isinstance(stdin, str), f"{fld}.stdin", "must be a string", sid)
        expected = item.get("expected_output")
        _expect(
            expected is None or isinstance(expected, str),
            f"{fld}.expected_output",
            "must be a string",
            sid,
        )
        cases.append(TestCase(case_id, stdin, expected))
    return tuple(cases)


def _decode_limits(raw: object, sid: str | None) -> dict[str, float]:
    _expect(isinstance(raw, dict), "limits", "must be an object", sid)
    assert isinstance(raw, dict)
    out: dict[str, float] = {}
    for key, value in raw.items():
        _expect(key in LIMIT_NAMES, f"limits.{key}", f"unknown limit; known: {LIMIT_NAMES}", sid)
        _expect(
            isinstance(value, int | float) and not isinstance(value, bool) and value > 0,
            f"limits.{key}",
            "must be a positive number",
            sid,
        )
        _expect(abs(value) < 1e15, f"limits.{key}", "is out of range", sid)
        if key in INTEGER_LIMITS:
            _expect(float(value).is_integer(), f"limits.{key}", "must be a whole number", sid)
            value = int(value)
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError(f"number {literal[:20]} is out of range")
    return value


_JSON_OPTIONS: dict[str, Any] = {"parse_constant": _reject_constant, "parse_float": _finite_float}


def decode_submission(data: bytes) -> Submission:
    """Parse and validate a submission event; raises `InvalidEvent` naming the field."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent(f"value is not UTF-8: {exc}") from exc
    try:
        obj = json.loads(text, **_JSON_OPTIONS)
    except (json.JSONDecodeError, ValueError) as exc:
        raise InvalidEvent(f"value is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise InvalidEvent("value must be a JSON object")
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidEvent(
            "value contains a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text",
            submission_id=salvage_submission_id(data),
        ) from exc
    raw_sid = obj.get("submission_id")
    sid = raw_sid if isinstance(raw_sid, str) and SUBMISSION_ID_RE.fullmatch(raw_sid) else None
    _expect(raw_sid is not None, "submission_id", "is required", None)
    _expect(sid is not None, "submission_id", "must be 1-128 chars of [A-Za-z0-9._:-]", None)
    assert sid is not None
    version = obj.get("schema_version", SCHEMA_VERSION)
    _expect(
        type(version) is int and version == SCHEMA_VERSION,
        "schema_version",
        f"unsupported: {version!r}",
        sid,
    )
    language = obj.get("language")
    _expect(isinstance(language, str) and language != "", "language", "is required", sid)
    assert isinstance(language, str)

    has_source, has_files = "source" in obj, "files" in obj
    _expect(has_source or has_files, "source", "one of 'source' or 'files' is required", sid)
    _expect(not (has_source and has_files), "files", "give 'source' or 'files', not both", sid)
    if has_source:
        source = obj["source"]
        _expect(isinstance(source, str), "source", "must be a string", sid)
        files: tuple[SourceFile, ...] = (SourceFile("", source.encode("utf-8")),)
    else:
        files = _decode_files(obj["files"], sid)

    entrypoint = obj.get("entrypoint")
    if entrypoint is not None:
        entrypoint = _relative_path(entrypoint, "entrypoint", sid)
        _expect(
            has_source or entrypoint in {f.path for f in files},
            "entrypoint",
            "must name one of 'files'",
            sid,
        )
    stdin = obj.get("stdin", "")
    _expect(isinstance(stdin, str), "stdin", "must be a string", sid)
    args = obj.get("args", [])
    _expect(
        isinstance(args, list) and all(isinstance(a, str) and "\x00" not in a for a in args),
        "args",
        "must be a list of strings",
        sid,
    )
    expected = obj.get("expected_output")
    _expect(
        expected is None or isinstance(expected, str), "expected_output", "must be a string", sid
    )
    test_cases = _decode_test_cases(obj["test_cases"], sid) if "test_cases" in obj else ()
    limits = _decode_limits(obj["limits"], sid) if "limits" in obj else {}
    compare_raw = obj.get("compare", Compare.TRAILING_WHITESPACE.value)
    _expect(
        isinstance(compare_raw, str) and compare_raw in {c.value for c in Compare},
        "compare",
        f"must be one of {[c.value for c in Compare]}",
        sid,
    )
    metadata = obj.get("metadata", {})
    _expect(isinstance(metadata, dict), "metadata", "must be a JSON object", sid)
    _expect(
        len(json.dumps(metadata).encode()) <= MAX_METADATA_BYTES,
        "metadata",
        f"is larger than {MAX_METADATA_BYTES} bytes",
        sid,
    )
    return Submission(
        submission_id=sid,
        language=language,
        files=files,
        entrypoint=entrypoint,
        stdin=stdin,
        args=tuple(args),
        expected_output=expected,
        test_cases=test_cases,
        limits=limits,
        compare=Compare(compare_raw),
        metadata=metadata,
        from_source=has_source,
    )


def salvage_submission_id(data: bytes) -> str | None:
    """Best effort: the submission id of an event that failed validation, if readable."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if isinstance(obj, dict):
        sid = obj.get("submission_id")
        if isinstance(sid, str) and SUBMISSION_ID_RE.fullmatch(sid):
            return sid
    return None


def salvage_metadata(data: bytes) -> dict[str, Any]:
    """Best effort: the metadata of an invalid event, echoed only when it is valid itself."""
    try:
        obj = json.loads(data.decode("utf-8"), **_JSON_OPTIONS)
    except (UnicodeDecodeError, ValueError):
        return {}
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    if isinstance(meta, dict):
        try:
            size = len(json.dumps(meta, ensure_ascii=False).encode("utf-8"))
        except UnicodeEncodeError:
            return {}
        if size <= MAX_METADATA_BYTES:
            return meta
    return {}


def resolve_limits(
    requested: Mapping[str, float],
    defaults: RunLimits,
    maxima: RunLimits,
    floor: Mapping[str, float] | None = None,
) -> RunLimits:
    """Submission limits over (language floor over) server defaults, checked against maxima."""
    values: dict[str, float] = dict(defaults.as_dict())
    for key, value in (floor or {}).items():
        values[key] = max(values[key], value)
    for key, value in requested.items():
        maximum = getattr(maxima, key)
        if value > maximum:
            raise InvalidEvent(
                f"{value} is above the server maximum {maximum}", field=f"limits.{key}"
            )
        values[key] = value
    return RunLimits(
        cpu_time_s=float(values["cpu_time_s"]),
        wall_time_s=float(values["wall_time_s"]),
        memory_mb=int(values["memory_mb"]),
        processes=int(values["processes"]),
        output_kb=int(values["output_kb"]),
        file_size_kb=int(values["file_size_kb"]),
    )


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime | None) -> str | None:
    """ISO 8601 UTC with a `Z` suffix."""
    if ts is None:
        return None
    return ts.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class RunResult:
    """One run object of a result event."""

    test_case_id: str | None
    status: Status
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    exit_code: int | None = None
    signal: str | None = None
    cpu_time_s: float | None = None
    wall_time_s: float | None = None
    memory_kb: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "test_case_id": self.test_case_id,
            "status": self.status.value,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "stdout_truncated": self.stdout_truncated,
            "stderr_truncated": self.stderr_truncated,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "cpu_time_s": self.cpu_time_s,
            "wall_time_s": self.wall_time_s,
            "memory_kb": self.memory_kb,
        }


@dataclass(frozen=True)
class Runtime:
    image: str | None = None
    image_id: str | None = None


@dataclass(frozen=True)
class ResultEvent:
    """A result event; `status` is the overall verdict."""

    submission_id: str
    status: Status
    language: str | None
    worker_id: str
    received_at: datetime
    started_at: datetime | None
    finished_at: datetime
    message: str | None = None
    runtime: Runtime = field(default_factory=Runtime)
    compile: RunResult | None = None
    runs: tuple[RunResult, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    attempt: int = 1
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    schema_version: int = SCHEMA_VERSION

    @property
    def judge0_status_id(self) -> int:
        signal = None
        if self.status is Status.RUNTIME_ERROR:
            culprit = next((r for r in self.runs if r.status is self.status), None)
            signal = culprit.signal if culprit else None
        return judge0_status_id(self.status, signal)

    def to_dict(self) -> dict[str, Any]:
        return {
            "submission_id": self.submission_id,
            "schema_version": self.schema_version,
            "event_id": self.event_id,
            "status": self.status.value,
            "judge0_status_id": self.judge0_status_id,
            "message": self.message,
            "language": self.language,
            "runtime": {"image": self.runtime.image, "image_id": self.runtime.image_id},
            "compile": self.compile.to_dict() if self.compile else None,
            "runs": [r.to_dict() for r in self.runs],
            "metadata": dict(self.metadata),
            "worker_id": self.worker_id,
            "attempt": self.attempt,
            "received_at": iso(self.received_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
        }

    def encode(self) -> bytes:
        return json.dumps(
            self.to_dict(), ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode()


def overall_status(runs: tuple[RunResult, ...] | list[RunResult]) -> Status:
    """The first non-accepted run's status, else accepted."""
    for run in runs:
        if run.status is not Status.ACCEPTED:
            return run.status
    return Status.ACCEPTED


class DockerStatus(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


@dataclass(frozen=True)
class DockerHealthEvent:
    """A Docker-health event (`streamworker.docker-health`, key = worker id)."""

    worker_id: str
    status: DockerStatus
    reason: str | None
    reachable: bool
    connection: str
    version: str | None
    api_version: str | None
    ping_ms: float | None
    containers_running: int | None
    missing_images: tuple[str, ...]
    observed_at: datetime
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "worker_id": self.worker_id,
            "schema_version": self.schema_version,
            "status": self.status.value,
            "reason": self.reason,
            "docker": {
                "reachable": self.reachable,
                "connection": self.connection,
                "version": self.version,
                "api_version": self.api_version,
                "ping_ms": self.ping_ms,
                "containers_running": self.containers_running,
                "missing_images": list(self.missing_images),
            },
            "observed_at": iso(self.observed_at),
        }

    def encode(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False).encode()
