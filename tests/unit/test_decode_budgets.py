"""Every decode budget: at the limit accepted, one over refused naming the field.

The numbers are spelled out here on purpose: they are the documented contract
(`docs/contract.md`, Budgets), so changing one in `streamworker.budgets` must fail here.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

import pytest

from streamworker import jsonbound
from streamworker.budgets import BUDGETS, DecodeBudgets, KiB, MiB
from streamworker.contract import (
    Status,
    Submission,
    decode_submission,
    salvage_metadata,
    salvage_submission_id,
)
from streamworker.errors import InvalidEvent
from streamworker.judge import judge
from streamworker.pipeline import Pipeline, Source
from streamworker.settings import Settings, load_settings

BASE: dict[str, Any] = {"submission_id": "sub-1", "language": "python", "source": "x"}


def event(**fields: Any) -> bytes:
    obj = {**BASE, **fields}
    if "files" in fields:
        obj.pop("source")
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def with_raw(data: bytes, key: str, raw: bytes) -> bytes:
    """`data` (an event) with one more member whose value is the raw JSON `raw`."""
    return data[:-1] + b',"' + key.encode() + b'":' + raw + b"}"


def decoded(data: bytes, budgets: DecodeBudgets = BUDGETS) -> Submission:
    return decode_submission(data, budgets)


def refused(data: bytes, fld: str | None, budgets: DecodeBudgets = BUDGETS) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as info:
        decode_submission(data, budgets)
    assert info.value.field == fld, str(info.value)
    return info.value


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_the_documented_numbers() -> None:
    assert dataclasses.asdict(BUDGETS) == {
        "max_event_bytes": 16 * MiB,
        "max_depth": 32,
        "max_json_tokens": 65536,
        "max_number_chars": 1000,
        "max_echo_chars": 64,
        "max_language_chars": 64,
        "max_path_bytes": 255,
        "max_files": 64,
        "max_source_bytes": 1 * MiB,
        "max_args": 128,
        "max_arg_bytes": 4 * KiB,
        "max_args_total_bytes": 16 * KiB,
        "max_stdin_bytes": 8 * MiB,
        "max_expected_output_bytes": 8 * MiB,
        "max_test_cases": 64,
        "max_test_case_id_chars": 128,
        "max_metadata_bytes": 4 * KiB,
        "max_metadata_depth": 8,
    }


# ------------------------------------------------------------------------- whole event


class TestWholeEvent:
    def test_size(self) -> None:
        skeleton = event(pad="")
        exact = event(pad="x" * (16 * MiB - len(skeleton)))
        assert len(exact) == 16 * MiB
        assert decoded(exact).submission_id == "sub-1"
        exc = refused(event(pad="x" * (16 * MiB - len(skeleton) + 1)), None)
        assert "above the maximum 16777216" in str(exc)

    def test_depth(self) -> None:
        # The event object is level 1, so 31 arrays inside it reach exactly 32.
        at_limit = with_raw(event(), "pad", nested(31).encode())
        assert decoded(at_limit).submission_id == "sub-1"
        over = with_raw(event(), "pad", nested(32).encode())
        exc = refused(over, None)
        assert exc.detail == "value nests deeper than 32 levels"
        assert exc.submission_id == "sub-1"

    def test_five_thousand_arrays_in_metadata(self) -> None:
        data = with_raw(event(), "metadata", b'{"k":' + nested(5000).encode() + b"}")
        exc = refused(data, None)
        assert "deeper than 32" in str(exc)
        assert exc.submission_id == "sub-1"
        assert salvage_submission_id(data) == "sub-1"
        assert salvage_metadata(data) == {}

    def test_deep_metadata_does_not_hide_shallow_metadata_elsewhere(self) -> None:
        data = with_raw(event(metadata={"tenant": "t"}), "junk", nested(100).encode())
        refused(data, None)
        assert salvage_metadata(data) == {"tenant": "t"}

    def test_a_numeric_id_is_not_salvaged_from_a_deep_event(self) -> None:
        data = with_raw(event(submission_id=5), "x", nested(100).encode())
        assert refused(data, None).submission_id is None

    def test_deep_and_unclosed_salvages_nothing(self) -> None:
        data = b'{"submission_id":"sub-1","x":' + b"[" * 5000
        exc = refused(data, None)
        assert exc.submission_id is None
        assert salvage_submission_id(data) is None

    def test_deep_nesting_inside_a_string_is_only_text(self) -> None:
        assert decoded(event(stdin=nested(5000) + '\\"{')).stdin.startswith("[[[")

    def test_tokens(self) -> None:
        # { + 7 strings + 3 commas + [ ] + (n - 1) commas + } = 13 + n tokens
        n = 65536 - 13
        assert decoded(event(pad=[0] * n)).submission_id == "sub-1"
        exc = refused(event(pad=[0] * (n + 1)), None)
        assert "more than 65536" in str(exc)
        assert exc.submission_id is None  # salvage is bounded the same way

    def test_number_length(self) -> None:
        assert decoded(event(metadata={"n": int("9" * 1000)})).metadata["n"] > 0
        long_float = with_raw(event(), "metadata", b'{"f":1.' + b"0" * 998 + b"}")
        assert decoded(long_float).metadata["f"] == 1.0
        big = with_raw(event(), "metadata", b'{"n":' + b"9" * 1001 + b"}")
        assert "longer than 1000" in str(refused(big, None))
        assert salvage_submission_id(big) == "sub-1"
        assert salvage_metadata(big) == {}

    def test_a_lone_unterminated_quote_is_not_json(self) -> None:
        assert "JSON" in str(refused(b'{"submission_id":"s","x":"' + b'\\"' * 10000, None))


# ------------------------------------------------------------------------------ fields


class TestLanguage:
    def test_length(self) -> None:
        assert decoded(event(language="a" * 64)).language == "a" * 64
        exc = refused(event(language="a" * 65), "language")
        assert "aaaa" not in str(exc)


class TestPaths:
    def test_file_path_counts_bytes(self) -> None:
        ok = "é" * 127 + "x"  # 255 bytes, 128 characters
        sub = decoded(event(files=[{"path": ok, "content": ""}]))
        assert sub.files[0].path == ok
        refused(event(files=[{"path": "é" * 128, "content": ""}]), "files[0].path")

    def test_entrypoint_counts_bytes(self) -> None:
        ok = "é" * 127 + "x"
        assert decoded(event(entrypoint=ok)).entrypoint == ok
        refused(event(entrypoint="x" * 256), "entrypoint")
        refused(event(entrypoint="é" * 128), "entrypoint")

    def test_file_count(self) -> None:
        files = [{"path": f"f{i}", "content": ""} for i in range(64)]
        assert len(decoded(event(files=files)).files) == 64
        refused(event(files=[*files, {"path": "g", "content": ""}]), "files")


class TestSource:
    def test_source_bytes(self) -> None:
        assert len(decoded(event(source="é" * (512 * KiB))).files[0].content) == MiB
        refused(event(source="é" * (512 * KiB) + "x"), "source")

    def test_files_total(self) -> None:
        half = "x" * (512 * KiB)
        files = [{"path": "a", "content": half}, {"path": "b", "content": half}]
        assert sum(len(f.content) for f in decoded(event(files=files)).files) == MiB
        files[1]["content"] += "y"
        refused(event(files=files), "files")

    def test_base64_counts_decoded_bytes(self) -> None:
        blob = base64.b64encode(b"\xff" * MiB).decode()
        assert decoded(event(files=[{"path": "a", "content": blob, "encoding": "base64"}]))
        over = base64.b64encode(b"\xff" * (MiB + 1)).decode()
        refused(
            event(files=[{"path": "a", "content": over, "encoding": "base64"}]), "files[0].content"
        )

    def test_settings_can_tighten_and_loosen(self) -> None:
        settings = Settings(worker_id="w", max_source_bytes=4, max_test_cases=1)
        budgets = settings.decode_budgets()
        assert decoded(event(source="1234"), budgets)
        refused(event(source="12345"), "source", budgets)
        refused(event(test_cases=[{}, {}]), "test_cases", budgets)
        loose = Settings(worker_id="w", max_source_bytes=2 * MiB).decode_budgets()
        assert decoded(event(source="x" * (2 * MiB)), loose)
        assert dataclasses.replace(budgets, max_source_bytes=MiB, max_test_cases=64) == BUDGETS

    def test_settings_defaults_are_the_budgets(self) -> None:
        settings = load_settings({})
        assert settings.max_source_bytes == BUDGETS.max_source_bytes
        assert settings.max_test_cases == BUDGETS.max_test_cases
        assert settings.decode_budgets() == BUDGETS


class TestArgs:
    def test_count(self) -> None:
        assert len(decoded(event(args=["a"] * 128)).args) == 128
        refused(event(args=["a"] * 129), "args")

    def test_one_argument_in_bytes(self) -> None:
        assert decoded(event(args=["é" * 2048])).args == ("é" * 2048,)
        refused(event(args=["ok", "é" * 2048 + "x"]), "args[1]")

    def test_total(self) -> None:
        four = ["x" * 4096] * 4
        assert decoded(event(args=four)).args == tuple(four)
        exc = refused(event(args=[*four, "y"]), "args")
        assert "16385" in str(exc)


@pytest.mark.parametrize("where", ["top", "case"])
class TestStdinAndExpected:
    @staticmethod
    def make(where: str, **fields: Any) -> bytes:
        if where == "top":
            return event(**fields)
        return event(test_cases=[{"id": "a"}, {"id": "b", **fields}])

    @staticmethod
    def fld(where: str, name: str) -> str:
        return name if where == "top" else f"test_cases[1].{name}"

    @staticmethod
    def stdin_of(sub: Submission, where: str) -> tuple[str, bytes]:
        if where == "top":
            return sub.stdin, sub.stdin_bytes
        return sub.test_cases[1].stdin, sub.test_cases[1].stdin_bytes

    def test_stdin_bytes(self, where: str) -> None:
        text, data = self.stdin_of(decoded(self.make(where, stdin="é" * (4 * MiB))), where)
        assert len(data) == 8 * MiB
        assert data == text.encode()
        refused(self.make(where, stdin="é" * (4 * MiB) + "x"), self.fld(where, "stdin"))

    def test_stdin_b64_bytes(self, where: str) -> None:
        blob = b"\x00\xff" * (4 * MiB)
        sub = decoded(self.make(where, stdin_b64=base64.b64encode(blob).decode()))
        assert self.stdin_of(sub, where)[1] == blob
        over = base64.b64encode(blob + b"!").decode()
        exc = refused(self.make(where, stdin_b64=over), self.fld(where, "stdin_b64"))
        assert "8388608" in str(exc)

    def test_expected_output_bytes(self, where: str) -> None:
        sub = decoded(self.make(where, expected_output="é" * (4 * MiB)))
        expected = sub.expected_output if where == "top" else sub.test_cases[1].expected_output
        assert expected is not None
        assert len(expected) == 4 * MiB
        fld = self.fld(where, "expected_output")
        refused(self.make(where, expected_output="é" * (4 * MiB) + "x"), fld)

    def test_binary_stdin_is_carried_exactly(self, where: str) -> None:
        blob = bytes(range(256))
        sub = decoded(self.make(where, stdin_b64=base64.b64encode(blob).decode()))
        text, data = self.stdin_of(sub, where)
        assert data == blob
        assert text == blob.decode("utf-8", "replace")

    def test_text_stdin_bytes_are_its_utf8(self, where: str) -> None:
        text, data = self.stdin_of(decoded(self.make(where, stdin="a\x00é\n")), where)
        assert (text, data) == ("a\x00é\n", "a\x00é\n".encode())

    @pytest.mark.parametrize(
        "fields",
        [
            {"stdin": "", "stdin_b64": ""},
            {"stdin_b64": "not base64!"},
            {"stdin_b64": "abc"},
            {"stdin_b64": "YQ==\n"},
            {"stdin_b64": "é"},
            {"stdin_b64": 5},
            {"stdin_b64": None},
        ],
    )
    def test_bad_stdin_b64(self, where: str, fields: dict[str, Any]) -> None:
        refused(self.make(where, **fields), self.fld(where, "stdin_b64"))


class TestTestCases:
    def test_count(self) -> None:
        assert len(decoded(event(test_cases=[{}] * 64)).test_cases) == 64
        exc = refused(event(test_cases=[{}] * 65), "test_cases")
        assert "65" in str(exc)

    def test_id_length(self) -> None:
        assert decoded(event(test_cases=[{"id": "i" * 128}])).test_cases[0].id == "i" * 128
        refused(event(test_cases=[{"id": "i" * 129}]), "test_cases[0].id")
        refused(event(test_cases=[{"id": int("9" * 129)}]), "test_cases[0].id")


class TestMetadata:
    def test_bytes(self) -> None:
        meta = {"k": ""}
        meta["k"] = "x" * (4096 - len(json.dumps(meta)))
        assert decoded(event(metadata=meta)).metadata == meta
        meta["k"] += "x"
        refused(event(metadata=meta), "metadata")

    def test_depth(self) -> None:
        deep: Any = {}
        for _ in range(7):
            deep = {"k": deep}
        assert jsonbound.depth_of(deep) == 8
        assert decoded(event(metadata=deep)).metadata == deep
        exc = refused(event(metadata={"k": deep}), "metadata")
        assert "9 levels" in str(exc)

    def test_salvage_echoes_exactly_what_decoding_would_accept(self) -> None:
        deep: Any = {}
        for _ in range(8):
            deep = {"k": deep}
        assert salvage_metadata(event(language=5, metadata=deep)) == {}
        assert salvage_metadata(event(language=5, metadata=deep["k"])) == deep["k"]


# ------------------------------------------------------------------------ echoed values


LONG = "z" * 100_000


@pytest.mark.parametrize(
    ("data", "fld"),
    [
        (event(files=[{"path": "a", "content": "", "encoding": LONG}]), "files[0].encoding"),
        (event(schema_version=LONG), "schema_version"),
        (event(schema_version=int("7" * 1000)), "schema_version"),
        (event(schema_version=[LONG]), "schema_version"),
        (event(limits={LONG: 1}), "limits." + "z" * 64 + "…"),
        (event(test_cases=[{"id": "i" * 128}, {"id": "i" * 128}]), "test_cases[1].id"),
        (
            event(files=[{"path": "p" * 255, "content": ""}, {"path": "p" * 255, "content": ""}]),
            "files[1].path",
        ),
        (event(language=LONG), "language"),
    ],
)
def test_messages_never_echo_an_unbounded_value(data: bytes, fld: str) -> None:
    exc = refused(data, fld)
    assert len(str(exc)) < 200, str(exc)


def test_echoed_values_are_cut_with_an_ellipsis() -> None:
    exc = refused(
        event(files=[{"path": "a", "content": "", "encoding": LONG}]), "files[0].encoding"
    )
    assert exc.detail == f"must be 'utf-8' or 'base64', got '{'z' * 64}…'"


# ----------------------------------------------------------------------------- NUL


def test_nul_is_data() -> None:
    sub = decoded(
        event(source="a\x00b", stdin="\x00", expected_output="\x00", metadata={"k": "\x00"})
    )
    assert sub.files[0].content == b"a\x00b"
    assert sub.stdin_bytes == b"\x00"
    assert sub.expected_output == "\x00"
    assert sub.metadata == {"k": "\x00"}


# ----------------------------------------------------------------------- to the sandbox


async def test_the_run_reads_exactly_the_decoded_bytes(
    settings: Settings, sandbox: Any, fakes: Any
) -> None:
    blob = b"\xff\x00\xfe binary\n"
    obj = {
        "submission_id": "sub-1",
        "language": "fake",
        "source": "code",
        "test_cases": [
            {"id": "b", "stdin_b64": base64.b64encode(blob).decode()},
            {"id": "t", "stdin": "é"},
        ],
    }
    verdict = await judge(
        decode_submission(json.dumps(obj).encode()), fakes.interpreted, settings, sandbox
    )
    assert [c.stdin for c in sandbox.calls] == [blob, "é".encode()]
    assert verdict.status is Status.ACCEPTED


async def test_a_single_run_reads_stdin_b64(settings: Settings, sandbox: Any, fakes: Any) -> None:
    obj = {"submission_id": "sub-1", "language": "fake", "source": "code", "stdin_b64": "/w=="}
    await judge(decode_submission(json.dumps(obj).encode()), fakes.interpreted, settings, sandbox)
    assert [c.stdin for c in sandbox.calls] == [b"\xff"]


async def test_a_deep_event_is_answered_for_itself_alone(
    settings: Settings, sandbox: Any, audit: Any
) -> None:
    data = with_raw(event(metadata={"k": 1}), "metadata", b'{"k":' + nested(5000).encode() + b"}")
    source = Source(topic="streamworker.submissions", partition=0, offset=7, key=b"sub-1")
    outcome = await Pipeline(settings, sandbox, audit).handle(data, source)
    assert outcome.result is not None
    assert outcome.result.submission_id == "sub-1"
    assert outcome.result.status is Status.INVALID_SUBMISSION
    assert outcome.result.message == "value nests deeper than 32 levels"
    assert outcome.result.metadata == {}
    assert outcome.dead_letter is not None
    assert outcome.dead_letter.value == data
    assert sandbox.opened == []
