"""The gateway's pure parts: Judge0's request rules and messages, the response shapes the
official SDK parses, batch fusion, Piston's mapping — and hostile bodies that must end as
a 4xx, never an exception."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from judge0.base_types import Config, Language
from judge0.submission import Submission

from streamworker.gateway import judge0_data, piston
from streamworker.gateway.judge0_render import (
    ALL_FIELDS,
    InvalidFields,
    NotUtf8,
    View,
    judge0_time,
    parse_fields,
    render,
)
from streamworker.gateway.judge0_request import (
    Judge0Invalid,
    lenient_b64decode,
    parse_request,
    submission_event,
)
from streamworker.gateway.judge0_routes import fuse
from streamworker.gateway.results import ResultsHub
from streamworker.gateway.submitter import QueueFull, Refused, Submitter, encode_checked
from streamworker.gateway.tenants import Tenant
from streamworker.settings import Settings

SETTINGS = Settings()


def result(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "submission_id": "s",
        "status": "accepted",
        "judge0_status_id": 3,
        "message": None,
        "compile": None,
        "runs": [
            {
                "test_case_id": None,
                "status": "accepted",
                "stdout": "hi\n",
                "stderr": "",
                "exit_code": 0,
                "signal": None,
                "cpu_time_s": 0.0123,
                "wall_time_s": 0.03,
                "memory_kb": 9000,
            }
        ],
        "finished_at": "2026-01-01T12:00:00.123456Z",
    }
    return {**base, **overrides}


def view(req: dict[str, Any] | None = None, **kw: Any) -> View:
    request = parse_request(req or {"source_code": "print(1)", "language_id": 71}, False, SETTINGS)
    defaults: dict[str, Any] = {
        "token": "3f2b8c1e-7f3d-4c3e-9d0e-2f6b1a9c4d21",
        "tenant": "default",
        "created_at": datetime(2026, 1, 1, 12, 0, 0, 5000, tzinfo=UTC),
        "request": request.echo(),
    }
    return View(**{**defaults, **kw})


def test_config_info_is_exactly_the_sdk_model() -> None:
    info = judge0_data.config_info(SETTINGS, 100)
    assert set(info) == set(Config.model_fields)
    Config(**info)  # pydantic: every type right
    assert info["allow_enable_network"] is False and info["enable_compiler_options"] is False


def test_languages_parse_and_every_accepted_id_resolves() -> None:
    listed = judge0_data.languages()
    for item in listed:
        Language(**item)
    ids = judge0_data.language_ids()
    assert ids[71].id == "python" and ids[113].id == "python" and ids[62].id == "java"
    assert {item["id"] for item in listed} <= set(ids)
    nim = next(item for item in listed if item["name"].startswith("Nim"))
    assert nim["id"] >= judge0_data.EXTENSION_ID_BASE


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({"source_code": "x"}, {"language_id": ["can't be blank"]}),
        ({"language_id": 71}, {"source_code": ["can't be blank"]}),
        (
            {"source_code": "x", "language_id": "abc"},
            {"language_id": ["language with id abc doesn't exist"]},
        ),
        (
            {"source_code": "x", "language_id": 71, "memory_limit": 100},
            {"memory_limit": ["must be greater than or equal to 2048"]},
        ),
        (
            {"source_code": "x", "language_id": 71, "cpu_time_limit": 10**9},
            {"cpu_time_limit": ["must be less than or equal to 20"]},
        ),
        (
            {"source_code": "x", "language_id": 71, "wall_time_limit": "nan"},
            {"wall_time_limit": ["is not a number"]},
        ),
        (
            {"source_code": "x", "language_id": 71, "number_of_runs": 1.5},
            {"number_of_runs": ["must be an integer"]},
        ),
        (
            {"source_code": "x", "language_id": 71, "enable_network": "true"},
            {"enable_network": ["enabling network is not allowed"]},
        ),
        (
            {
                "source_code": "x",
                "language_id": 71,
                "enable_per_process_and_thread_time_limit": True,
            },
            {"enable_per_process_and_thread_time_limit": ["this option cannot be enabled"]},
        ),
        (
            {"source_code": "x", "language_id": 71, "compiler_options": "-O3"},
            {"compiler_options": ["setting compiler options is not allowed"]},
        ),
        (
            {"source_code": "x", "language_id": 71, "command_line_arguments": "a" * 513},
            {"command_line_arguments": ["is too long (maximum is 512 characters)"]},
        ),
        (
            {"source_code": "x", "language_id": 71, "command_line_arguments": "'open"},
            {"command_line_arguments": ["is invalid"]},
        ),
        (
            {"source_code": "x", "language_id": 71, "callback_url": "javascript:alert(1)"},
            {"callback_url": ["is invalid"]},
        ),
        ({"source_code": {"a": 1}, "language_id": 71}, {"source_code": ["is invalid"]}),
    ],
)
def test_judge0_messages(body: dict[str, Any], errors: dict[str, list[str]]) -> None:
    with pytest.raises(Judge0Invalid) as raised:
        parse_request(body, False, SETTINGS)
    assert raised.value.errors == errors


def test_request_to_event_coerces_like_rails_and_keeps_bytes() -> None:
    req = parse_request(
        {
            "source_code": base64.b64encode(b"print(1)\xff").decode() + "\n",
            "language_id": "71",
            "stdin": base64.b64encode(b"\x00\xfe").decode(),
            "memory_limit": "65537",
            "number_of_runs": 3,
            "command_line_arguments": "a 'b c'",
        },
        True,
        SETTINGS,
    )
    event = submission_event(req, "tok", {"judge0": {}})
    assert event["files"][0]["encoding"] == "base64" and "source" not in event
    assert base64.b64decode(event["files"][0]["content"]) == b"print(1)\xff"
    assert len(event["test_cases"]) == 3 and event["test_cases"][0]["stdin_b64"] == "AP4="
    assert event["limits"] == {"memory_mb": 65} and event["args"] == ["a", "b c"]
    assert lenient_b64decode("aGk=\n*!") == b"hi"


def test_fields_and_dates_are_what_the_sdk_parses() -> None:
    assert parse_fields(None)[0] == "token"
    assert len(parse_fields("*")) == 35 and parse_fields("*") == ALL_FIELDS
    assert parse_fields("*,streamworker_status")[-1] == "streamworker_status"
    with pytest.raises(InvalidFields, match=r"invalid fields: \[nope, also\]"):
        parse_fields("status,nope,also")
    stamp = judge0_time("2026-01-01T12:00:00.123456Z")
    assert stamp == "2026-01-01T12:00:00.123Z"
    assert datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    body = render(view(result=result(), started=True), ALL_FIELDS, True)
    assert set(body) == set(ALL_FIELDS)
    Submission().set_attributes(body)  # the SDK's own parser: unknown keys or formats raise
    assert body["time"] == "0.012" and body["memory"] == 9000 and body["status"]["id"] == 3


def test_states_outputs_and_utf8_rules() -> None:
    assert render(view(), ("status",), False)["status"]["id"] == 1
    assert render(view(started=True), ("status",), False)["status"]["id"] == 2
    binary = result(runs=[{**result()["runs"][0], "stdout": "\ufffd", "stdout_b64": "/w=="}])
    with pytest.raises(NotUtf8):
        render(view(result=binary, started=True), ("stdout",), False)
    assert render(view(result=binary, started=True), ("stdout",), True) == {"stdout": "/w=="}
    segv = result(
        status="runtime_error",
        judge0_status_id=7,
        runs=[
            {
                **result()["runs"][0],
                "status": "runtime_error",
                "signal": "SIGSEGV",
                "exit_code": None,
            }
        ],
    )
    out = render(
        view(result=segv, started=True), ("status", "exit_signal", "exit_code", "message"), False
    )
    assert out == {
        "status": {"id": 7, "description": "Runtime Error (SIGSEGV)"},
        "exit_signal": 11,
        "exit_code": 0,
        "message": "Caught fatal signal 11",
    }


def test_fusion_groups_same_program_and_answers_each_case() -> None:
    same = [
        (
            i,
            parse_request(
                {"source_code": "p", "language_id": 71, "stdin": str(i)}, False, SETTINGS
            ),
        )
        for i in range(3)
    ]
    other = (3, parse_request({"source_code": "q", "language_id": 71}, False, SETTINGS))
    tokens, events = fuse([*same, other], "t")
    assert [t.request["batch_index"] for t in tokens] == [0, 1, 2, 3]
    assert len(events) == 2
    fused = next(e for e in events if "test_cases" in e)
    assert [c["stdin"] for c in fused["test_cases"]] == ["0", "1", "2"]
    assert {t.submission_id for t in tokens[:3]} == {fused["submission_id"]}
    assert [t.case_index for t in tokens] == [0, 1, 2, None]
    assert tokens[3].token == tokens[3].submission_id
    runs = [
        {**result()["runs"][0], "test_case_id": str(i + 1), "stdout": f"{i}\n"} for i in range(3)
    ]
    answer = result(runs=runs)
    second = View(tokens[1].token, "t", tokens[1].created_at, tokens[1].request, 1, True, answer)
    assert render(second, ("stdout",), False) == {"stdout": "1\n"}
    lost = View(
        tokens[2].token,
        "t",
        tokens[2].created_at,
        tokens[2].request,
        2,
        True,
        result(runs=runs[:1]),
    )
    assert render(lost, ("status",), False)["status"]["id"] == 13


def test_edge_check_refuses_what_the_worker_would() -> None:
    event = {"submission_id": "x", "language": "python", "source": "p", "args": ["a"] * 500}
    with pytest.raises(Refused) as raised:
        encode_checked(event, SETTINGS)
    assert raised.value.field == "args"
    assert encode_checked({"submission_id": "x", "language": "python", "source": "p"}, SETTINGS)


def test_piston_mapping() -> None:
    assert piston.version_matches("3.x", "3.11.2") and piston.version_matches("*", "1")
    assert not piston.version_matches("3.12", "3.11.2")
    lang, event = piston.execute_event(
        {
            "language": "python3",
            "version": "3.11.2",
            "files": [
                {"content": "print(1)"},
                {"name": "d.bin", "content": "ff00", "encoding": "hex"},
            ],
            "run_memory_limit": 64 * 1024 * 1024,
        },
        "sid",
        SETTINGS,
    )
    assert lang.id == "python" and event["entrypoint"] == "main.py"
    assert event["files"][1] == {"content": "/wA=", "encoding": "base64", "path": "d.bin"}
    assert event["limits"] == {"memory_mb": 64}
    for bad, message in [
        ({"language": "python", "version": "9"}, "python-9 runtime is unknown"),
        ({"language": "python", "version": "*", "files": []}, "files is required"),
        (
            {
                "language": "python",
                "version": "*",
                "files": [{"content": "AA==", "encoding": "base64"}],
            },
            "at least one utf8",
        ),
        (
            {"language": "python", "version": "*", "files": [{"content": "x"}], "run_timeout": -5},
            "must be positive",
        ),
    ]:
        with pytest.raises(piston.PistonInvalid, match=message):
            piston.execute_event(bad, "sid", SETTINGS)
    tle = piston.execute_response(
        lang,
        result(
            status="time_limit_exceeded",
            runs=[{**result()["runs"][0], "status": "time_limit_exceeded", "signal": "SIGKILL"}],
        ),
    )
    assert tle["run"]["status"] == "TO" and tle["run"]["cpu_time"] == 12


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
request_keys = st.sampled_from(
    [
        "source_code",
        "language_id",
        "stdin",
        "expected_output",
        "memory_limit",
        "cpu_time_limit",
        "number_of_runs",
        "command_line_arguments",
        "callback_url",
        "enable_network",
        "redirect_stderr_to_stdout",
        "wall_time_limit",
        "max_file_size",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(request_keys, json_values, max_size=8), st.booleans())
def test_any_json_body_is_a_request_or_judge0_errors(body: dict[str, Any], encoded: bool) -> None:
    try:
        req = parse_request(body, encoded, SETTINGS)
    except Judge0Invalid as exc:
        assert exc.errors and all(isinstance(v, list) and v for v in exc.errors.values())
        return
    event = submission_event(req, "fuzz", {})
    json.dumps(event)
    try:
        encode_checked(event, SETTINGS)
    except Refused as exc:
        assert exc.field


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_any_piston_body_is_an_event_or_a_400(body: Any) -> None:
    try:
        piston.execute_event(body, "fuzz", SETTINGS)
    except piston.PistonInvalid as exc:
        assert str(exc)


def test_in_flight_is_bounded_per_replica_and_per_tenant_and_freed_by_results() -> None:
    settings = replace(SETTINGS, gateway=replace(SETTINGS.gateway, max_in_flight=5))
    hub = ResultsHub(settings)
    submitter = Submitter(settings, hub)
    alice, bob = Tenant("alice", 60, 600, 2), Tenant("bob", 60, 600, 10)
    now = time.monotonic()
    submitter._in_flight.update({"a1": (now, "alice"), "a2": (now, "alice")})
    with pytest.raises(QueueFull):
        submitter.reserve(1, alice)  # alice's own bound
    submitter.reserve(3, bob)
    with pytest.raises(QueueFull):
        submitter.reserve(4, bob)  # the replica's bound: 2 + 4 > 5
    hub.deliver({"submission_id": "a1"}, 10)  # a result frees its slot
    submitter.reserve(1, alice)
    assert submitter.in_flight == 1
