"""The gateway on the real stack, driven as its users drive Judge0 and Piston: the
official `judge0` SDK from PyPI, plain HTTP for the error shapes, a Piston-style client,
and two replicas that answer each other's tokens."""

from __future__ import annotations

import base64
import http.client as http_client
import time
from typing import Any

import judge0
import pytest

from tests.integration.gateway_util import clean_sdk_env, http, start_gateway

__all__ = ["start_gateway"]  # the fixture, used by name

C_PROGRAMS = {
    "segv": "int main(void){volatile int *p = 0; *p = 1; return 0;}",
    "fpe": "int main(void){volatile int x = 7, z = 0; return x / z;}",
    "abrt": "#include <stdlib.h>\nint main(void){abort();}",
    "xfsz": (
        '#include <stdio.h>\nint main(void){FILE *f = fopen("/tmp/o", "w");'
        'for (int i = 0; i < 100000; i++) { fputs("0123456789abcdef0123456789abcdef\\n", f);'
        " fflush(f); } return 0;}"
    ),
    "compile": "int main( {",
}


@pytest.fixture
def stack(start_worker: Any, start_gateway: Any, pg_url: str) -> tuple[Any, Any]:
    worker = start_worker(database_url=pg_url)
    return worker, start_gateway(worker.env)


def test_official_sdk_runs_statuses_test_cases_and_metadata(stack: tuple[Any, Any]) -> None:
    clean_sdk_env()
    _, gateway = stack
    client = judge0.Client(gateway.url, {})  # GETs /languages and /config_info, strictly
    assert client.get_about()["version"] == "1.13.1"
    assert {s["id"] for s in client.get_statuses()} == set(range(1, 15))
    assert client.get_config_info().max_submission_batch_size == 20
    assert any(lang.id == 71 for lang in client.get_languages())

    done = judge0.run(client=client, source_code="print('hi', input())", stdin="there",
                      language=judge0.PYTHON)  # fmt: skip
    assert done.status == judge0.Status.ACCEPTED, done
    assert done.stdout == "hi there\n"
    assert float(done.time) >= 0 and done.memory > 0

    pending = judge0.async_run(client=client, source_code="print(6*7)", language=judge0.PYTHON)
    assert pending.token
    judge0.wait(client=client, submissions=pending)
    assert pending.status == judge0.Status.ACCEPTED and pending.stdout == "42\n"

    cases = judge0.run(
        client=client,
        source_code="print(int(input()) * 2)",
        language=judge0.PYTHON,
        test_cases=[("1", "2"), ("2", "5"), ("21", "42")],
    )
    assert [c.status for c in cases] == [
        judge0.Status.ACCEPTED,
        judge0.Status.WRONG_ANSWER,
        judge0.Status.ACCEPTED,
    ]
    assert [c.stdout for c in cases] == ["2\n", "4\n", "42\n"]

    def c_program(name: str, **limits: Any) -> judge0.Submission:
        return judge0.Submission(source_code=C_PROGRAMS[name], language=judge0.C, **limits)

    statuses = judge0.run(
        client=client,
        submissions=[
            judge0.Submission(source_code="while True: pass", language=judge0.PYTHON,
                              cpu_time_limit=1, wall_time_limit=3),
            c_program("compile"),
            c_program("segv"),
            c_program("xfsz", max_file_size=64),
            c_program("fpe"),
            c_program("abrt"),
            judge0.Submission(source_code="exit(3)", language=judge0.PYTHON),
            judge0.Submission(source_code="x = bytearray(300 * 1024 * 1024)",
                              language=judge0.PYTHON, memory_limit=65536),
        ],
    )  # fmt: skip
    assert [s.status.value for s in statuses] == [5, 6, 7, 8, 9, 10, 11, 12], [
        (s.status, s.message, s.stderr) for s in statuses
    ]
    assert "error" in (statuses[1].compile_output or "").lower()
    assert statuses[6].exit_code == 3
    assert statuses[2].exit_signal == 11


def declared_too_large(port: int) -> int:
    conn = http_client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.putrequest("POST", "/submissions")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(64 * 1024 * 1024))
    conn.endheaders()
    status = conn.getresponse().status
    conn.close()
    return status


