"""The v1 event contract: frozen, typed data with `decode`/`encode` and no I/O.

Every decode failure becomes one `InvalidEvent` naming the field at fault, and every
size, count and depth of an incoming event is bounded by `streamworker.budgets`. The
contract is documented in `docs/contract.md`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any

from streamworker import jsonbound
from streamworker.budgets import BUDGETS, DecodeBudgets
from streamworker.errors import InvalidEvent
from streamworker.settings import LIMIT_NAMES, RunLimits

SCHEMA_VERSION = 1
SUBMISSION_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
INTEGER_LIMITS = frozenset({"memory_mb", "processes", "output_kb", "file_size_kb"})
MAX_METADATA_BYTES = BUDGETS.max_metadata_bytes
"""Kept for importers; every budget lives in `streamworker.budgets`."""


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
    """One test case. `stdin_bytes` is exactly what the program reads; `stdin` is its
    text for v1 consumers (decoded with replacement when it came as `stdin_b64`)."""

    id: str
    stdin: str
    stdin_bytes: bytes
    expected_output: str | None


@dataclass(frozen=True)
class Submission:
    """A validated submission event; limits are only those the submitter set."""

    submission_id: str
    language: str
    files: tuple[SourceFile, ...]
    entrypoint: str | None
    stdin: str
    stdin_bytes: bytes
    """Exactly what the program reads (see `TestCase`)."""
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


def _cut(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, with an ellipsis when something was cut."""
    return text if len(text) <= limit else text[:limit] + "…"


def _echo(value: object, limit: int) -> str:
    """A user value quoted in a message, cut: a message must not grow with the event."""
    if isinstance(value, str):
        return repr(_cut(value, limit))
    if value is None or isinstance(value, bool | int | float):
        return _cut(repr(value), limit)
    return "an object" if isinstance(value, dict) else "a list"


def _over(size: int, limit: int, unit: str = "bytes") -> str:
    return f"is {size} {unit}, above the maximum {limit}"


def _utf8(text: str, limit: int, fld: str, sid: str | None) -> bytes:
    """`text` as UTF-8, refused when longer than `limit` bytes."""
    data = text.encode("utf-8")
    _expect(len(data) <= limit, fld, _over(len(data), limit), sid)
    return data


def _relative_path(raw: object, fld: str, sid: str | None, budgets: DecodeBudgets) -> str:
    _expect(isinstance(raw, str) and raw != "", fld, "must be a non-empty string", sid)
    assert isinstance(raw, str)
    _utf8(raw, budgets.max_path_bytes, fld, sid)
    _expect("\x00" not in raw and "\\" not in raw, fld, "must not contain NUL or '\\'", sid)
    path = PurePosixPath(raw)
    _expect(not path.is_absolute(), fld, "must be a relative path", sid)
    _expect(".." not in path.parts, fld, "must not contain '..'", sid)
    normalised = str(path)
    _expect(normalised not in ("", "."), fld, "must name a file", sid)
    return normalised


