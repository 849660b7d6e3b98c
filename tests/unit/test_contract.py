"""The v1 event contract: decoding with field-named errors, limits, statuses, result shape."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from streamworker.contract import (
    INTEGER_LIMITS,
    MAX_METADATA_BYTES,
    SCHEMA_VERSION,
    Compare,
    ResultEvent,
    RunResult,
    Runtime,
    SourceFile,
    Status,
    decode_submission,
    iso,
    judge0_status_id,
    overall_status,
    resolve_limits,
    salvage_metadata,
    salvage_submission_id,
)
from streamworker.errors import InvalidEvent
from streamworker.limits import DEFAULT_LIMITS, LIMIT_NAMES, MAX_LIMITS, RunLimits

DROP = object()
"""An override value meaning: remove this key from the event."""

BASE: dict[str, Any] = {"submission_id": "sub-1", "language": "python", "source": "print(1)"}


def event(**overrides: Any) -> bytes:
    obj = dict(BASE)
    for key, value in overrides.items():
        if value is DROP:
            obj.pop(key, None)
        else:
            obj[key] = value
    return json.dumps(obj).encode()


def files_event(files: Any, **overrides: Any) -> bytes:
    return event(source=DROP, files=files, **overrides)


def invalid(data: bytes) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as info:
        decode_submission(data)
    return info.value


# --------------------------------------------------------------------------- decoding: valid


class TestDecodeValid:
    def test_minimal_source_event(self) -> None:
        sub = decode_submission(event())
        assert sub.submission_id == "sub-1"
        assert sub.language == "python"
        assert sub.files == (SourceFile("", b"print(1)"),)
        assert sub.from_source is True
        assert sub.entrypoint is None
        assert sub.stdin == ""
        assert sub.args == ()
        assert sub.expected_output is None
        assert sub.test_cases == ()
        assert dict(sub.limits) == {}
        assert sub.compare is Compare.TRAILING_WHITESPACE
        assert dict(sub.metadata) == {}
        assert sub.schema_version == SCHEMA_VERSION == 1

    @pytest.mark.parametrize("sid", ["a", "A" * 128, "tenant:42.sub_1-x", "0", "...", "::"])
    def test_submission_id_accepts_the_whole_alphabet(self, sid: str) -> None:
        assert decode_submission(event(submission_id=sid)).submission_id == sid

    def test_explicit_schema_version_one(self) -> None:
        assert decode_submission(event(schema_version=1)).schema_version == 1

    def test_source_is_utf8_encoded(self) -> None:
        sub = decode_submission(event(source="print('héllo ✓')"))
        assert sub.files[0].content == "print('héllo ✓')".encode()

    def test_files_utf8_default_and_base64(self) -> None:
        blob = bytes(range(256))
        sub = decode_submission(
            files_event(
                [
                    {"path": "main.py", "content": "import lib"},
                    {"path": "lib.py", "content": "x = 1", "encoding": "utf-8"},
                    {
                        "path": "data/blob.bin",
                        "content": base64.b64encode(blob).decode(),
                        "encoding": "base64",
                    },
                ]
            )
        )
        assert sub.from_source is False
        assert sub.files == (
            SourceFile("main.py", b"import lib"),
            SourceFile("lib.py", b"x = 1"),
            SourceFile("data/blob.bin", blob),
        )

    def test_file_paths_and_entrypoint_are_normalised(self) -> None:
        sub = decode_submission(
            files_event(
                [{"path": "./src//main.py", "content": ""}, {"path": "src/a.py", "content": ""}],
                entrypoint="src/./main.py",
            )
        )
        assert [f.path for f in sub.files] == ["src/main.py", "src/a.py"]
        assert sub.entrypoint == "src/main.py"

    def test_entrypoint_among_files(self) -> None:
        sub = decode_submission(
            files_event(
                [{"path": "a.py", "content": ""}, {"path": "b.py", "content": ""}],
                entrypoint="b.py",
            )
        )
        assert sub.entrypoint == "b.py"

    def test_optional_fields(self) -> None:
        sub = decode_submission(
            event(
                stdin="1 2\n",
                args=["-v", "x y"],
                expected_output="3\n",
                compare="exact",
                limits={"cpu_time_s": 1.5, "memory_mb": 128},
                metadata={"tenant": "t1", "nested": {"a": [1, 2]}},
            )
        )
        assert sub.stdin == "1 2\n"
        assert sub.args == ("-v", "x y")
        assert sub.expected_output == "3\n"
        assert sub.compare is Compare.EXACT
        assert dict(sub.limits) == {"cpu_time_s": 1.5, "memory_mb": 128}
        assert dict(sub.metadata) == {"tenant": "t1", "nested": {"a": [1, 2]}}

    def test_test_cases_ids_defaults_and_integers(self) -> None:
        sub = decode_submission(
            event(
                test_cases=[
                    {"stdin": "a", "expected_output": "A"},
                    {"id": 7, "stdin": "b"},
                    {"id": "named"},
                ]
            )
        )
        assert [(c.id, c.stdin, c.expected_output) for c in sub.test_cases] == [
            ("1", "a", "A"),
            ("7", "b", None),
            ("named", "", None),
        ]

    def test_empty_test_cases_list_is_a_single_run(self) -> None:
        assert decode_submission(event(test_cases=[])).test_cases == ()

    def test_metadata_at_exactly_the_limit_is_accepted(self) -> None:
        meta = {"k": ""}
        meta["k"] = "x" * (MAX_METADATA_BYTES - len(json.dumps(meta).encode()))
        assert len(json.dumps(meta).encode()) == MAX_METADATA_BYTES
        assert dict(decode_submission(event(metadata=meta)).metadata) == meta

    def test_unknown_top_level_fields_are_ignored(self) -> None:
        assert decode_submission(event(future_field={"x": 1})).submission_id == "sub-1"

    def test_submission_is_frozen(self) -> None:
        sub = decode_submission(event())
        with pytest.raises(AttributeError):
            sub.language = "c"  # type: ignore[misc]


# ------------------------------------------------------------------------- decoding: invalid

FILE = {"path": "main.py", "content": "print(1)"}

INVALID_CASES: list[tuple[str, bytes, str]] = [
    # submission_id
    ("sid missing", event(submission_id=DROP), "submission_id"),
    ("sid null", event(submission_id=None), "submission_id"),
    ("sid empty", event(submission_id=""), "submission_id"),
    ("sid too long", event(submission_id="a" * 129), "submission_id"),
    ("sid space", event(submission_id="a b"), "submission_id"),
    ("sid slash", event(submission_id="a/b"), "submission_id"),
    ("sid unicode", event(submission_id="é"), "submission_id"),
    ("sid int", event(submission_id=12), "submission_id"),
    # schema_version
    ("version 2", event(schema_version=2), "schema_version"),
    ("version str", event(schema_version="1"), "schema_version"),
    ("version null", event(schema_version=None), "schema_version"),
    # language
    ("language missing", event(language=DROP), "language"),
    ("language empty", event(language=""), "language"),
    ("language int", event(language=3), "language"),
    # source / files
    ("neither", event(source=DROP), "source"),
    ("both", event(files=[FILE]), "files"),
    ("source int", event(source=1), "source"),
    ("source null", event(source=None), "source"),
    ("files empty", files_event([]), "files"),
    ("files object", files_event({"path": "a"}), "files"),
    ("files too many", files_event([{"path": f"f{i}", "content": ""} for i in range(65)]), "files"),
    ("file not object", files_event(["main.py"]), "files[0]"),
    ("path missing", files_event([{"content": ""}]), "files[0].path"),
    ("path empty", files_event([{"path": "", "content": ""}]), "files[0].path"),
    ("path int", files_event([{"path": 1, "content": ""}]), "files[0].path"),
    ("path absolute", files_event([{"path": "/etc/passwd", "content": ""}]), "files[0].path"),
    ("path dotdot", files_event([{"path": "../x", "content": ""}]), "files[0].path"),
    ("path inner dotdot", files_event([{"path": "a/../../x", "content": ""}]), "files[0].path"),
    ("path dotdot only", files_event([{"path": "..", "content": ""}]), "files[0].path"),
    ("path backslash", files_event([{"path": "a\\b", "content": ""}]), "files[0].path"),
    ("path NUL", files_event([{"path": "a\x00b", "content": ""}]), "files[0].path"),
    ("path dot", files_event([{"path": ".", "content": ""}]), "files[0].path"),
    ("path too long", files_event([{"path": "x" * 256, "content": ""}]), "files[0].path"),
    (
        "path duplicate",
        files_event([FILE, {"path": "x.py", "content": ""}, {"path": "./main.py", "content": ""}]),
        "files[2].path",
    ),
    ("content missing", files_event([{"path": "a"}]), "files[0].content"),
    ("content int", files_event([{"path": "a", "content": 5}]), "files[0].content"),
    (
        "base64 invalid",
        files_event([{"path": "a", "content": "not base64!", "encoding": "base64"}]),
        "files[0].content",
    ),
    (
        "base64 bad padding",
        files_event([{"path": "a", "content": "abc", "encoding": "base64"}]),
        "files[0].content",
    ),
    (
        "base64 non-ascii",
        files_event([{"path": "a", "content": "é", "encoding": "base64"}]),
        "files[0].content",
    ),
    (
        "encoding unknown",
        files_event([{"path": "a", "content": "", "encoding": "latin-1"}]),
        "files[0].encoding",
    ),
    (
        "encoding null",
        files_event([{"path": "a", "content": "", "encoding": None}]),
        "files[0].encoding",
    ),
    # entrypoint
    ("entrypoint not a file", files_event([FILE], entrypoint="other.py"), "entrypoint"),
    ("entrypoint absolute", files_event([FILE], entrypoint="/main.py"), "entrypoint"),
    ("entrypoint dotdot", files_event([FILE], entrypoint="../main.py"), "entrypoint"),
    ("entrypoint int", files_event([FILE], entrypoint=1), "entrypoint"),
    ("entrypoint empty", files_event([FILE], entrypoint=""), "entrypoint"),
    # stdin, args, expected_output
    ("stdin int", event(stdin=1), "stdin"),
    ("stdin list", event(stdin=["a"]), "stdin"),
    ("args string", event(args="-v"), "args"),
    ("args int item", event(args=["a", 1]), "args[1]"),
    ("args null item", event(args=[None]), "args[0]"),
    ("args NUL", event(args=["a\x00b"]), "args[0]"),
    ("args object", event(args={"a": "b"}), "args"),
    ("expected int", event(expected_output=3), "expected_output"),
    # test_cases
    ("cases object", event(test_cases={"id": "1"}), "test_cases"),
    ("cases string", event(test_cases="x"), "test_cases"),
    ("case not object", event(test_cases=[{"id": "a"}, "b"]), "test_cases[1]"),
    ("case id bool", event(test_cases=[{"id": True}]), "test_cases[0].id"),
    ("case id empty", event(test_cases=[{"id": ""}]), "test_cases[0].id"),
    ("case id float", event(test_cases=[{"id": 1.5}]), "test_cases[0].id"),
    ("case id duplicate", event(test_cases=[{"id": "a"}, {"id": "a"}]), "test_cases[1].id"),
    (
        "case id duplicate int/str",
        event(test_cases=[{"id": 1}, {"id": "x"}, {"id": "1"}]),
        "test_cases[2].id",
    ),
    ("case id clashes default", event(test_cases=[{}, {"id": "1"}]), "test_cases[1].id"),
    ("case stdin int", event(test_cases=[{"stdin": 5}]), "test_cases[0].stdin"),
    (
        "case expected int",
        event(test_cases=[{"id": "a"}, {"expected_output": 5}]),
        "test_cases[1].expected_output",
    ),
    # limits
    ("limits list", event(limits=[1]), "limits"),
    ("limits string", event(limits="fast"), "limits"),
    ("limit unknown", event(limits={"gpu_count": 1}), "limits.gpu_count"),
    ("limit zero", event(limits={"memory_mb": 0}), "limits.memory_mb"),
    ("limit negative", event(limits={"cpu_time_s": -1}), "limits.cpu_time_s"),
    ("limit bool", event(limits={"processes": True}), "limits.processes"),
    ("limit string", event(limits={"wall_time_s": "5"}), "limits.wall_time_s"),
    ("limit null", event(limits={"output_kb": None}), "limits.output_kb"),
    ("limit list", event(limits={"file_size_kb": [1]}), "limits.file_size_kb"),
    # compare
    ("compare unknown", event(compare="fuzzy"), "compare"),
    ("compare int", event(compare=1), "compare"),
    ("compare null", event(compare=None), "compare"),
    # metadata
    ("metadata list", event(metadata=[1]), "metadata"),
    ("metadata string", event(metadata="x"), "metadata"),
    ("metadata null", event(metadata=None), "metadata"),
    ("metadata too big", event(metadata={"k": "x" * MAX_METADATA_BYTES}), "metadata"),
]


@pytest.mark.parametrize(
    ("data", "fld"), [c[1:] for c in INVALID_CASES], ids=[c[0] for c in INVALID_CASES]
)
def test_invalid_event_names_the_field(data: bytes, fld: str) -> None:
    exc = invalid(data)
    assert exc.field == fld
    assert str(exc).startswith(f"{fld}: ")
    assert exc.code == "event.invalid"
    assert exc.retriable is False


@pytest.mark.parametrize("limit", LIMIT_NAMES)
def test_every_limit_name_is_validated(limit: str) -> None:
    assert decode_submission(event(limits={limit: 1})).limits == {limit: 1}
    assert invalid(event(limits={limit: 0})).field == f"limits.{limit}"
    assert invalid(event(limits={limit: False})).field == f"limits.{limit}"


def test_metadata_one_byte_over_is_rejected() -> None:
    meta = {"k": ""}
    meta["k"] = "x" * (MAX_METADATA_BYTES + 1 - len(json.dumps(meta).encode()))
    assert invalid(event(metadata=meta)).field == "metadata"


def test_error_carries_the_submission_id_once_readable() -> None:
    assert invalid(event(language=DROP)).submission_id == "sub-1"
    assert invalid(event(submission_id="bad id", language=DROP)).submission_id is None
    assert invalid(event(submission_id=DROP)).submission_id is None


def test_submission_id_is_checked_before_other_fields() -> None:
    exc = invalid(event(submission_id="bad id", language=DROP, source=DROP))
    assert exc.field == "submission_id"


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"\xff\xfe{}", "UTF-8"),
        (b'{"submission_id": "a\xc3"}', "UTF-8"),
        (b"not json", "JSON"),
        (b"", "JSON"),
        (b'{"submission_id": "a",', "JSON"),
        (b"[1, 2]", "JSON object"),
        (b'"sub-1"', "JSON object"),
        (b"null", "JSON object"),
    ],
)
def test_undecodable_bytes(data: bytes, needle: str) -> None:
    exc = invalid(data)
    assert exc.field is None
    assert exc.submission_id is None
    assert needle in str(exc)


# ------------------------------------------------------- decoding: formerly known bugs (fixed)


def test_submission_id_with_trailing_newline_is_rejected() -> None:
    exc = invalid(event(submission_id="sub-1\n"))
    assert exc.field == "submission_id"
    assert exc.submission_id is None


def test_salvage_rejects_submission_id_with_trailing_newline() -> None:
    assert salvage_submission_id(event(submission_id="sub-1\n", language=DROP)) is None


@pytest.mark.parametrize("value", [[], {}, ["exact"], 1, None, True])
def test_non_string_compare_is_invalid_event(value: Any) -> None:
    exc = invalid(event(compare=value))
    assert exc.field == "compare"
    assert exc.submission_id == "sub-1"


def _assert_surrogate_rejected(data: bytes, sid: str | None = "s") -> None:
    exc = invalid(data)
    assert exc.field is None
    assert "surrogate" in str(exc)
    assert exc.submission_id == sid


def test_lone_surrogate_in_source_is_invalid_event() -> None:
    _assert_surrogate_rejected(b'{"submission_id":"s","language":"python","source":"\\ud800"}')


def test_lone_surrogate_in_file_content_is_invalid_event() -> None:
    data = b'{"submission_id":"s","language":"python","files":[{"path":"a","content":"\\udfff"}]}'
    _assert_surrogate_rejected(data)


@pytest.mark.parametrize(
    "fragment",
    [
        b'"stdin":"\\ud800"',
        b'"metadata":{"k":"\\ud800"}',
        b'"metadata":{"\\udc00":1}',
        b'"expected_output":"\\ud800"',
        b'"args":["\\udbff"]',
        b'"test_cases":[{"stdin":"\\ud800"}]',
        b'"unknown_key":"\\ud800"',
    ],
)
def test_lone_surrogates_elsewhere_are_invalid_event(fragment: bytes) -> None:
    _assert_surrogate_rejected(
        b'{"submission_id":"s","language":"python","source":"x",' + fragment + b"}"
    )


def test_lone_surrogate_with_unreadable_submission_id_salvages_nothing() -> None:
    _assert_surrogate_rejected(b'{"submission_id":"bad id","stdin":"\\ud800"}', sid=None)


def test_valid_surrogate_pair_is_text() -> None:
    sub = decode_submission(
        b'{"submission_id":"s","language":"python","source":"x","stdin":"\\ud83d\\ude00"}'
    )
    assert sub.stdin == "\U0001f600"


@pytest.mark.parametrize("token", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_json_numbers_are_rejected(token: bytes) -> None:
    exc = invalid(
        b'{"submission_id":"s","language":"python","source":"x","metadata":{"x":' + token + b"}}"
    )
    assert exc.field is None
    assert "JSON" in str(exc)


@pytest.mark.parametrize("token", [b"NaN", b"Infinity"])
def test_non_json_numbers_leave_the_id_salvageable_but_not_the_metadata(token: bytes) -> None:
    # The submitter still gets an invalid_submission answer; the bad metadata is not echoed.
    data = b'{"submission_id":"s","metadata":{"x":' + token + b"}}"
    assert salvage_submission_id(data) == "s"
    assert salvage_metadata(data) == {}


@pytest.mark.parametrize("number", [b"1e400", b"-1e400"])
def test_overflowing_number_literal_is_rejected(number: bytes) -> None:
    invalid(
        b'{"submission_id":"s","language":"python","source":"x","metadata":{"x":' + number + b"}}"
    )


@pytest.mark.parametrize("name", ["memory_mb", "cpu_time_s"])
def test_huge_integer_limit_is_invalid_event(name: str) -> None:
    exc = invalid(event(limits={name: 10**400}))
    assert exc.field == f"limits.{name}"


@pytest.mark.parametrize("value", [True, False, 1.0])
def test_schema_version_must_be_an_integer(value: Any) -> None:
    assert invalid(event(schema_version=value)).field == "schema_version"


# --------------------------------------------------------------------------------- salvage


class TestSalvage:
    def test_submission_id_of_an_otherwise_invalid_event(self) -> None:
        assert salvage_submission_id(event(language=DROP, source=DROP)) == "sub-1"

    @pytest.mark.parametrize(
        "data",
        [
            b"\xff",
            b"nope",
            b"[]",
            b'"sub-1"',
            event(submission_id=DROP),
            event(submission_id="bad id"),
            event(submission_id="x" * 129),
            event(submission_id=5),
        ],
    )
    def test_submission_id_unreadable(self, data: bytes) -> None:
        assert salvage_submission_id(data) is None

    def test_metadata_of_an_otherwise_invalid_event(self) -> None:
        assert salvage_metadata(event(language=DROP, metadata={"tenant": "t"})) == {"tenant": "t"}

    @pytest.mark.parametrize(
        "data",
        [
            b"\xff",
            b"nope",
            b"[1]",
            event(),
            event(metadata=[1]),
            event(metadata="x"),
            event(metadata={"k": "x" * MAX_METADATA_BYTES}),
        ],
    )
    def test_metadata_unusable(self, data: bytes) -> None:
        assert salvage_metadata(data) == {}


# ---------------------------------------------------------------------------- resolve_limits


class TestResolveLimits:
    def test_defaults_when_nothing_requested(self) -> None:
        assert resolve_limits({}, DEFAULT_LIMITS, MAX_LIMITS) == DEFAULT_LIMITS

    def test_requested_values_override_defaults_with_types(self) -> None:
        limits = resolve_limits(
            {"cpu_time_s": 1, "memory_mb": 64.0, "output_kb": 8}, DEFAULT_LIMITS, MAX_LIMITS
        )
        assert limits == RunLimits(
            cpu_time_s=1.0,
            wall_time_s=DEFAULT_LIMITS.wall_time_s,
            memory_mb=64,
            processes=DEFAULT_LIMITS.processes,
            output_kb=8,
            file_size_kb=DEFAULT_LIMITS.file_size_kb,
        )
        assert isinstance(limits.cpu_time_s, float)
        assert isinstance(limits.memory_mb, int)

    def test_floor_raises_defaults_but_never_lowers_them(self) -> None:
        limits = resolve_limits(
            {}, DEFAULT_LIMITS, MAX_LIMITS, floor={"memory_mb": 512, "processes": 1}
        )
        assert limits.memory_mb == 512
        assert limits.processes == DEFAULT_LIMITS.processes

    def test_requested_value_wins_over_floor(self) -> None:
        limits = resolve_limits({"memory_mb": 128}, DEFAULT_LIMITS, MAX_LIMITS, {"memory_mb": 512})
        assert limits.memory_mb == 128

    @pytest.mark.parametrize("name", LIMIT_NAMES)
    def test_exactly_the_maximum_is_allowed(self, name: str) -> None:
        maximum = getattr(MAX_LIMITS, name)
        assert getattr(resolve_limits({name: maximum}, DEFAULT_LIMITS, MAX_LIMITS), name) == (
            maximum
        )

    @pytest.mark.parametrize("name", LIMIT_NAMES)
    def test_over_the_maximum_names_the_limit(self, name: str) -> None:
        maximum = getattr(MAX_LIMITS, name)
        with pytest.raises(InvalidEvent) as info:
            resolve_limits({name: maximum + 1}, DEFAULT_LIMITS, MAX_LIMITS)
        assert info.value.field == f"limits.{name}"
        assert str(maximum) in str(info.value)

    @pytest.mark.parametrize("name", sorted(INTEGER_LIMITS))
    @pytest.mark.parametrize("value", [0.5, 1.5, 64.25])
    def test_fractional_integer_limit_is_rejected(self, name: str, value: float) -> None:
        exc = invalid(event(limits={name: value}))
        assert exc.field == f"limits.{name}"
        assert "whole number" in str(exc)
        assert exc.submission_id == "sub-1"

    @pytest.mark.parametrize("name", sorted(INTEGER_LIMITS))
    def test_whole_float_integer_limit_is_converted_to_int(self, name: str) -> None:
        sub = decode_submission(event(limits={name: 2.0}))
        assert sub.limits[name] == 2
        assert type(sub.limits[name]) is int
        assert getattr(resolve_limits(sub.limits, DEFAULT_LIMITS, MAX_LIMITS), name) == 2

    def test_integer_limits_are_the_non_time_limits(self) -> None:
        assert sorted(INTEGER_LIMITS) == ["file_size_kb", "memory_mb", "output_kb", "processes"]
        assert sorted(set(LIMIT_NAMES) - INTEGER_LIMITS) == ["cpu_time_s", "wall_time_s"]

    @pytest.mark.parametrize("name", ["cpu_time_s", "wall_time_s"])
    def test_fractional_time_limit_is_allowed(self, name: str) -> None:
        sub = decode_submission(event(limits={name: 0.5}))
        assert sub.limits[name] == 0.5
        assert getattr(resolve_limits(sub.limits, DEFAULT_LIMITS, MAX_LIMITS), name) == 0.5


# --------------------------------------------------------------------------------- statuses


@pytest.mark.parametrize(
    ("status", "signal", "expected"),
    [
        (Status.ACCEPTED, None, 3),
        (Status.WRONG_ANSWER, None, 4),
        (Status.TIME_LIMIT_EXCEEDED, None, 5),
        (Status.TIME_LIMIT_EXCEEDED, "SIGXCPU", 5),
        (Status.COMPILATION_ERROR, None, 6),
        (Status.RUNTIME_ERROR, "SIGSEGV", 7),
        (Status.RUNTIME_ERROR, "SIGXFSZ", 8),
        (Status.RUNTIME_ERROR, "SIGFPE", 9),
        (Status.RUNTIME_ERROR, "SIGABRT", 10),
        (Status.RUNTIME_ERROR, None, 11),
        (Status.RUNTIME_ERROR, "SIGKILL", 12),
        (Status.RUNTIME_ERROR, "SIGTERM", 12),
        (Status.RUNTIME_ERROR, "SIGBUS", 12),
        (Status.RUNTIME_ERROR, "SIG99", 12),
        (Status.MEMORY_LIMIT_EXCEEDED, None, 12),
        (Status.MEMORY_LIMIT_EXCEEDED, "SIGKILL", 12),
        (Status.OUTPUT_LIMIT_EXCEEDED, None, 12),
        (Status.INTERNAL_ERROR, None, 13),
        (Status.INVALID_SUBMISSION, None, 13),
    ],
)
def test_judge0_status_id(status: Status, signal: str | None, expected: int) -> None:
    assert judge0_status_id(status, signal) == expected


def test_every_status_has_a_judge0_id() -> None:
    for status in Status:
        assert 3 <= judge0_status_id(status) <= 13


def test_status_values_are_the_contracts() -> None:
    assert {s.value for s in Status} == {
        "accepted",
        "wrong_answer",
        "time_limit_exceeded",
        "compilation_error",
        "runtime_error",
        "memory_limit_exceeded",
        "output_limit_exceeded",
        "internal_error",
        "invalid_submission",
    }
    assert {c.value for c in Compare} == {"trailing_whitespace", "exact"}


def run(status: Status, signal: str | None = None, case: str | None = None) -> RunResult:
    return RunResult(test_case_id=case, status=status, signal=signal)


class TestOverallStatus:
    def test_no_runs_is_accepted(self) -> None:
        assert overall_status([]) is Status.ACCEPTED

    def test_all_accepted(self) -> None:
        assert overall_status((run(Status.ACCEPTED), run(Status.ACCEPTED))) is Status.ACCEPTED

    def test_first_non_accepted_wins(self) -> None:
        runs = [
            run(Status.ACCEPTED),
            run(Status.WRONG_ANSWER),
            run(Status.TIME_LIMIT_EXCEEDED),
            run(Status.INTERNAL_ERROR),
        ]
        assert overall_status(runs) is Status.WRONG_ANSWER

    def test_order_not_severity(self) -> None:
        runs = [run(Status.TIME_LIMIT_EXCEEDED), run(Status.INTERNAL_ERROR)]
        assert overall_status(runs) is Status.TIME_LIMIT_EXCEEDED


# ------------------------------------------------------------------------------ result event

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
RESULT_KEYS = {
    "submission_id",
    "schema_version",
    "event_id",
    "status",
    "judge0_status_id",
    "message",
    "language",
    "runtime",
    "compile",
    "runs",
    "metadata",
    "worker_id",
    "attempt",
    "received_at",
    "started_at",
    "finished_at",
}
RUN_KEYS = {
    "test_case_id",
    "status",
    "stdout",
    "stderr",
    "stdout_truncated",
    "stderr_truncated",
    "exit_code",
    "signal",
    "cpu_time_s",
    "wall_time_s",
    "memory_kb",
    "stdout_bytes",
    "stderr_bytes",
}
"""v1's run keys plus the additive byte counts; `*_b64` appear only for non-UTF-8 bytes."""


