"""The committed JSON Schemas of the public events: generated, valid, and true to the code."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from streamworker.contract import (
    DockerHealthEvent,
    DockerStatus,
    ResultEvent,
    RunResult,
    Runtime,
    Status,
    decode_submission,
)
from streamworker.contract.schema import build_schemas, render
from streamworker.errors import InvalidEvent

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
REGENERATE = "python -m streamworker.contract.schema --write schemas/"
T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    return Draft202012Validator(schema, format_checker=FormatChecker())


def errors(name: str, instance: Any) -> list[str]:
    return [e.message for e in validator(name).iter_errors(instance)]


@pytest.mark.parametrize("name", sorted(build_schemas()))
def test_the_committed_schema_is_what_the_code_generates(name: str) -> None:
    path = SCHEMAS / name
    assert path.is_file(), f"{path} is missing; run `{REGENERATE}`"
    committed = path.read_text(encoding="utf-8")
    assert committed == render(build_schemas()[name]), (
        f"schemas/{name} is stale; run `{REGENERATE}` and commit the result"
    )


def test_exactly_the_three_event_schemas_are_committed() -> None:
    assert sorted(p.name for p in SCHEMAS.glob("*.json")) == [
        "docker-health.v1.json",
        "result.v1.json",
        "submission.v1.json",
    ]
    assert sorted(build_schemas()) == sorted(p.name for p in SCHEMAS.glob("*.json"))


@pytest.mark.parametrize("name", sorted(build_schemas()))
def test_each_schema_is_a_valid_draft_2020_12_schema(name: str) -> None:
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].startswith("urn:streamworker:schema:")
    assert schema["title"] and schema["description"]


def as_json(data: bytes) -> Any:
    return json.loads(data)


def test_a_result_event_with_compile_and_runs_validates() -> None:
    compile_step = RunResult(
        test_case_id=None, status=Status.ACCEPTED, exit_code=0, wall_time_s=0.4, memory_kb=9000
    )
    runs = (
        RunResult(
            test_case_id="1",
            status=Status.ACCEPTED,
            stdout="3\n",
            exit_code=0,
            cpu_time_s=0.01,
            wall_time_s=0.02,
            memory_kb=1024,
            stdout_bytes=2,
            stderr_bytes=0,
        ),
        RunResult(
            test_case_id="2",
            status=Status.RUNTIME_ERROR,
            stdout="\ufffd",
            stderr="boom",
            stdout_truncated=True,
            signal="SIGSEGV",
            stdout_bytes=1,
            stderr_bytes=4,
            stdout_b64=base64.b64encode(b"\xff").decode(),
            stderr_b64=base64.b64encode(b"boom").decode(),
        ),
    )
    event = ResultEvent(
        submission_id="job-42",
        status=Status.RUNTIME_ERROR,
        language="c",
        worker_id="w-1",
        received_at=T0,
        started_at=T0,
        finished_at=T0,
        runtime=Runtime("gcc:14", "sha256:abc"),
        compile=compile_step,
        runs=runs,
        metadata={"tenant": "acme", "nested": {"n": [1, 2]}},
    )
    assert errors("result.v1.json", as_json(event.encode())) == []


def test_an_invalid_submission_result_validates() -> None:
    event = ResultEvent(
        submission_id="job-43",
        status=Status.INVALID_SUBMISSION,
        language=None,
        worker_id="w-1",
        received_at=T0,
        started_at=None,
        finished_at=T0,
        message="language: is required",
    )
    assert errors("result.v1.json", as_json(event.encode())) == []


def test_a_result_with_a_bad_status_or_a_missing_field_fails() -> None:
    good = ResultEvent(
        submission_id="job-44",
        status=Status.ACCEPTED,
        language="python",
        worker_id="w",
        received_at=T0,
        started_at=T0,
        finished_at=T0,
        runs=(RunResult(test_case_id=None, status=Status.ACCEPTED),),
    ).to_dict()
    assert errors("result.v1.json", good) == []
    assert errors("result.v1.json", {**good, "status": "fine"})
    assert errors("result.v1.json", {k: v for k, v in good.items() if k != "event_id"})
    bad_run = {**good["runs"][0], "status": "ok"}
    assert errors("result.v1.json", {**good, "runs": [bad_run]})
    assert errors("result.v1.json", {**good, "finished_at": "2026-01-02T03:04:05+01:00"})


def test_a_docker_health_event_validates() -> None:
    for status, reason, reachable in (
        (DockerStatus.HEALTHY, None, True),
        (DockerStatus.UNHEALTHY, "daemon unreachable", False),
    ):
        event = DockerHealthEvent(
            worker_id="w-1",
            status=status,
            reason=reason,
            reachable=reachable,
            connection="unix:///var/run/docker.sock",
            version="27.0.1" if reachable else None,
            api_version="1.46" if reachable else None,
            ping_ms=1.5 if reachable else None,
            containers_running=3 if reachable else None,
            missing_images=("python:bookworm",),
            observed_at=T0,
        )
        assert errors("docker-health.v1.json", as_json(event.encode())) == []
    assert errors("docker-health.v1.json", {**event.to_dict(), "status": "sick"})


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


VALID_SUBMISSIONS: list[dict[str, Any]] = [
    {"submission_id": "job-1", "language": "python", "source": "print(1)"},
    {
        "submission_id": "a.b_c:d-1",
        "schema_version": 1,
        "language": "c",
        "files": [
            {
                "path": "main.c",
                "content": b64(b"int main(void){return 0;}\n"),
                "encoding": "base64",
            },
            {"path": "lib/util.h", "content": "#pragma once\n", "encoding": "utf-8"},
            {"path": "README", "content": "plain"},
        ],
        "entrypoint": "main.c",
        "args": ["-v", "x y"],
        "compare": "exact",
        "limits": {"cpu_time_s": 1.5, "memory_mb": 128, "output_kb": 64.0},
        "metadata": {"tenant": "acme", "problem": 7},
    },
    {
        "submission_id": "job-3",
        "language": "python",
        "source": "print(input())",
        "stdin_b64": b64(b"\xff\x00bytes\n"),
        "expected_output": None,
    },
    {
        "submission_id": "job-4",
        "language": "python",
        "source": "print(input())",
        "expected_output": "hi\n",
        "test_cases": [
            {"id": "a", "stdin": "hi\n", "expected_output": "hi\n"},
            {"id": 2, "stdin_b64": b64(b"hi\n")},
            {},
        ],
    },
]


@pytest.mark.parametrize("event", VALID_SUBMISSIONS, ids=lambda e: e["submission_id"])
def test_valid_submissions_decode_and_validate(event: dict[str, Any]) -> None:
    decode_submission(json.dumps(event).encode())
    assert errors("submission.v1.json", event) == []


BASE = {"submission_id": "job-9", "language": "python", "source": "print(1)"}
REFUSED: dict[str, dict[str, Any]] = {
    "missing submission_id": {k: v for k, v in BASE.items() if k != "submission_id"},
    "bad submission_id": {**BASE, "submission_id": "has space"},
    "long submission_id": {**BASE, "submission_id": "x" * 129},
    "missing language": {k: v for k, v in BASE.items() if k != "language"},
    "no source nor files": {"submission_id": "job-9", "language": "python"},
    "source and files": {**BASE, "files": [{"path": "a.py", "content": "x"}]},
    "bad compare": {**BASE, "compare": "fuzzy"},
    "unknown limit": {**BASE, "limits": {"cpu_time_s": 1, "gpu": 1}},
    "fractional integer limit": {**BASE, "limits": {"memory_mb": 1.5}},
    "zero limit": {**BASE, "limits": {"processes": 0}},
    "args not strings": {**BASE, "args": ["ok", 3]},
    "more than 128 args": {**BASE, "args": ["a"] * 129},
    "stdin and stdin_b64": {**BASE, "stdin": "x", "stdin_b64": b64(b"x")},
    "bad base64 stdin": {**BASE, "stdin_b64": "not base64!"},
    "bad file encoding": {
        **{k: v for k, v in BASE.items() if k != "source"},
        "files": [{"path": "a.py", "content": "x", "encoding": "latin-1"}],
    },
    "empty files": {**{k: v for k, v in BASE.items() if k != "source"}, "files": []},
    "schema_version 2": {**BASE, "schema_version": 2},
    "metadata not an object": {**BASE, "metadata": [1]},
    "test case id too long": {**BASE, "test_cases": [{"id": "i" * 129}]},
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_events_the_decoder_refuses_fail_the_schema_too(name: str) -> None:
    event = REFUSED[name]
    with pytest.raises(InvalidEvent):
        decode_submission(json.dumps(event).encode())
    assert errors("submission.v1.json", event), f"{name}: the schema accepted {event}"


def test_a_bad_status_fails_every_status_field() -> None:
    schema = build_schemas()["result.v1.json"]
    assert "bogus" not in schema["properties"]["status"]["enum"]
    assert set(schema["properties"]["status"]["enum"]) == {s.value for s in Status}