def test_judge0_http_shapes(stack: tuple[Any, Any]) -> None:
    _, gateway = stack
    url = gateway.url
    status, body, _ = http("POST", f"{url}/submissions", {"source_code": "print(1)"})
    assert status == 422 and body == {"language_id": ["can't be blank"]}
    status, body, _ = http("POST", f"{url}/submissions", {"source_code": "x", "language_id": 9999})
    assert status == 422 and body == {"language_id": ["language with id 9999 doesn't exist"]}
    status, body, _ = http(
        "POST",
        f"{url}/submissions",
        {"source_code": "x", "language_id": 71, "enable_network": True},
    )
    assert status == 422 and body == {"enable_network": ["enabling network is not allowed"]}
    status, body, _ = http("GET", f"{url}/submissions/nope?fields=token,bogus")
    assert status == 400 and body == {"error": "invalid fields: [bogus]"}
    status, body, _ = http("GET", f"{url}/submissions/{'0' * 36}")
    assert status == 404
    status, body, _ = http("POST", f"{url}/submissions/batch", {"submissions": []})
    assert status == 400 and "at least one" in body["error"]
    many = [{"source_code": "print(1)", "language_id": 71}] * 21
    status, body, _ = http("POST", f"{url}/submissions/batch", {"submissions": many})
    assert status == 400 and "less than or equal to 20" in body["error"]
    assert declared_too_large(gateway.port) == 413  # refused before the body is read
    status, body, _ = http("POST", f"{url}/submissions", raw=b"[" * 100_000)
    assert status == 400 and "not valid JSON" in body["error"]

    # A GET right after a POST answers "In Queue" (or later), never 404; trailing slash too.
    status, body, _ = http(
        "POST", f"{url}/submissions/", {"source_code": "print(7)", "language_id": "71"}
    )
    assert status == 201
    token = body["token"]
    status, body, _ = http("GET", f"{url}/submissions/{token}/")
    assert status == 200 and body["status"]["id"] in (1, 2, 3)

    # wait=true over Kafka, fields=* exactly Judge0's set, base64 rules.
    source = "import sys; sys.stdout.buffer.write(bytes([0xff, 0x41]))"
    status, body, _ = http(
        "POST",
        f"{url}/submissions?wait=true&base64_encoded=true&fields=*",
        {"source_code": base64.b64encode(source.encode()).decode(), "language_id": 71},
    )
    assert status == 201, body
    assert body["status"] == {"id": 3, "description": "Accepted"}
    assert base64.b64decode(body["stdout"]) == b"\xffA"
    assert len(body) == 35 and "streamworker_status" not in body
    assert body["created_at"].endswith("Z") and body["created_at"][-5] != ":"
    status, plain, _ = http("GET", f"{url}/submissions/{body['token']}")
    assert status == 400 and "base64_encoded=true" in plain["error"]
    status, named, _ = http(
        "GET", f"{url}/submissions/{body['token']}?fields=status,streamworker_status"
    )
    assert named == {
        "status": {"id": 3, "description": "Accepted"},
        "streamworker_status": "accepted",
    }


def test_batch_items_with_one_program_share_one_submission(
    stack: tuple[Any, Any], pg_url: str
) -> None:
    _, gateway = stack
    items = [
        {"source_code": "print(int(input()) + 1)", "language_id": 71, "stdin": str(n),
         "expected_output": str(n + 1)}
        for n in range(5)
    ] + [{"source_code": "print('other')", "language_id": 71}, {"language_id": 71}]  # fmt: skip
    status, body, _ = http("POST", f"{gateway.url}/submissions/batch", {"submissions": items})
    assert status == 201
    assert body[-1] == {"source_code": ["can't be blank"]}
    tokens = [item["token"] for item in body[:-1]]
    deadline = time.monotonic() + 90
    while True:
        status, got, _ = http(
            "GET",
            f"{gateway.url}/submissions/batch?tokens={','.join(tokens)}&fields=token,status,stdout,streamworker_result",
        )
        done = [s for s in got["submissions"] if s and s["status"]["id"] > 2]
        if len(done) == len(tokens) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    answers = got["submissions"]
    assert [a["token"] for a in answers] == tokens
    assert [a["stdout"] for a in answers] == [f"{n + 1}\n" for n in range(5)] + ["other\n"]
    fused = {a["streamworker_result"]["submission_id"] for a in answers[:5]}
    assert len(fused) == 1  # five tokens, one submission with five test cases
    assert len(answers[0]["streamworker_result"]["runs"]) == 5


def test_piston_runtimes_and_execute(stack: tuple[Any, Any]) -> None:
    _, gateway = stack
    status, runtimes, _ = http("GET", f"{gateway.url}/api/v2/runtimes")
    python = next(r for r in runtimes if r["language"] == "python")
    assert "py" in python["aliases"] and python["version"]
    request = {
        "language": "py",
        "version": "3.x",
        "files": [{"name": "main.py", "content": "import sys; print(input(), sys.argv[1:])"}],
        "stdin": "in",
        "args": ["a", "b"],
        "run_timeout": 3000,
    }
    status, body, _ = http("POST", f"{gateway.url}/api/v2/execute", request)
    assert status == 200, body
    assert body["language"] == "python" and body["run"]["stdout"] == "in ['a', 'b']\n"
    assert body["run"]["code"] == 0 and body["run"]["status"] is None
    broken = {"language": "c", "version": "*", "files": [{"content": "int main( {"}]}
    status, body, _ = http("POST", f"{gateway.url}/api/v2/execute", broken)
    assert status == 200 and body["compile"]["code"] != 0 and body["compile"]["stderr"]
    status, body, _ = http(
        "POST", f"{gateway.url}/api/v2/execute", {**request, "language": "cobra"}
    )
    assert status == 400 and body == {"message": "cobra-3.x runtime is unknown"}
    status, body, _ = http(
        "POST", f"{gateway.url}/api/v2/execute", {**request, "run_timeout": 10**9}
    )
    assert status == 400 and "cannot exceed the configured limit" in body["message"]


def test_two_replicas_answer_each_others_tokens(
    start_worker: Any, start_gateway: Any, pg_url: str
) -> None:
    worker = start_worker(database_url=pg_url)
    first, second = start_gateway(worker.env), start_gateway(worker.env)
    for n, (post_to, get_from) in enumerate([(first, second), (second, first)] * 2):
        status, body, _ = http(
            "POST",
            f"{post_to.url}/submissions?wait=true",
            {"source_code": f"print({n})", "language_id": 71},
        )
        assert status == 201 and body["stdout"] == f"{n}\n", body
        token = body["token"]
        status, again, _ = http("GET", f"{get_from.url}/submissions/{token}")
        assert status == 200 and again["stdout"] == f"{n}\n"
