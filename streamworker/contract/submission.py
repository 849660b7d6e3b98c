"""The decode side: submission events in, a validated `Submission` out.

Every decode failure becomes one `InvalidEvent` naming the field at fault, and every
size, count and depth of an incoming event is bounded by `streamworker.budgets`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamworker import jsonbound
from streamworker.budgets import BUDGETS, DecodeBudgets
from streamworker.contract.fields import (
    SUBMISSION_ID_RE,
    b64,
    cut,
    echo,
    expect,
    metadata_problem,
    over,
    relative_path,
    utf8,
)
from streamworker.contract.salvage import salvage_submission_id
from streamworker.contract.status import SCHEMA_VERSION, Compare
from streamworker.errors import InvalidEvent
from streamworker.limits import LIMIT_NAMES, RunLimits

INTEGER_LIMITS = frozenset({"memory_mb", "processes", "output_kb", "file_size_kb"})
MAX_METADATA_BYTES = BUDGETS.max_metadata_bytes
"""Kept for importers; every budget lives in `streamworker.budgets`."""


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


def _decode_files(raw: object, sid: str | None, budgets: DecodeBudgets) -> tuple[SourceFile, ...]:
    expect(isinstance(raw, list) and len(raw) > 0, "files", "must be a non-empty list", sid)
    assert isinstance(raw, list)
    most = budgets.max_files
    expect(len(raw) <= most, "files", f"has more than {most} entries", sid)
    out: list[SourceFile] = []
    seen: set[str] = set()
    total = 0
    for i, item in enumerate(raw):
        fld = f"files[{i}]"
        expect(isinstance(item, dict), fld, "must be an object", sid)
        path = relative_path(item.get("path"), f"{fld}.path", sid, budgets)
        shown = echo(path, budgets.max_echo_chars)
        expect(path not in seen, f"{fld}.path", f"duplicate path {shown}", sid)
        seen.add(path)
        content = item.get("content")
        expect(isinstance(content, str), f"{fld}.content", "must be a string", sid)
        encoding = item.get("encoding", "utf-8")
        if encoding == "utf-8":
            data = content.encode("utf-8")
        elif encoding == "base64":
            data = b64(content, budgets.max_source_bytes, f"{fld}.content", sid)
        else:
            raise InvalidEvent(
                f"must be 'utf-8' or 'base64', got {echo(encoding, budgets.max_echo_chars)}",
                field=f"{fld}.encoding",
                submission_id=sid,
            )
        total += len(data)
        expect(
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
        expect("stdin" not in obj, fld, "give 'stdin' or 'stdin_b64', not both", sid)
        data = b64(obj["stdin_b64"], limit, fld, sid)
        return data.decode("utf-8", "replace"), data
    text = obj.get("stdin", "")
    expect(isinstance(text, str), f"{prefix}stdin", "must be a string", sid)
    return text, utf8(text, limit, f"{prefix}stdin", sid)


def _decode_expected(raw: object, fld: str, sid: str | None, budgets: DecodeBudgets) -> str | None:
    if raw is None:
        return None
    expect(isinstance(raw, str), fld, "must be a string", sid)
    assert isinstance(raw, str)
    utf8(raw, budgets.max_expected_output_bytes, fld, sid)
    return raw


def _decode_args(raw: object, sid: str | None, budgets: DecodeBudgets) -> tuple[str, ...]:
    expect(isinstance(raw, list), "args", "must be a list of strings", sid)
    assert isinstance(raw, list)
    expect(len(raw) <= budgets.max_args, "args", over(len(raw), budgets.max_args, "entries"), sid)
    total = 0
    for i, arg in enumerate(raw):
        fld = f"args[{i}]"
        expect(isinstance(arg, str) and "\x00" not in arg, fld, "must be a string without NUL", sid)
        total += len(utf8(arg, budgets.max_arg_bytes, fld, sid))
    most = budgets.max_args_total_bytes
    expect(total <= most, "args", f"are {total} bytes together, above the maximum {most}", sid)
    return tuple(raw)


def _decode_test_cases(
    raw: object, sid: str | None, budgets: DecodeBudgets
) -> tuple[TestCase, ...]:
    expect(isinstance(raw, list), "test_cases", "must be a list", sid)
    assert isinstance(raw, list)
    most = budgets.max_test_cases
    expect(len(raw) <= most, "test_cases", over(len(raw), most, "cases"), sid)
    cases: list[TestCase] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        fld = f"test_cases[{i}]"
        expect(isinstance(item, dict), fld, "must be an object", sid)
        case_id = item.get("id", str(i + 1))
        if isinstance(case_id, int) and not isinstance(case_id, bool):
            case_id = str(case_id)
        expect(isinstance(case_id, str) and case_id != "", f"{fld}.id", "must be a string", sid)
        id_chars = budgets.max_test_case_id_chars
        expect(len(case_id) <= id_chars, f"{fld}.id", over(len(case_id), id_chars, "chars"), sid)
        shown = echo(case_id, budgets.max_echo_chars)
        expect(case_id not in seen, f"{fld}.id", f"duplicate id {shown}", sid)
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
    expect(isinstance(raw, dict), "limits", "must be an object", sid)
    assert isinstance(raw, dict)
    out: dict[str, float] = {}
    for key, value in raw.items():
        fld = f"limits.{cut(key, budgets.max_echo_chars)}"
        expect(key in LIMIT_NAMES, fld, f"unknown limit; known: {LIMIT_NAMES}", sid)
        expect(
            isinstance(value, int | float) and not isinstance(value, bool) and value > 0,
            fld,
            "must be a positive number",
            sid,
        )
        expect(abs(value) < 1e15, fld, "is out of range", sid)
        if key in INTEGER_LIMITS:
            expect(float(value).is_integer(), fld, "must be a whole number", sid)
            value = int(value)
        out[key] = value
    return out


def _parse_event(data: bytes, budgets: DecodeBudgets) -> dict[str, Any]:
    """The event's JSON object, parsed within the whole-event budgets."""
    size = len(data)
    if size > budgets.max_event_bytes:
        raise InvalidEvent(f"value {over(size, budgets.max_event_bytes)}")
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
    expect(raw_sid is not None, "submission_id", "is required", None)
    expect(sid is not None, "submission_id", "must be 1-128 chars of [A-Za-z0-9._:-]", None)
    assert sid is not None
    version = obj.get("schema_version", SCHEMA_VERSION)
    expect(
        type(version) is int and version == SCHEMA_VERSION,
        "schema_version",
        f"unsupported: {echo(version, budgets.max_echo_chars)}",
        sid,
    )
    language = obj.get("language")
    expect(isinstance(language, str) and language != "", "language", "is required", sid)
    assert isinstance(language, str)
    most = budgets.max_language_chars
    expect(len(language) <= most, "language", over(len(language), most, "chars"), sid)

    has_source, has_files = "source" in obj, "files" in obj
    expect(has_source or has_files, "source", "one of 'source' or 'files' is required", sid)
    expect(not (has_source and has_files), "files", "give 'source' or 'files', not both", sid)
    if has_source:
        source = obj["source"]
        expect(isinstance(source, str), "source", "must be a string", sid)
        content = utf8(source, budgets.max_source_bytes, "source", sid)
        files: tuple[SourceFile, ...] = (SourceFile("", content),)
    else:
        files = _decode_files(obj["files"], sid, budgets)

    entrypoint = obj.get("entrypoint")
    if entrypoint is not None:
        entrypoint = relative_path(entrypoint, "entrypoint", sid, budgets)
        expect(
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
    expect(
        isinstance(compare_raw, str) and compare_raw in {c.value for c in Compare},
        "compare",
        f"must be one of {[c.value for c in Compare]}",
        sid,
    )
    metadata = obj.get("metadata", {})
    expect(isinstance(metadata, dict), "metadata", "must be a JSON object", sid)
    problem = metadata_problem(metadata, budgets)
    expect(problem is None, "metadata", problem or "", sid)
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
