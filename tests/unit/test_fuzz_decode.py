"""Property tests: whatever the bytes, decoding ends as a `Submission` or an `InvalidEvent`.

One undecodable event must never stall a partition, so `decode_submission` may raise
nothing else and the salvage functions nothing at all: on random bytes, random JSON
(deep, huge numbers, NaN literals, any Unicode, lone surrogates), event-shaped objects
with random field values, and damaged copies of valid events.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamworker import jsonbound
from streamworker.budgets import BUDGETS
from streamworker.contract import (
    SUBMISSION_ID_RE,
    Submission,
    decode_submission,
    salvage_metadata,
    salvage_submission_id,
)
from streamworker.errors import InvalidEvent

FUZZ = settings(
    max_examples=120,
    deadline=None,
    database=None,  # the checkout is shared: keep no example database in it
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(990, 1010).map(lambda digits: -(10**digits)),  # around the number budget
    st.floats(allow_nan=True, allow_infinity=True),  # NaN/Infinity literals in the JSON
    st.text(max_size=20),
    st.text(alphabet=st.characters(categories=["Cs"]), max_size=3),  # lone surrogates
)
KEYS = ["k", "é", "", "id", "stdin", "path", "content", "memory_mb", "cpu_time_s"]
"""Object keys: a few that mean something inside `limits`, `files` or `test_cases`."""
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), children, max_size=4),
    ),
    max_leaves=12,
)


def deep(levels: int, opener: str = "[") -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value] if opener == "[" else {"k": value}
    return value


deep_values = st.builds(deep, st.integers(0, 200), st.sampled_from(["[", "{"]))
values = st.one_of(json_values, deep_values)

VALID: dict[str, Any] = {
    "submission_id": "sub-1",
    "language": "python",
    "source": "print(input())",
    "stdin": "1\n",
    "args": ["-v"],
    "expected_output": "1\n",
    "limits": {"cpu_time_s": 1.5, "memory_mb": 128},
    "compare": "exact",
    "metadata": {"tenant": "t", "tags": ["a", {"b": None}]},
}
FIELDS = [
    *VALID,
    "files",
    "entrypoint",
    "test_cases",
    "schema_version",
    "stdin_b64",
]

small = st.one_of(scalars, st.lists(scalars, max_size=3))
b64 = st.binary(max_size=16).map(lambda b: base64.b64encode(b).decode())
plausible = st.one_of(
    values,
    st.sampled_from(["", "sub-1", "python", "main.py", "../x", "a" * 300, "YQ==", "!!"]),
    st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "id": small,
                "stdin": small,
                "stdin_b64": st.one_of(small, b64),
                "expected_output": small,
                "path": st.one_of(small, st.sampled_from(["a", "é" * 128, "./a", "a/../b"])),
                "content": st.one_of(small, b64),
                "encoding": st.sampled_from(["utf-8", "base64", "latin-1"]),
            },
        ),
        max_size=3,
    ),
)
events = st.dictionaries(st.sampled_from(FIELDS), plausible, max_size=4).map(
    lambda d: {**VALID, **d}
)


def dumps(value: Any) -> bytes:
    """JSON as a careless producer writes it: NaN/Infinity literals and non-ASCII included.

    Lone surrogates cannot be UTF-8, so they travel as `\\ud800` escapes.
    """
    try:
        return json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value).encode("ascii")


def decode_or_refuse(data: bytes) -> Submission | InvalidEvent:
    """Decoding's outcome; any exception but `InvalidEvent` fails the test."""
    sid, meta = salvage_submission_id(data), salvage_metadata(data)
    assert sid is None or isinstance(sid, str)
    assert isinstance(meta, dict)
    try:
        sub = decode_submission(data)
    except InvalidEvent as exc:
        assert str(exc)
        assert len(str(exc)) < 600, "a message must not grow with the event"
        return exc
    # Whatever decodes is within its budgets and salvageable as itself.
    assert sid == sub.submission_id
    assert meta == sub.metadata
    assert sub.stdin == sub.stdin_bytes.decode("utf-8", "replace")
    assert len(sub.stdin_bytes) <= BUDGETS.max_stdin_bytes
    assert len(sub.language) <= BUDGETS.max_language_chars
    assert len(sub.args) <= BUDGETS.max_args
    assert len(sub.test_cases) <= BUDGETS.max_test_cases
    assert jsonbound.depth_of(dict(sub.metadata)) <= BUDGETS.max_metadata_depth
    return sub


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(data: bytes) -> None:
    decode_or_refuse(data)


@FUZZ
@given(values)
def test_arbitrary_json(value: Any) -> None:
    decode_or_refuse(dumps(value))


@FUZZ
@given(events)
def test_event_shaped_objects(obj: dict[str, Any]) -> None:
    decode_or_refuse(dumps(obj))


@FUZZ
@given(events, st.one_of(st.just("sub-1"), values))
def test_salvage_reads_the_submission_id_and_nothing_else(obj: dict[str, Any], sid: Any) -> None:
    """Whatever else is wrong (too deep, NaN, surrogates), a valid id is found; only it."""
    obj["submission_id"] = sid
    readable = isinstance(sid, str) and SUBMISSION_ID_RE.fullmatch(sid) is not None
    assert salvage_submission_id(dumps(obj)) == (sid if readable else None)


@FUZZ
@given(events, st.integers(0, 6000), st.sampled_from(["metadata", "args", "x", "test_cases"]))
def test_deep_nesting_anywhere(obj: dict[str, Any], levels: int, key: str) -> None:
    data = dumps(obj)
    raw = b"[" * levels + b"]" * levels
    outcome = decode_or_refuse(data[:-1] + b', "' + key.encode() + b'": ' + raw + b"}")
    if levels + 1 > BUDGETS.max_depth:
        assert isinstance(outcome, InvalidEvent)
        if "deeper" in str(outcome):
            assert outcome.submission_id == salvage_submission_id(data)


@FUZZ
@given(events, st.data())
def test_damaged_events(obj: dict[str, Any], data: st.DataObject) -> None:
    raw = bytearray(dumps(obj))
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["cut", "flip", "insert"]))
        at = data.draw(st.integers(0, len(raw)))
        if action == "cut":
            del raw[at:]
        elif action == "flip" and at < len(raw):
            raw[at] = data.draw(st.integers(0, 255))
        else:
            raw[at:at] = data.draw(st.sampled_from([b"[", b"{", b'"', b"\\", b"NaN", b"\x00"]))
    decode_or_refuse(bytes(raw))


@FUZZ
@given(st.lists(st.sampled_from(['"', "\\", "[", "]", "{", "}", ",", ":", "1", "a"]), max_size=400))
def test_structural_soup(chars: list[str]) -> None:
    text = "".join(chars)
    decode_or_refuse(text.encode())
    decode_or_refuse(('{"submission_id":"s","x":' + text + "}").encode())


@FUZZ
@given(st.text(alphabet=st.sampled_from('"\\[]{},:01 ')))
def test_scanner_depth_never_undercounts(text: str) -> None:
    """If the scan passes a text, `json.loads` nests no deeper than it counted."""
    try:
        jsonbound.check_shape(text, max_depth=3, max_tokens=10_000)
        value = json.loads(text)
    except ValueError:
        return
    assert jsonbound.depth_of(value) <= 3