def _b64(raw: object, limit: int, fld: str, sid: str | None) -> bytes:
    """Strict base64 (no whitespace) of at most `limit` bytes, length checked first."""
    _expect(isinstance(raw, str), fld, "must be a base64 string", sid)
    assert isinstance(raw, str)
    _expect(len(raw) <= 4 * -(-limit // 3), fld, f"decodes to more than {limit} bytes", sid)
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidEvent("is not valid base64", field=fld, submission_id=sid) from exc
    _expect(
        len(data) <= limit, fld, f"decodes to {len(data)} bytes, above the maximum {limit}", sid
    )
    return data


def _decode_files(raw: object, sid: str | None, budgets: DecodeBudgets) -> tuple[SourceFile, ...]:
    _expect(isinstance(raw, list) and len(raw) > 0, "files", "must be a non-empty list", sid)
    assert isinstance(raw, list)
    most = budgets.max_files
    _expect(len(raw) <= most, "files", f"has more than {most} entries", sid)
    out: list[SourceFile] = []
    seen: set[str] = set()
    total = 0
    for i, item in enumerate(raw):
        fld = f"files[{i}]"
        _expect(isinstance(item, dict), fld, "must be an object", sid)
        path = _relative_path(item.get("path"), f"{fld}.path", sid, budgets)
        echo = _echo(path, budgets.max_echo_chars)
        _expect(path not in seen, f"{fld}.path", f"duplicate path {echo}", sid)
        seen.add(path)
        content = item.get("content")
        _expect(isinstance(content, str), f"{fld}.content", "must be a string", sid)
        encoding = item.get("encoding", "utf-8")
        if encoding == "utf-8":
            data = content.encode("utf-8")
        elif encoding == "base64":
            data = _b64(content, budgets.max_source_bytes, f"{fld}.content", sid)
        else:
            raise InvalidEvent(
                f"must be 'utf-8' or 'base64', got {_echo(encoding, budgets.max_echo_chars)}",
                field=f"{fld}.encoding",
                submission_id=sid,
            )
        total += len(data)
        _expect(
            total <= budgets.max_source_bytes,
            "files",
            f"are more than {budgets.max_source_bytes} bytes together",
            sid,
        )
        out.append(SourceFile(path, data))
    return tuple(out)


def _decode_stdin(
    obj: Mapping[str, Any], prefix: str, sid: str | None, budgets: DecodeBudgets
) -> tuple[str, bytes]:
    """`stdin` or `stdin_b64` (never both) as (text for v1 consumers, exact bytes)."""
    limit = budgets.max_stdin_bytes
    if "stdin_b64" in obj:
        fld = f"{prefix}stdin_b64"
        _expect("stdin" not in obj, fld, "give 'stdin' or 'stdin_b64', not both", sid)
        data = _b64(obj["stdin_b64"], limit, fld, sid)
        return data.decode("utf-8", "replace"), data
    text = obj.get("stdin", "")
    _expect(isinstance(text, str), f"{prefix}stdin", "must be a string", sid)
    return text, _utf8(text, limit, f"{prefix}stdin", sid)


def _decode_expected(raw: object, fld: str, sid: str | None, budgets: DecodeBudgets) -> str | None:
    if raw is None:
        return None
    _expect(isinstance(raw, str), fld, "must be a string", sid)
    assert isinstance(raw, str)
    _utf8(raw, budgets.max_expected_output_bytes, fld, sid)
    return raw


def _decode_args(raw: object, sid: str | None, budgets: DecodeBudgets) -> tuple[str, ...]:
    _expect(isinstance(raw, list), "args", "must be a list of strings", sid)
    assert isinstance(raw, list)
    _expect(len(raw) <= budgets.max_args, "args", _over(len(raw), budgets.max_args, "entries"), sid)
    total = 0
    for i, arg in enumerate(raw):
        fld = f"args[{i}]"
        _expect(
            isinstance(arg, str) and "\x00" not in arg, fld, "must be a string without NUL", sid
        )
        total += len(_utf8(arg, budgets.max_arg_bytes, fld, sid))
    most = budgets.max_args_total_bytes
    _expect(total <= most, "args", f"are {total} bytes together, above the maximum {most}", sid)
    return tuple(raw)


def _decode_test_cases(
    raw: object, sid: str | None, budgets: DecodeBudgets
) -> tuple[TestCase, ...]:
    _expect(isinstance(raw, list), "test_cases", "must be a list", sid)
    assert isinstance(raw, list)
    most = budgets.max_test_cases
    _expect(len(raw) <= most, "test_cases", _over(len(raw), most, "cases"), sid)
    cases: list[TestCase] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        fld = f"test_cases[{i}]"
        _expect(isinstance(item, dict), fld, "must be an object", sid)
        case_id = item.get("id", str(i + 1))
        if isinstance(case_id, int) and not isinstance(case_id, bool):
            case_id = str(case_id)
        _expect(isinstance(case_id, str) and case_id != "", f"{fld}.id", "must be a string", sid)
        id_chars = budgets.max_test_case_id_chars
        _expect(len(case_id) <= id_chars, f"{fld}.id", _over(len(case_id), id_chars, "chars"), sid)
        echo = _echo(case_id, budgets.max_echo_chars)
        _expect(case_id not in seen, f"{fld}.id", f"duplicate id {echo}", sid)
        seen.add(case_id)
        stdin, stdin_bytes = _decode_stdin(item, f"{fld}.", sid, budgets)
        expected = _decode_expected(
            item.get("expected_output"), f"{fld}.expected_output", sid, budgets
        )
        cases.append(
            TestCase(id=case_id, stdin=stdin, stdin_bytes=stdin_bytes, expected_output=expected)
        )
    return tuple(cases)


def _decode_limits(raw: object, sid: str | None, budgets: DecodeBudgets) -> dict[str, float]:
    _expect(isinstance(raw, dict), "limits", "must be an object", sid)
    assert isinstance(raw, dict)
    out: dict[str, float] = {}
    for key, value in raw.items():
        fld = f"limits.{_cut(key, budgets.max_echo_chars)}"
        _expect(key in LIMIT_NAMES, fld, f"unknown limit; known: {LIMIT_NAMES}", sid)
        _expect(
            isinstance(value, int | float) and not isinstance(value, bool) and value > 0,
            fld,
            "must be a positive number",
            sid,
        )
        _expect(abs(value) < 1e15, fld, "is out of range", sid)
        if key in INTEGER_LIMITS:
            _expect(float(value).is_integer(), fld, "must be a whole number", sid)
            value = int(value)
        out[key] = value
    return out


def _metadata_problem(meta: dict[str, Any], budgets: DecodeBudgets) -> str | None:
    """Why `meta` may not be echoed, or None. Shared by decoding and salvage, so invalid
    events echo exactly the metadata a valid one could have carried."""
    depth = jsonbound.depth_of(meta)
    if depth > budgets.max_metadata_depth:
        return f"nests {depth} levels deep, above the maximum {budgets.max_metadata_depth}"
    size = len(json.dumps(meta))  # ASCII-escaped, so characters are bytes
    if size > budgets.max_metadata_bytes:
        return _over(size, budgets.max_metadata_bytes)
    return None


def _parse_event(data: bytes, budgets: DecodeBudgets) -> dict[str, Any]:
    """The event's JSON object, parsed within the whole-event budgets."""
    size = len(data)
    if size > budgets.max_event_bytes:
        raise InvalidEvent(f"value {_over(size, budgets.max_event_bytes)}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent(f"value is not UTF-8: {exc}") from exc
    try:
        obj = jsonbound.loads(
            text,
            max_depth=budgets.max_depth,
            max_tokens=budgets.max_json_tokens,
            max_number_chars=budgets.max_number_chars,
        )
    except jsonbound.BudgetExceeded as exc:
        # Well-formed but too big: the shallow part may still name the submission.
        raise InvalidEvent(
            f"value {exc}", submission_id=salvage_submission_id(data, budgets)
        ) from exc
    except ValueError as exc:
        raise InvalidEvent(f"value is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise InvalidEvent("value must be a JSON object")
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidEvent(
            "value contains a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text",
            submission_id=salvage_submission_id(data, budgets),
        ) from exc
    return obj


def decode_submission(data: bytes, budgets: DecodeBudgets = BUDGETS) -> Submission:
    """Parse and validate a submission event; raises `InvalidEvent` naming the field.

    Nothing else escapes, whatever the bytes: every size, count and depth is checked
    against `budgets` before it can cost more than the event's own length.
    """
    obj = _parse_event(data, budgets)
    raw_sid = obj.get("submission_id")
    sid = raw_sid if isinstance(raw_sid, str) and SUBMISSION_ID_RE.fullmatch(raw_sid) else None
    _expect(raw_sid is not None, "submission_id", "is required", None)
    _expect(sid is not None, "submission_id", "must be 1-128 chars of [A-Za-z0-9._:-]", None)
    assert sid is not None
    version = obj.get("schema_version", SCHEMA_VERSION)
    _expect(
        type(version) is int and version == SCHEMA_VERSION,
        "schema_version",
        f"unsupported: {_echo(version, budgets.max_echo_chars)}",
        sid,
    )
    language = obj.get("language")
    _expect(isinstance(language, str) and language != "", "language", "is required", sid)
    assert isinstance(language, str)
    most = budgets.max_language_chars
    _expect(len(language) <= most, "language", _over(len(language), most, "chars"), sid)

    has_source, has_files = "source" in obj, "files" in obj
    _expect(has_source or has_files, "source", "one of 'source' or 'files' is required", sid)
    _expect(not (has_source and has_files), "files", "give 'source' or 'files', not both", sid)
    if has_source:
        source = obj["source"]
        _expect(isinstance(source, str), "source", "must be a string", sid)
        content = _utf8(source, budgets.max_source_bytes, "source", sid)
        files: tuple[SourceFile, ...] = (SourceFile("", content),)
    else:
        files = _decode_files(obj["files"], sid, budgets)

    entrypoint = obj.get("entrypoint")
    if entrypoint is not None:
        entrypoint = _relative_path(entrypoint, "entrypoint", sid, budgets)
        _expect(
            has_source or entrypoint in {f.path for f in files},
            "entrypoint",
            "must name one of 'files'",
            sid,
        )
    stdin, stdin_bytes = _decode_stdin(obj, "", sid, budgets)
    args = _decode_args(obj.get("args", []), sid, budgets)
    expected = _decode_expected(obj.get("expected_output"), "expected_output", sid, budgets)
    test_cases = _decode_test_cases(obj["test_cases"], sid, budgets) if "test_cases" in obj else ()
    limits = _decode_limits(obj["limits"], sid, budgets) if "limits" in obj else {}
    compare_raw = obj.get("compare", Compare.TRAILING_WHITESPACE.value)
    _expect(
        isinstance(compare_raw, str) and compare_raw in {c.value for c in Compare},
        "compare",
        f"must be one of {[c.value for c in Compare]}",
        sid,
    )
    metadata = obj.get("metadata", {})
    _expect(isinstance(metadata, dict), "metadata", "must be a JSON object", sid)
    problem = _metadata_problem(metadata, budgets)
    _expect(problem is None, "metadata", problem or "", sid)
    return Submission(
        submission_id=sid,
        language=language,
        files=files,
        entrypoint=entrypoint,
        stdin=stdin,
        stdin_bytes=stdin_bytes,
        args=args,
        expected_output=expected,
        test_cases=test_cases,
        limits=limits,
        compare=Compare(compare_raw),
        metadata=metadata,
        from_source=has_source,
    )


def _salvage_object(data: bytes, budgets: DecodeBudgets, numbers: Mapping[str, Any]) -> Any:
    """The event's JSON value with anything nested below `max_depth` cut to null.

    Salvage runs on events that already failed, so it must be bounded like decoding yet
    still read the shallow fields of an event that failed for being too deep.
    """
    if len(data) > budgets.max_event_bytes:
        return None
    shallow = jsonbound.elide_deeper(
        data.decode("utf-8"), keep_depth=budgets.max_depth, max_tokens=budgets.max_json_tokens
    )
    return json.loads(shallow, **numbers)


def salvage_submission_id(data: bytes, budgets: DecodeBudgets = BUDGETS) -> str | None:
    """Best effort: the submission id of an event that failed validation, if readable.

    Never raises: it runs on arbitrary bytes, and a failure here must not turn one bad
    event into a stalled partition.
    """
    try:
        obj = _salvage_object(data, budgets, jsonbound.LENIENT_NUMBERS)
        sid = obj.get("submission_id") if isinstance(obj, dict) else None
        if isinstance(sid, str) and SUBMISSION_ID_RE.fullmatch(sid):
            return sid
    except Exception:  # whatever the bytes provoke, the answer is "unreadable"
        return None
    return None


def salvage_metadata(data: bytes, budgets: DecodeBudgets = BUDGETS) -> dict[str, Any]:
    """Best effort: the metadata of an invalid event, echoed only when it is valid itself.

    Never raises, like `salvage_submission_id`.
    """
    try:
        numbers = jsonbound.number_hooks(budgets.max_number_chars)
        obj = _salvage_object(data, budgets, numbers)
        meta = obj.get("metadata") if isinstance(obj, dict) else None
        if isinstance(meta, dict) and _metadata_problem(meta, budgets) is None:
            json.dumps(meta, ensure_ascii=False).encode("utf-8")  # no lone surrogates
            return meta
    except Exception:  # as above: garbage in, nothing echoed
        return {}
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
    stdout_bytes: int | None = None
    """Bytes the program wrote to stdout (as relayed, before any cut for the result)."""
    stderr_bytes: int | None = None
    stdout_b64: str | None = None
    """Base64 of exactly the kept stdout bytes, only when they are not valid UTF-8."""
    stderr_b64: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
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
            "stdout_bytes": self.stdout_bytes,
            "stderr_bytes": self.stderr_bytes,
        }
        # Present only when the text fields cannot carry the bytes (additive to v1).
        if self.stdout_b64 is not None:
            out["stdout_b64"] = self.stdout_b64
        if self.stderr_b64 is not None:
            out["stderr_b64"] = self.stderr_b64
        return out

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> RunResult:
        """The inverse of `to_dict` (for results read back from the log or the topic)."""
        return cls(
            test_case_id=obj.get("test_case_id"),
            status=Status(obj["status"]),
            stdout=obj.get("stdout") or "",
            stderr=obj.get("stderr") or "",
            stdout_truncated=bool(obj.get("stdout_truncated")),
            stderr_truncated=bool(obj.get("stderr_truncated")),
            exit_code=obj.get("exit_code"),
            signal=obj.get("signal"),
            cpu_time_s=obj.get("cpu_time_s"),
            wall_time_s=obj.get("wall_time_s"),
            memory_kb=obj.get("memory_kb"),
            stdout_bytes=obj.get("stdout_bytes"),
            stderr_bytes=obj.get("stderr_bytes"),
            stdout_b64=obj.get("stdout_b64"),
            stderr_b64=obj.get("stderr_b64"),
        )


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

    @classmethod
    def decode(cls, obj: Mapping[str, Any]) -> ResultEvent:
        """A result event from its JSON object (as `to_dict` made it); `event_id` kept, so
        a republished result is the same event. Raises KeyError/ValueError when malformed.
        """
        rt = obj.get("runtime") or {}
        compiled = obj.get("compile")
        return cls(
            submission_id=str(obj["submission_id"]),
            status=Status(obj["status"]),
            language=obj.get("language"),
            worker_id=str(obj.get("worker_id") or ""),
            received_at=_parse_iso(obj["received_at"]),
            started_at=_parse_iso(obj["started_at"]) if obj.get("started_at") else None,
            finished_at=_parse_iso(obj["finished_at"]),
            message=obj.get("message"),
            runtime=Runtime(rt.get("image"), rt.get("image_id")),
            compile=RunResult.from_dict(compiled) if compiled else None,
            runs=tuple(RunResult.from_dict(r) for r in obj.get("runs") or ()),
            metadata=dict(obj.get("metadata") or {}),
            attempt=int(obj.get("attempt", 1)),
            event_id=str(obj["event_id"]),
            schema_version=int(obj.get("schema_version", SCHEMA_VERSION)),
        )


def _parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


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