def result(**overrides: Any) -> ResultEvent:
    values: dict[str, Any] = {
        "submission_id": "sub-1",
        "status": Status.ACCEPTED,
        "language": "python",
        "worker_id": "w1",
        "received_at": T0,
        "started_at": T0 + timedelta(seconds=1),
        "finished_at": T0 + timedelta(seconds=2),
    }
    values.update(overrides)
    return ResultEvent(**values)


class TestResultEvent:
    def test_top_level_keys_are_exactly_the_contracts(self) -> None:
        assert set(result().to_dict()) == RESULT_KEYS

    def test_run_object_keys_are_exactly_the_contracts(self) -> None:
        full = RunResult("a", Status.ACCEPTED, "o", "e", True, False, 0, None, 0.1, 0.2, 300)
        assert set(full.to_dict()) == RUN_KEYS
        assert set(run(Status.ACCEPTED).to_dict()) == RUN_KEYS

    def test_full_shape(self) -> None:
        compile_run = RunResult(None, Status.ACCEPTED, "", "warn", False, False, 0, None, 1, 2, 9)
        runs = (
            RunResult("a", Status.ACCEPTED, "1\n", "", False, False, 0, None, 0.25, 0.5, 1000),
            RunResult("b", Status.RUNTIME_ERROR, "", "boom", False, True, None, "SIGSEGV"),
        )
        event_dict = result(
            status=Status.RUNTIME_ERROR,
            runtime=Runtime("img", "sha256:1"),
            compile=compile_run,
            runs=runs,
            metadata={"tenant": "t"},
            attempt=2,
            event_id="e-1",
            message=None,
        ).to_dict()
        assert event_dict == {
            "submission_id": "sub-1",
            "schema_version": 1,
            "event_id": "e-1",
            "status": "runtime_error",
            "judge0_status_id": 7,
            "message": None,
            "language": "python",
            "runtime": {"image": "img", "image_id": "sha256:1"},
            "compile": compile_run.to_dict(),
            "runs": [runs[0].to_dict(), runs[1].to_dict()],
            "metadata": {"tenant": "t"},
            "worker_id": "w1",
            "attempt": 2,
            "received_at": "2024-05-01T12:00:00.123456Z",
            "started_at": "2024-05-01T12:00:01.123456Z",
            "finished_at": "2024-05-01T12:00:02.123456Z",
        }
        assert event_dict["runs"][1] == {
            "test_case_id": "b",
            "status": "runtime_error",
            "stdout": "",
            "stderr": "boom",
            "stdout_truncated": False,
            "stderr_truncated": True,
            "exit_code": None,
            "signal": "SIGSEGV",
            "cpu_time_s": None,
            "wall_time_s": None,
            "memory_kb": None,
            "stdout_bytes": None,
            "stderr_bytes": None,
        }

    def test_b64_fields_appear_only_when_set(self) -> None:
        binary = RunResult("a", Status.ACCEPTED, "\ufffd", stdout_b64="/w==", stdout_bytes=1)
        assert binary.to_dict()["stdout_b64"] == "/w==" and "stderr_b64" not in binary.to_dict()
        assert RunResult.from_dict(binary.to_dict()) == binary

    def test_result_event_decode_inverts_to_dict(self) -> None:
        runs = (RunResult("a", Status.ACCEPTED, "1\n", "", stdout_bytes=2, stderr_bytes=0),)
        event = result(runs=runs, compile=RunResult(None, Status.ACCEPTED), event_id="e-9")
        again = ResultEvent.decode(json.loads(event.encode()))
        assert again == event and again.encode() == event.encode()

    def test_defaults_for_an_invalid_submission(self) -> None:
        event_dict = result(
            status=Status.INVALID_SUBMISSION, language=None, started_at=None, message="x: bad"
        ).to_dict()
        assert event_dict["compile"] is None
        assert event_dict["runs"] == []
        assert event_dict["runtime"] == {"image": None, "image_id": None}
        assert event_dict["metadata"] == {}
        assert event_dict["started_at"] is None
        assert event_dict["judge0_status_id"] == 13
        assert event_dict["attempt"] == 1
        assert event_dict["schema_version"] == 1

    def test_timestamps_are_iso_utc_with_z(self) -> None:
        plus_two = timezone(timedelta(hours=2))
        event_dict = result(
            received_at=datetime(2024, 1, 1, 14, 0, tzinfo=plus_two),
            started_at=datetime(2024, 1, 1, 12, 0, 1, tzinfo=UTC),
            finished_at=datetime(2024, 1, 1, 12, 0, 2, 5, tzinfo=UTC),
        ).to_dict()
        for key in ("received_at", "started_at", "finished_at"):
            assert ISO_Z.match(event_dict[key]), event_dict[key]
        assert event_dict["received_at"] == "2024-01-01T12:00:00.000000Z"
        assert event_dict["finished_at"] == "2024-01-01T12:00:02.000005Z"

    def test_iso_helper(self) -> None:
        assert iso(None) is None
        assert iso(T0) == "2024-05-01T12:00:00.123456Z"
        parsed = datetime.fromisoformat(iso(T0) or "")
        assert parsed == T0

    def test_event_ids_are_unique(self) -> None:
        ids = {result().event_id for _ in range(50)}
        assert len(ids) == 50

    @pytest.mark.parametrize(
        ("runs", "expected"),
        [
            ((run(Status.ACCEPTED), run(Status.RUNTIME_ERROR, "SIGSEGV")), 7),
            ((run(Status.RUNTIME_ERROR, "SIGFPE"), run(Status.RUNTIME_ERROR, "SIGSEGV")), 9),
            ((run(Status.RUNTIME_ERROR, "SIGXFSZ"),), 8),
            ((run(Status.RUNTIME_ERROR, "SIGABRT"),), 10),
            ((run(Status.RUNTIME_ERROR),), 11),
            ((run(Status.RUNTIME_ERROR, "SIGILL"),), 12),
        ],
    )
    def test_judge0_id_uses_the_culprit_runs_signal(
        self, runs: tuple[RunResult, ...], expected: int
    ) -> None:
        ev = result(status=overall_status(runs), runs=runs)
        assert ev.judge0_status_id == expected
        assert ev.to_dict()["judge0_status_id"] == expected

    def test_metadata_is_echoed_as_a_copy(self) -> None:
        meta = {"tenant": "t", "tags": ["a"]}
        assert result(metadata=meta).to_dict()["metadata"] == meta

    def test_encode_is_compact_utf8_json(self) -> None:
        ev = result(metadata={"name": "Zoë ✓"}, runs=(RunResult(None, Status.ACCEPTED, "é"),))
        data = ev.encode()
        assert isinstance(data, bytes)
        assert "Zoë ✓".encode() in data
        assert b", " not in data and b": " not in data
        assert json.loads(data) == ev.to_dict()

    def test_result_event_is_frozen(self) -> None:
        with pytest.raises(AttributeError):
            result().status = Status.WRONG_ANSWER  # type: ignore[misc]
